#!/usr/bin/env bash
# Keeps the libFuzzer targets alive: builds them with clang (installing it when
# missing) into build-fuzz/, then runs each for a few seconds on a seed corpus
# made from the project's own example trace. A crash, a sanitizer report or an
# error that does not name its source fails. Long runs are by hand (README.md).
# Usage: tests/fuzz/smoke.sh [seconds per target, default 5]
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD_DIR=${BUILD_DIR:-build}
FUZZ_DIR=${FUZZ_DIR:-build-fuzz}
seconds=${1:-5}

if ! command -v clang++ >/dev/null; then
  echo "fuzz smoke: installing clang" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq clang >/dev/null
fi
CC=clang CXX=clang++ cmake -S . -B "$FUZZ_DIR" -G Ninja -DHBMALLOC_BUILD_FUZZERS=ON -DHBMALLOC_BUILD_TESTS=OFF \
  -DHBMALLOC_BUILD_BENCHMARKS=OFF -DHBMALLOC_WITH_CUDA=OFF >/dev/null
cmake --build "$FUZZ_DIR" -j "$(nproc)" >"$FUZZ_DIR/fuzz-build.log" 2>&1 || { tail -40 "$FUZZ_DIR/fuzz-build.log"; exit 1; }

# Seeds: the example trace in every format the command line writes, a replay's
# JSON, small profiler and RMM files, and the hostile shapes of
# tests/hostile; each target with a tests/fuzz/<target>.dict uses it.
hbmalloc="$BUILD_DIR/hbmalloc"
[ -x "$hbmalloc" ] || bash tools/build.sh >/dev/null
seeds="$FUZZ_DIR/seeds"
rm -rf "$seeds"
mkdir -p "$seeds"/{pickle,hbt,jsonl,kineto,rmm,report_json,replay,report,convert}
"$hbmalloc" synth --out "$seeds/hbt/train.hbt" --steps 1 >/dev/null
"$hbmalloc" convert "$seeds/hbt/train.hbt" "$seeds/pickle/train.pickle" >/dev/null
"$hbmalloc" convert "$seeds/hbt/train.hbt" "$seeds/jsonl/train.jsonl" >/dev/null
"$hbmalloc" replay "$seeds/hbt/train.hbt" --json >"$seeds/report_json/replay.json"
# replay_fuzz, report_fuzz and convert_fuzz: the first events of two workloads, short enough to mutate.
for workload in gpt pipeline; do
  "$hbmalloc" synth --workload "$workload" --seed 1 --steps 1 --out "$seeds/replay/$workload.hbt" >/dev/null
  "$hbmalloc" convert "$seeds/replay/$workload.hbt" "$seeds/replay/$workload.full.jsonl" >/dev/null
  head -n 200 "$seeds/replay/$workload.full.jsonl" >"$seeds/replay/$workload.jsonl"
  rm "$seeds/replay/$workload.hbt" "$seeds/replay/$workload.full.jsonl"
done
cp "$seeds"/replay/*.jsonl "$seeds/report/"
cp "$seeds"/replay/*.jsonl "$seeds/convert/"
cat >"$seeds/kineto/trace.json" <<'EOF'
{"traceEvents": [
 {"ph": "i", "cat": "cpu_instant_event", "name": "[memory]", "ts": 10, "pid": 1, "tid": 1,
  "args": {"Device Type": 1, "Device Id": 0, "Addr": 140000000000, "Bytes": 4096, "Total Allocated": 4096, "Total Reserved": 2097152}},
 {"ph": "i", "cat": "cpu_instant_event", "name": "[memory]", "ts": 20, "pid": 1, "tid": 1,
  "args": {"Device Type": 1, "Device Id": 0, "Addr": 140000000000, "Bytes": -4096, "Total Allocated": 0, "Total Reserved": 2097152}}
]}
EOF
printf 'Thread,Time,Action,Pointer,Size,Stream\n1,08:00:00.000001,allocate,0x7f0000000000,1024,0x0\n1,08:00:00.000002,free,0x7f0000000000,1024,0x0\n' \
  >"$seeds/rmm/log.csv"
# Small hostile shapes: memo references, deep nesting, invalid UTF-8, huge sizes.
python3 tests/hostile/make_inputs.py --seeds "$seeds"

for target in pickle hbt jsonl kineto rmm report_json replay report convert; do
  corpus="$FUZZ_DIR/corpus/$target"
  mkdir -p "$corpus"
  log="$FUZZ_DIR/$target.log"
  dict=()
  [ -f "tests/fuzz/$target.dict" ] && dict=(-dict="tests/fuzz/$target.dict")
  case "$target" in replay | report | convert) dict=(-dict=tests/fuzz/jsonl.dict) ;; esac  # JSON lines seeds
  if ! "$FUZZ_DIR/tests/fuzz/${target}_fuzz" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 \
      "${dict[@]}" -print_final_stats=1 "$corpus" "$seeds/$target" >"$log" 2>&1; then
    tail -40 "$log"
    echo "FAIL: fuzz target $target (log $log)"
    exit 1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  echo "fuzz $target: ${runs:-?} runs in ${seconds} s, no finding"
done
echo "fuzz smoke: 9 targets clean"
