#!/usr/bin/env python3
"""The page-mapped (VMM) hbm policy against its targets, over every snapshot of
../shared/traces/snapshots/ (issue 5).

For each snapshot: `hbmalloc replay --json --min-capacity` with the hbm policy
and with cca (PyTorch's rules, the recording's own settings), printed as one
markdown table: peak requested, native / hbm / cca efficiency (peak requested
/ peak reserved), the least capacity with no OOM for hbm and cca, the VMM
operations hbm made (granules created, remapped = mapped again elsewhere,
released), their modeled GPU time, the part of it beyond creating
the high-water mark once (overhead), and that overhead as a share of the
trace's own recorded duration. Then the targets over the snapshots whose peak
requested is at least 1 GiB:

  * hbm efficiency: median >= 0.97, worst >= 0.93;
  * hbm's least capacity below cca's on every snapshot;
  * modeled VMM overhead <= 1% of the trace's duration.

  benchmarks/vmm_targets.py [--conf K:V,...] [--no-cca] [--json OUT]

--conf is passed to the hbm replays (e.g. remap:always). Exit code 1 when a
target is missed. Needs build/hbmalloc.
"""
import argparse
import json
import pathlib
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

ROOT = pathlib.Path(__file__).resolve().parent.parent
SNAPSHOTS = ROOT.parent / "shared" / "traces" / "snapshots"
GIB = 1 << 30


def replay(path, policy, conf):
    cmd = [str(ROOT / "build" / "hbmalloc"), "replay", str(path), "--json", "--min-capacity", "--policy", policy]
    if conf:
        cmd += ["--conf", conf]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    d = json.loads(out)
    d.pop("report", None)
    return d


def row_of(path, conf, with_cca):
    hbm = replay(path, "hbm", conf)
    cca = replay(path, "cca", "") if with_cca else None
    v = hbm["vmm"]
    return {
        "trace": path.name,
        "peak_requested": hbm["peak_requested"],
        "native_eff": hbm["native"].get("efficiency"),
        "hbm_eff": hbm["efficiency"],
        "cca_eff": cca["efficiency"] if cca else None,
        "hbm_min_capacity": hbm["min_capacity"],
        "cca_min_capacity": cca["min_capacity"] if cca else None,
        "native_peak_reserved": hbm["native"].get("peak_reserved"),
        "create": v["create"], "remap": v["map"] - v["create"], "unmap": v["unmap"], "release": v["release"],
        "modeled_seconds": v["modeled_seconds"], "overhead_seconds": v["overhead_seconds"],
        "trace_seconds": v["trace_seconds"],
    }


def gib(n):
    return "-" if n is None else "%.2f" % (n / GIB)


def share(r):
    return r["overhead_seconds"] / r["trace_seconds"] if r["trace_seconds"] > 0 else None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--conf", default="")
    ap.add_argument("--no-cca", action="store_true")
    ap.add_argument("--json", type=pathlib.Path)
    args = ap.parse_args()
    files = sorted(p for p in SNAPSHOTS.iterdir() if p.is_file())
    with ThreadPoolExecutor() as pool:
        rows = list(pool.map(lambda p: row_of(p, args.conf, not args.no_cca), files))

    print("| trace | peak req. GiB | native eff. | hbm eff. | cca eff. | min cap. hbm GiB | min cap. cca GiB "
          "| created | remapped | released | modeled s | overhead s | trace s | overhead / trace |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        s = share(r)
        print("| %s | %.2f | %s | %.4f | %s | %s | %s | %d | %d | %d | %.3f | %.4f | %.3f | %s |" % (
            r["trace"][:44], r["peak_requested"] / GIB,
            "-" if r["native_eff"] is None else "%.4f" % r["native_eff"], r["hbm_eff"],
            "-" if r["cca_eff"] is None else "%.4f" % r["cca_eff"], gib(r["hbm_min_capacity"]),
            gib(r["cca_min_capacity"]), r["create"], r["remap"], r["release"], r["modeled_seconds"],
            r["overhead_seconds"], r["trace_seconds"], "-" if s is None else "%.2f%%" % (100 * s)))

    big = [r for r in rows if r["peak_requested"] >= GIB]
    effs = [r["hbm_eff"] for r in big]
    median, worst = statistics.median(effs), min(effs)
    # cca's least capacity, or (without cca) the recording's own peak reserved.
    def baseline(r):
        return r["cca_min_capacity"] if r["cca_min_capacity"] is not None else r["native_peak_reserved"]
    not_below = [r["trace"] for r in rows if baseline(r) is not None and r["hbm_min_capacity"] >= baseline(r)]
    over = [(r["trace"], share(r)) for r in big if share(r) is not None and share(r) > 0.01]
    untimed = [r["trace"] for r in big if share(r) is None]
    print()
    print("snapshots with peak requested >= 1 GiB: %d" % len(big))
    print("hbm efficiency: median %.4f (target >= 0.97), worst %.4f (target >= 0.93)" % (median, worst))
    print("hbm least capacity below %s on %d of %d snapshots%s" % (
        "cca's" if not args.no_cca else "the native peak reserved", len(rows) - len(not_below), len(rows),
        "" if not not_below else "; not below on: " + ", ".join(not_below)))
    print("VMM overhead (modeled, beyond first-time growth) over 1%% of the trace's duration on %d of %d timed: %s" % (
        len(over), len(big) - len(untimed), ", ".join("%s %.1f%%" % (t, 100 * s) for t, s in over) or "none"))
    if untimed:
        print("no recorded duration: " + ", ".join(untimed))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    missed = median < 0.97 or worst < 0.93 or not_below or over
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
