#!/usr/bin/env python3
"""Whether two builds of hbmalloc replay the shared snapshots alike: for every
snapshot of ../shared/traces/snapshots and incoming/, `hbmalloc replay --json
--min-capacity` under hbm, `--policy cca`, `--conf vmm:off` and `--policy cca
--conf expandable_segments:True`, by OLD and by NEW, compared as JSON with the
timings left out (keys holding "seconds" or "per_second").

  benchmarks/compare_replays.py OLD_HBMALLOC NEW_HBMALLOC [--only SUBSTRING] [--jobs N]

Prints each differing run with the first differing keys, then "compared N,
differing M"; exit code 1 when any differs. The check behind "behaviour does
not change" for code moves (issue 15): build the old commit in a worktree
(`git worktree add /tmp/old COMMIT && cmake -S /tmp/old -B /tmp/old/build -G
Ninja && ninja -C /tmp/old/build hbmalloc`) and pass both binaries.
"""
import argparse
import json
import pathlib
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

TRACES = pathlib.Path(__file__).resolve().parent.parent.parent / "shared" / "traces"
RUNS = [[], ["--policy", "cca"], ["--conf", "vmm:off"], ["--policy", "cca", "--conf", "expandable_segments:True"]]


def timeless(x):
    if isinstance(x, dict):
        return {k: timeless(v) for k, v in x.items() if "seconds" not in k and "per_second" not in k}
    if isinstance(x, list):
        return [timeless(v) for v in x]
    return x


def run(cli, path, extra):
    p = subprocess.run([cli, "replay", "--json", "--min-capacity", str(path)] + extra, capture_output=True, text=True)
    if p.returncode != 0:
        return {"exit": p.returncode, "stderr": p.stderr.strip()}
    return timeless(json.loads(p.stdout))


def differences(a, b, path=""):
    if type(a) is not type(b):
        return [path or "."]
    if isinstance(a, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += differences(a.get(k), b.get(k), path + "." + k) if k in a and k in b else [path + "." + k]
        return out
    if isinstance(a, list):
        if len(a) != len(b):
            return [path + "[len]"]
        out = []
        for i, (x, y) in enumerate(zip(a, b)):
            out += differences(x, y, "%s[%d]" % (path, i))
        return out
    return [] if a == b else [path]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--only", default="")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    files = sorted(p for d in ("snapshots", "incoming") for p in (TRACES / d).glob("*.pickle") if args.only in p.name)
    cases = [(f, extra) for f in files for extra in RUNS]

    def compare(case):
        f, extra = case
        return f, extra, differences(run(args.old, f, extra), run(args.new, f, extra))

    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(compare, cases))
    differing = [(f, extra, d) for f, extra, d in results if d]
    for f, extra, d in differing:
        print("DIFF %s [%s]: %s%s" % (f.name, " ".join(extra) or "hbm", ", ".join(d[:5]), " ..." if len(d) > 5 else ""))
    print("compared %d, differing %d" % (len(results), len(differing)))
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
