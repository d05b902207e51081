#!/usr/bin/env python3
"""Attacks the command line with the hostile inputs of make_inputs.py, each run
under a memory limit (RLIMIT_AS, as `ulimit -v`) and checked for: the exit
code, one line on stderr naming the file and the problem (or the right
answer), peak memory under 1 GB and time under 10 s.

Usage: run.py HBMALLOC [DIR]   (DIR: where the inputs are written; a temp dir by default)
Prints one line per case and "hostile: N passed, 0 failed"; exits 1 on a failure.
"""
import json
import os
import pickle
import resource
import shutil
import subprocess
import sys
import tempfile
import time

MEMORY_LIMIT = 1 << 30      # address space, as ulimit -v
PEAK_RSS_LIMIT = 1 << 30    # what the run may really use
TIME_LIMIT = 10.0           # seconds


def run(cli, args):
    """(exit code, stdout bytes, stderr bytes, seconds, peak RSS in bytes)."""
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    start = time.monotonic()
    p = subprocess.Popen([cli] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=limit)
    try:
        out, err = p.communicate(timeout=TIME_LIMIT * 3)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    seconds = time.monotonic() - start
    # ru_maxrss of the children waited for so far: the largest, in KiB.
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return p.returncode, out, err, seconds, rss


class Case:
    def __init__(self, name, args, code, names=(), stdout_check=None):
        self.name, self.args, self.code, self.names, self.stdout_check = name, args, code, names, stdout_check


def bad_input(name, args, *names):
    """Exit code 2, nothing on stdout, one line on stderr holding every `names`."""
    return Case(name, args, 2, names)


def refused_by_info(name, d, file, *names):
    """`info FILE` refused, naming the file and each of `names`."""
    return bad_input(name, ["info", os.path.join(d, file)], file, *names)


def json_out(check=None):
    def verify(out):
        text = out.decode("utf-8")  # strict: any invalid UTF-8 fails
        j = json.loads(text)
        return check(j) if check else None
    return verify


def no_terminal_bytes(out):
    if b"\x1b" in out or b"\r" in out:
        return "stdout holds terminal control bytes"
    out.decode("utf-8")
    return None


def cases(d, cli):
    p = lambda name: os.path.join(d, name)
    bad_name = os.path.join(d.encode(), b"name_\xff\xfe.pickle").decode("utf-8", "surrogateescape")
    esc = p("esc\x1b[31mred\nline.jsonl")
    converted = p("converted.pickle")

    def loads_in_python(out):
        with open(converted, "rb") as f:
            s = pickle.load(f)
        addrs = [e["addr"] for e in s["device_traces"][0] if e["action"] == "alloc"]
        if not addrs or 0 in addrs:
            return "the converted snapshot has blocks at address 0"
        return None

    def no_ooms(j):
        return None if j["oom_count"] == 0 else "OOMs at a capacity far past the trace's need: %d" % j["oom_count"]

    example = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples", "gpt_train.hbt")
    grid = "max_split_size_mb:" + "|".join(str(20 + i) for i in range(1000)) + \
        ",garbage_collection_threshold:" + "|".join("0.%03d" % i for i in range(1, 1000))
    return [
        # 1. invalid UTF-8 reaches no JSON dump, no pickle and no terminal
        Case("utf8 settings: info --json", ["info", "--json", p("utf8_settings.pickle")], 0, (), json_out()),
        Case("utf8 settings: replay --json", ["replay", "--json", p("utf8_settings.pickle")], 0, (), json_out()),
        Case("utf8 settings: report --json", ["report", "--json", p("utf8_settings.pickle")], 0, (), json_out()),
        Case("utf8 settings: tune --json", ["tune", "--json", "--policy", "hbm", p("utf8_settings.pickle")], 0, (),
             json_out()),
        Case("utf8 recorder (.hbt): info --json", ["info", "--json", p("utf8_recorder.hbt")], 0, (),
             json_out(lambda j: None if "\\xff" in json.dumps(j) else "the recorder's bytes were lost")),
        Case("utf8 file name: replay --json", ["replay", "--json", bad_name], 0, (), json_out()),
        Case("utf8 settings: convert to a pickle Python loads", ["convert", p("utf8_settings.pickle"), p("utf8.pickle")],
             0, (), lambda out: pickle.load(open(p("utf8.pickle"), "rb")) and None),
        refused_by_info("jsonl with a lone surrogate", d, "utf8_recorder.jsonl", "JSON"),
        # 2. deep nesting
        refused_by_info("settings nested 100,000 deep", d, "deep_settings.jsonl", "nested deeper"),
        # 3. pickle memo references
        refused_by_info("1 MiB string referenced 100,000 times", d, "memo_settings.pickle", "memo"),
        refused_by_info("one block list in 100,000 segments", d, "memo_blocks.pickle", "memo"),
        refused_by_info("one event list for 65,536 devices", d, "memo_devices.pickle", "memo"),
        # 4. input size
        bad_input("/dev/zero", ["info", "/dev/zero"], "/dev/zero", "unknown trace format"),
        refused_by_info("5 MB gzip of 5 GiB", d, "bomb.json.gz", "decompression bomb",
                  "--max-input"),
        bad_input("input past --max-input", ["info", "--max-input", "1MiB", p("unshared_actions.pickle")],
                  "unshared_actions.pickle", "limit on input", "--max-input"),
        # 5. near-linear readers and fidelity
        Case("1e6 events with unshared action strings", ["info", p("unshared_actions.pickle")], 0),
        Case("1e6 profiler [memory] events", ["info", p("kineto_many.json")], 0),
        Case("400,000 segment events under cca (bounded LCS)", ["replay", "--json", "--policy", "cca",
                                                                p("segment_events.pickle")], 0, (),
             json_out(lambda j: None if "fidelity" in j else "no fidelity")),
        # 6. tune grid bound
        bad_input("1000 x 1000 tune grid", ["tune", example, "--grid", grid], "999000 combinations", "--max-points"),
        # 7. capacities up to 2^64-1 work or are refused
        Case("256 TiB capacity", ["replay", "--json", example, "--capacity", "281474976710656"], 0, (),
             json_out(no_ooms)),
        Case("1 PiB capacity", ["replay", "--json", example, "--capacity", "1125899906842624"], 0, (), json_out(no_ooms)),
        bad_input("2^64-1 capacity", ["replay", example, "--capacity", "18446744073709551615"], "1 PiB"),
        bad_input("2^64-1 capacity in tune", ["tune", example, "--policy", "hbm", "--capacity",
                                              "18446744073709551615"], "1 PiB"),
        # 8 and 9. unlimited means unlimited, and bookkeeping follows blocks, not bytes
        Case("one 2^48-byte request", ["replay", "--json", p("request_2e48.hbt")], 0, (), json_out(no_ooms)),
        Case("one 2^49-byte request, unlimited", ["replay", "--json", p("request_2e49.hbt")], 0, (), json_out(no_ooms)),
        Case("one 2^48-byte request, expandable segments", ["replay", "--json", "--policy", "cca", "--conf",
                                                          "expandable_segments:True", p("request_2e48.hbt")], 0, (),
             json_out(no_ooms)),
        Case("one 2^48-byte request, tune --jobs 8", ["tune", "--json", "--jobs", "8", p("request_2e48.hbt")], 0, (),
             json_out()),
        # 10. convert writes what it reads back
        Case("convert the example to a pickle", ["convert", example, converted], 0, (), loads_in_python),
        Case("the converted pickle reads back", ["info", converted], 0),
        # 11. messages and corrupt pictures
        Case("escapes in the file and recorder names", ["info", esc], 0, (), no_terminal_bytes),
        bad_input("a request past 1 PiB names the file", ["replay", p("over_request.jsonl")], "over_request.jsonl",
                  "event 0", "1 PiB"),
        refused_by_info("segment_free of a segment never allocated", d, "stray_segment_free.pickle", "1 PiB"),
        refused_by_info("a block outside its segment", d, "block_outside.pickle", "outside its segment"),
        refused_by_info("overlapping segments", d, "overlapping_segments.pickle", "overlap"),
    ]


def check(case, cli):
    code, out, err, seconds, rss = run(cli, case.args)
    problems = []
    if code != case.code:
        problems.append("exit code %s, want %d" % (code, case.code))
    text = err.decode("utf-8", "replace")
    if case.code == 2:
        if out:
            problems.append("stdout not empty")
        if text.count("\n") != 1 or not text.endswith("\n"):
            problems.append("want one line on stderr, got %r" % text[:300])
        if b"\x1b" in err:
            problems.append("stderr holds an escape byte")
        for n in case.names:
            if n not in text:
                problems.append("stderr does not name %r: %r" % (n, text[:300]))
    elif case.stdout_check is not None and code == 0:
        try:
            why = case.stdout_check(out)
        except Exception as e:  # noqa: BLE001 - any failure to read the output is the finding
            why = "%s: %s" % (type(e).__name__, e)
        if why:
            problems.append(why)
    if seconds > TIME_LIMIT:
        problems.append("took %.1f s" % seconds)
    if rss > PEAK_RSS_LIMIT:
        problems.append("peak memory %d MB" % (rss >> 20))
    return problems, seconds, rss, text


def main():
    cli = os.path.abspath(sys.argv[1])
    # A directory named by the caller is kept; one made here is removed.
    d = sys.argv[2] if len(sys.argv) > 2 else tempfile.mkdtemp(prefix="hbm_hostile_")
    try:
        failed = run_cases(cli, d)
    finally:
        if len(sys.argv) <= 2:
            shutil.rmtree(d, ignore_errors=True)
    sys.exit(1 if failed else 0)


def run_cases(cli, d):
    here = os.path.dirname(os.path.abspath(__file__))
    subprocess.run([sys.executable, os.path.join(here, "make_inputs.py"), d], check=True)
    passed = failed = 0
    # Each case in a child process of its own: ru_maxrss of RUSAGE_CHILDREN is
    # a running maximum, so a case is measured through a fresh interpreter.
    for i, case in enumerate(cases(d, cli)):
        r = subprocess.run([sys.executable, os.path.abspath(__file__), cli, d, "--one", str(i)],
                           capture_output=True, text=True)
        line = r.stdout.strip() or r.stderr.strip()
        print(line)
        if r.returncode == 0:
            passed += 1
        else:
            failed += 1
    print("hostile: %d passed, %d failed" % (passed, failed))
    return failed


def one():
    cli, d, i = sys.argv[1], sys.argv[2], int(sys.argv[4])
    case = cases(d, cli)[i]
    problems, seconds, rss, err = check(case, cli)
    status = "ok  " if not problems else "FAIL"
    print("%s %-48s %5.2f s %5d MB  %s" % (status, case.name, seconds, rss >> 20,
                                            "; ".join(problems) if problems else err.strip()[:100]))
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    if len(sys.argv) > 3 and sys.argv[3] == "--one":
        one()
    else:
        main()
