#!/usr/bin/env bash
# Everything issue 6 asks of a GPU, in one device call (10 minutes at most):
#   1. builds and installs the Python package there from source, against that
#      machine's torch (2.11, CUDA 13), with headers carried in .gpu-deps/
#      (benchmarks/gpu/carry_deps.sh, run here first); if that build fails it
#      installs the wheel built here instead and says so in the JSON;
#   2. runs tests/gpu/torch_suite.py: GPT training native vs hbmalloc, torch's
#      memory APIs, alloc/free latency, CUDA graph, cudnn.benchmark, two
#      streams with record_stream, OOM and recovery;
#   3. measures the device's memory call prices (device_prices, carried in
#      .gpu-deps/) into $OUT/device_prices.txt and .json: the replacement for
#      include/hbmalloc/device_prices.hpp;
#   4. writes $OUT/gpu_results.json (and the build log) for the caller.
# Device call: run(command="bash benchmarks/gpu/run_all.sh", carry=[".gpu-deps"], timeout_s=600)
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-build/gpu-out}
mkdir -p "$out"
deps=$PWD/.gpu-deps
site=/tmp/hbmalloc-site
python=${PYTHON:-python3}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >"$out/device.txt" 2>&1

start=$(date +%s)
built=source
cuda_root=$(dirname "$(dirname "$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)")")
if ! "$python" -m pip install --no-build-isolation --no-deps --no-index --target "$site" \
    -Ccmake.define.CMAKE_PREFIX_PATH="$deps" -Ccmake.define.HBMALLOC_ABSL_INCLUDE_DIRS="$deps/include" \
    -Ccmake.define.CUDAToolkit_ROOT="$cuda_root" -Cbuild-dir=build/gpu-wheel -v . >"$out/build.log" 2>&1 ||
   [ ! -f "$site/hbmalloc/_hbmalloc_torch.so" ]; then
  echo "run_all: building from source failed or made no extension (see build.log); installing the wheel built elsewhere"
  built=prebuilt
  rm -rf "$site"
  "$python" -m pip install --no-deps --no-index --target "$site" "$deps"/hbmalloc-*.whl >>"$out/build.log" 2>&1 ||
    { echo "run_all: no hbmalloc could be installed"; tail -40 "$out/build.log"; exit 1; }
fi
echo "run_all: hbmalloc installed ($built) in $(( $(date +%s) - start )) s"
if [ -x "$deps/device_prices" ]; then
  # libcudart.so.13: the toolkit's, else the one torch's wheel brings.
  cudart_dirs=$("$python" -c "import glob,os,torch; print(':'.join(sorted({os.path.dirname(p) for p in glob.glob(os.path.join(os.path.dirname(torch.__file__), '..', 'nvidia', '*', 'lib', 'libcudart.so*'))})))" 2>/dev/null)
  LD_LIBRARY_PATH="$cuda_root/lib64:${cudart_dirs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" timeout 120 \
    "$deps/device_prices" --json "$out/device_prices.json" >"$out/device_prices.txt" 2>&1 ||
    echo "run_all: device_prices failed (see device_prices.txt)"
  cat "$out/device_prices.txt"
fi
export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
"$python" tests/gpu/torch_suite.py --out "$out/gpu_results.json" --note "hbmalloc built from $built"
