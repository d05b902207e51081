#!/usr/bin/env python3
"""Writes the hostile inputs of issue 14 into a folder: small files that once
crashed the command line, blew up its memory, took quadratic time or gave a
wrong answer. run.py replays each under a memory and time limit.

Usage: make_inputs.py DIR            the hostile inputs
       make_inputs.py --seeds DIR    small files of the same shapes, a folder per fuzz target
"""
import gzip
import io
import json
import os
import pickle
import struct
import sys
import zlib


def snapshot(device_traces, segments=None, settings=None):
    s = {"segments": segments or [], "device_traces": device_traces}
    if settings is not None:
        s["allocator_settings"] = settings
    return s


def alloc(addr, size, action="alloc"):
    return {"action": action, "addr": addr, "size": size, "stream": 0, "frames": []}


def hbt(recorder, settings=(), events=()):
    """A .hbt file (docs/hbt-format.md): header, device 0, events, end."""
    def string(b):
        return struct.pack("<I", len(b)) + b
    def record(kind, payload):
        return struct.pack("<HHI", kind, 0, len(payload)) + payload
    header = struct.pack("<IQ", 1, 0) + string(recorder) + struct.pack("<I", len(settings))
    for k, v in settings:
        header += string(k) + string(v)
    records = [record(1, header), record(2, struct.pack("<HH", 0, 0))]
    for action, block, size in events:
        records.append(record(5, struct.pack("<BBHIQQQq", action, 0, 0, block, size, 0, 0, 0)))
    records.append(record(6, struct.pack("<Q", len(records))))
    return b"\x89HBT\r\n\x1a\n" + struct.pack("<HHI", 1, 0, 0) + b"".join(records)


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def small_history():
    return [[alloc(0x1000, 512), alloc(0x1000, 512, "free_requested"), alloc(0x1000, 512, "free_completed")]]


def main(out):
    os.makedirs(out, exist_ok=True)

    # 1. Bytes that are not UTF-8 in a snapshot's settings (a bytes key and value).
    write(os.path.join(out, "utf8_settings.pickle"),
          pickle.dumps(snapshot(small_history(), settings={b"\xff\xfekey": b"\xc3\x28 value", "ok": b"\x80"}), protocol=4))
    # ... and in a .jsonl header's recorder (JSON escapes of lone surrogates decode to invalid UTF-8).
    write(os.path.join(out, "utf8_recorder.jsonl"),
          b'{"hbmalloc_trace": 1, "recorder": "bad \\udc80 name \xff", "history": true}\n'
          b'{"action": "alloc", "id": 1, "size": 512}\n{"action": "free_completed", "id": 1}\n')
    # ... and in a .hbt recorder name and settings.
    write(os.path.join(out, "utf8_recorder.hbt"),
          hbt(b"rec\xff\xfe\x1b[2J", [(b"k\xc3", b"v\x80")], [(0, 0, 512), (2, 0, 512)]))
    # ... and in the file name itself.
    write(os.path.join(out.encode(), b"name_\xff\xfe.pickle"), pickle.dumps(snapshot(small_history()), protocol=4))

    # 2. A JSON lines header whose settings nest 100,000 deep.
    depth = 100_000
    write(os.path.join(out, "deep_settings.jsonl"),
          b'{"hbmalloc_trace": 1, "history": true, "settings": {"k": ' + b'[' * depth + b']' * depth + b'}}\n'
          b'{"action": "alloc", "id": 1, "size": 512}\n')

    # 3. Memory amplification through pickle memo references.
    big = "x" * (1 << 20)
    write(os.path.join(out, "memo_settings.pickle"),
          pickle.dumps(snapshot(small_history(), settings={str(i): big for i in range(100_000)}), protocol=4))
    blocks = [{"address": 0x1000 + 512 * i, "size": 512, "requested_size": 512, "state": "inactive"} for i in range(100_000)]
    segs = [{"device": 0, "address": 0x1000, "total_size": 512 * 100_000, "stream": 0, "segment_type": "large",
             "blocks": blocks} for _ in range(100_000)]
    write(os.path.join(out, "memo_blocks.pickle"), pickle.dumps(snapshot([[]], segments=segs), protocol=4))
    events = [alloc(0x1000 + 512 * i, 512) for i in range(1000)]
    write(os.path.join(out, "memo_devices.pickle"), pickle.dumps(snapshot([events] * 65_536), protocol=4))

    # 4. No bound on input size: a gzip that expands to 5 GiB (of a JSON prefix then spaces).
    with open(os.path.join(out, "bomb.json.gz"), "wb") as f:
        z = zlib.compressobj(9, zlib.DEFLATED, 31)
        f.write(z.compress(b'{"traceEvents": ['))
        chunk = b" " * (1 << 24)
        for _ in range(320):
            f.write(z.compress(chunk))
        f.write(z.compress(b"]}"))
        f.write(z.flush())

    # 5. Quadratic time: 1e6 events whose action strings are not shared (Pickler.fast).
    n = 1_000_000
    hist = [{"action": "alloc" if i % 2 == 0 else "free_completed", "addr": 0x1000 + 512 * (i // 2), "size": 512,
             "stream": 0} for i in range(n)]
    buf = io.BytesIO()
    p = pickle.Pickler(buf, protocol=4)
    p.fast = True
    p.dump(snapshot([hist]))
    write(os.path.join(out, "unshared_actions.pickle"), buf.getvalue())
    # ... a profiler trace with 1e6 [memory] events (about 90 MB).
    with open(os.path.join(out, "kineto_many.json"), "w") as f:
        f.write('{"traceEvents": [\n')
        for i in range(500_000):
            addr = 0x7f0000000000 + 512 * i
            for b in (512, -512):
                f.write('{"name":"[memory]","ph":"i","ts":%d,"args":{"Device Type":1,"Addr":%d,"Bytes":%d}},\n'
                        % (i, addr, b))
        f.write('{"name":"end","ph":"i","ts":0}]}\n')
    # ... 400,000 segment events for the fidelity measure (cca): the replay
    # matches the middle but neither end, so the LCS cannot trim its way out.
    hist = [{"action": "segment_alloc", "addr": 0x90000000, "size": 40 << 20, "stream": 0}]
    for i in range(100_000):
        a = 0x10000000 + (i % 2) * 0x4000000
        hist += [{"action": "segment_alloc", "addr": a, "size": 2 << 20, "stream": 0},
                 alloc(a, 512),
                 alloc(a, 512, "free_completed"),
                 {"action": "segment_free", "addr": a, "size": 2 << 20, "stream": 0}]
    hist.append({"action": "segment_free", "addr": 0x90000000, "size": 40 << 20, "stream": 0})
    write(os.path.join(out, "segment_events.pickle"), pickle.dumps(snapshot([hist]), protocol=4))

    # 8 and 9. One request of 2^48 bytes, and one of 2^49 on an unlimited device:
    # bookkeeping that grows with bytes (a page-table entry per 2 MiB) took 2.1 GB.
    write(os.path.join(out, "request_2e48.hbt"), hbt(b"r", [], [(0, 0, 1 << 48), (2, 0, 1 << 48)]))
    write(os.path.join(out, "request_2e49.hbt"), hbt(b"r", [], [(0, 0, 1 << 49), (2, 0, 1 << 49)]))

    # 11. Terminal escapes and newlines in a file name and in trace strings.
    write(os.path.join(out, "esc\x1b[31mred\nline.jsonl"),
          b'{"hbmalloc_trace": 1, "recorder": "evil\\u001b[2J\\nrecorder", "history": true}\n'
          b'{"action": "alloc", "id": 1, "size": 512}\n')
    # ... a request past the largest device hbmalloc models (1 PiB).
    write(os.path.join(out, "over_request.jsonl"),
          b'{"hbmalloc_trace": 1, "history": true}\n'
          b'{"action": "alloc", "id": 1, "size": 2251799813685248}\n{"action": "free_completed", "id": 1}\n')
    # ... a segment_free of a segment never allocated.
    write(os.path.join(out, "stray_segment_free.pickle"), pickle.dumps(snapshot(
        [[{"action": "segment_free", "addr": 0x5000000, "size": 1 << 62, "stream": 0}] + small_history()[0]]), protocol=4))
    # ... a block outside its segment.
    seg = {"device": 0, "address": 0x1000000, "total_size": 2 << 20, "stream": 0, "segment_type": "large",
           "blocks": [{"address": 0x9000000, "size": 512, "requested_size": 512, "state": "active_allocated"}]}
    write(os.path.join(out, "block_outside.pickle"), pickle.dumps(snapshot(small_history(), segments=[seg]), protocol=4))
    # ... overlapping segments.
    s1 = {"device": 0, "address": 0x1000000, "total_size": 4 << 20, "stream": 0, "segment_type": "large", "blocks": []}
    s2 = dict(s1, address=0x1200000)
    write(os.path.join(out, "overlapping_segments.pickle"), pickle.dumps(snapshot(small_history(), segments=[s1, s2]), protocol=4))


def seeds(out):
    """Small files of the same shapes, one folder per fuzz target, as seeds."""
    for target in ("pickle", "hbt", "jsonl", "kineto"):
        os.makedirs(os.path.join(out, target), exist_ok=True)
    pk = lambda name, obj: write(os.path.join(out, "pickle", name), pickle.dumps(obj, protocol=4))
    pk("utf8.pickle", snapshot(small_history(), settings={b"\xff": b"\xc3\x28", "k": "\x1b[2J"}))
    big = "x" * 64
    pk("memo_settings.pickle", snapshot(small_history(), settings={str(i): big for i in range(16)}))
    blocks = [{"address": 0x1000 + 512 * i, "size": 512, "requested_size": 512, "state": "inactive"} for i in range(8)]
    pk("memo_blocks.pickle", snapshot([[]], segments=[{"device": 0, "address": 0x1000, "total_size": 4096, "stream": 0,
                                                       "segment_type": "large", "blocks": blocks}] * 8))
    pk("memo_devices.pickle", snapshot([small_history()[0]] * 8))
    pk("huge_sizes.pickle", snapshot([[alloc(0x1000, 1 << 62), {"action": "oom", "size": (1 << 64) - 1, "stream": 0,
                                       "device_free": 1 << 63}, {"action": "segment_free", "addr": 1 << 63,
                                       "size": 1 << 62, "stream": 0}]]))
    write(os.path.join(out, "hbt", "utf8.hbt"), hbt(b"r\xff", [(b"\xfe", b"\x1b")], [(0, 0, 1 << 62), (2, 0, 0)]))
    write(os.path.join(out, "jsonl", "deep.jsonl"),
          b'{"hbmalloc_trace": 1, "settings": {"k": ' + b"[" * 300 + b"]" * 300 + b"}}\n")
    write(os.path.join(out, "jsonl", "huge.jsonl"),
          b'{"hbmalloc_trace": 1}\n{"action": "alloc", "id": 1, "size": 18446744073709551615}\n'
          b'{"action": "segment_free", "size": 4611686018427387904, "addr": "0x5000000"}\n')
    write(os.path.join(out, "kineto", "deep.json"), b'{"traceEvents": [' + b"[" * 300 + b"]" * 300 + b"]}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--seeds":
        seeds(sys.argv[2])
    else:
        main(sys.argv[1])
