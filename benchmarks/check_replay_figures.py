#!/usr/bin/env python3
"""Re-checks that replaying every shared trace still gives the recorded figures.

A performance change must not change a single decision of the policy, so the
peak requested / allocated / reserved bytes and the event count of
`hbmalloc replay FILE --json` must match a baseline made before the change.

  benchmarks/check_replay_figures.py BASELINE [--full DIR]

BASELINE lines: `file peak_requested peak_allocated peak_reserved events ...`.
With --full, the whole JSON output (timings removed) is also compared with
DIR/<file>.json, which is written where missing (so a first run records it).
"""
import argparse
import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
TRACES = ROOT.parent / "shared" / "traces"


def replay_json(path):
    out = subprocess.run([str(ROOT / "build" / "hbmalloc"), "replay", str(path), "--json"],
                         check=True, capture_output=True, text=True).stdout
    d = json.loads(out)
    for timing in ("seconds", "events_per_second"):
        d.pop(timing, None)
    d.get("report", {}).get("run", {}).pop("replay_seconds", None)
    return json.dumps(d, sort_keys=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("baseline")
    ap.add_argument("--full", type=pathlib.Path)
    args = ap.parse_args()
    lines = [l.split() for l in open(args.baseline) if l.strip()]
    bad = 0
    for name, *want in lines:
        want = [int(x) for x in want[:4]]
        paths = [p for p in (TRACES / "snapshots" / name, TRACES / "kineto" / name) if p.exists()]
        if not paths:
            print("MISSING", name)
            bad += 1
            continue
        text = replay_json(paths[0])
        d = json.loads(text)
        got = [d["peak_requested"], d["peak_allocated"], d["peak_reserved"], d["events"]]
        if got != want:
            print(f"DIFF {name}: want {want}, got {got}")
            bad += 1
        if args.full:
            args.full.mkdir(parents=True, exist_ok=True)
            saved = args.full / (name + ".json")
            if not saved.exists():
                saved.write_text(text)
            elif saved.read_text() != text:
                print(f"JSON DIFF {name} (see {saved})")
                bad += 1
    print(f"{len(lines) - bad} of {len(lines)} traces identical")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
