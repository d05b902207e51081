#!/usr/bin/env python3
"""benchmarks/defrag_targets.py --scale and --jitter: the traces they write
replay, their requests are the recorded ones times the factor (or each size's
own jitter factor, the same for equal sizes and for every run), and the
recorded segment events are gone.

  defrag_targets_variants_test.py PATH_TO_HBMALLOC_CLI
"""
import json
import pathlib
import subprocess
import sys
import tempfile
import unittest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import defrag_targets  # noqa: E402

EXAMPLE = ROOT / "examples" / "gpt_train.hbt"


def events(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def sizes(evs):
    return [e["size"] for e in evs if e.get("action") == "alloc"]


def replay(path):
    out = subprocess.run([str(defrag_targets.CLI), "replay", str(path), "--json"], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


class Variants(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.plain = defrag_targets.converted(EXAMPLE, cls.tmp.name)
        # A recorded segment event and an oom, as a PyTorch snapshot has them.
        with open(cls.plain, "a") as f:
            f.write(json.dumps({"action": "segment_alloc", "device": 0, "addr": 1 << 40, "size": 1 << 21}) + "\n")
            f.write(json.dumps({"action": "oom", "device": 0, "addr": 12345, "size": 3000}) + "\n")
        cls.recorded = events(cls.plain)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_scaled_requests_are_the_recorded_ones_times_the_factor(self):
        out = defrag_targets.scaled(self.plain, factor=1.5)
        self.assertEqual(out.name, self.plain.stem + "_x1.5.jsonl")
        evs = events(out)
        self.assertEqual(sizes(evs), [max(1, round(s * 1.5)) for s in sizes(self.recorded)])
        self.assertFalse([e for e in evs if e.get("action", "").startswith("segment")])
        oom = [e for e in evs if e.get("action") == "oom"]
        self.assertEqual(oom, [{"action": "oom", "device": 0, "addr": 12345, "size": 4500}],
                         "the oom's request scales, its free bytes do not")
        plain, big = replay(self.plain), replay(out)
        self.assertEqual(big["events"], plain["events"] - 1, "all but the segment event")
        self.assertAlmostEqual(big["peak_requested"] / plain["peak_requested"], 1.5, delta=0.001)

    def test_jitter_gives_each_size_its_own_factor_every_run(self):
        out = defrag_targets.scaled(self.plain, seed=7)
        self.assertEqual(out.name, self.plain.stem + "_j7.jsonl")
        before, after = sizes(self.recorded), sizes(events(out))
        self.assertEqual(len(before), len(after))
        factor_of = {}
        for b, a in zip(before, after):
            self.assertEqual(factor_of.setdefault(b, a), a, "equal sizes stay equal")
            self.assertGreaterEqual(a, 0.8 * b - 0.5)
            self.assertLessEqual(a, 1.25 * b + 0.5)
        factors = {round(a / b, 3) for b, a in factor_of.items() if b >= 4096}
        self.assertGreater(len(factors), len(factor_of) // 4, "sizes get different factors")
        self.assertEqual(events(defrag_targets.scaled(self.plain, seed=7)), events(out), "the same every run")
        self.assertNotEqual(sizes(events(defrag_targets.scaled(self.plain, seed=8))), after)
        peak = replay(out)["peak_requested"] / replay(self.plain)["peak_requested"]
        self.assertTrue(0.8 <= peak <= 1.25, peak)


if __name__ == "__main__":
    defrag_targets.CLI = pathlib.Path(sys.argv.pop(1))
    unittest.main()
