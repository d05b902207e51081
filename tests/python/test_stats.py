"""Module-level statistics, summary, snapshot and report, on the sim backend."""
import pickle

import hbmalloc
from hbmalloc import _native

# torch.cuda.memory_stats() keys: what torch/csrc/cuda/Module.cpp's
# THCPModule_memoryStats builds (scalars, nine StatArrays of all/small_pool/
# large_pool, two Stats), flattened with "." by torch/cuda/memory.py.
_SCALARS = ["num_alloc_retries", "num_ooms", "max_split_size", "num_sync_all_streams", "num_device_alloc",
            "num_device_free"]
_ARRAYS = ["allocation", "segment", "active", "inactive_split", "allocated_bytes", "reserved_bytes", "active_bytes",
           "inactive_split_bytes", "requested_bytes"]
_STATS = ["oversize_allocations", "oversize_segments"]
_FIELDS = ["current", "peak", "allocated", "freed"]
TORCH_KEYS = set(_SCALARS) | {f"{a}.{p}.{f}" for a in _ARRAYS for p in ("all", "small_pool", "large_pool")
                              for f in _FIELDS} | {f"{s}.{f}" for s in _STATS for f in _FIELDS}


def test_memory_stats_keys_equal_torchs():
    stats = hbmalloc.memory_stats(0)
    assert set(stats) == TORCH_KEYS
    assert list(stats) == sorted(stats)  # torch returns them sorted


def test_torch_flattens_its_nested_stats_to_the_same_keys():
    import torch.cuda.memory as tm

    nested = {k: 0 for k in _SCALARS}
    nested.update({a: {p: {f: 0 for f in _FIELDS} for p in ("all", "small_pool", "large_pool")} for a in _ARRAYS})
    nested.update({s: {f: 0 for f in _FIELDS} for s in _STATS})
    orig = tm.memory_stats_as_nested_dict
    tm.memory_stats_as_nested_dict = lambda device=None: nested
    try:
        assert set(tm.memory_stats(0)) == TORCH_KEYS
    finally:
        tm.memory_stats_as_nested_dict = orig


def test_memory_stats_follow_allocations():
    lib = _native.lib()
    before = hbmalloc.memory_stats(1)
    ptr = lib.hbm_malloc(3 << 20, 1, None)
    assert ptr, _native.last_error()
    s = hbmalloc.memory_stats(1, hbmalloc_figures=True)
    assert s["allocated_bytes.all.current"] - before["allocated_bytes.all.current"] == (3 << 20)
    assert s["requested_bytes.large_pool.current"] >= 3 << 20
    assert s["reserved_bytes.all.current"] >= s["allocated_bytes.all.current"]
    assert "hbmalloc.external_fragmentation" in s
    lib.hbm_free(ptr, 3 << 20, 1, None)
    assert hbmalloc.memory_stats(1)["allocation.all.current"] == before["allocation.all.current"]


def test_memory_summary_has_pytorchs_rows_and_hbmallocs_figures():
    lib = _native.lib()
    ptr = lib.hbm_malloc(3 << 20, 0, None)
    try:
        text = hbmalloc.memory_summary(0)
    finally:
        lib.hbm_free(ptr, 3 << 20, 0, None)
    assert text.startswith("hbmalloc memory summary, device 0\n")
    for row in ("Allocated memory", "GPU reserved memory", "Non-releasable memory", "largest free block",
                "external fragmentation"):
        assert row in text
    requested = next(line for line in text.splitlines() if line.strip().startswith("Requested memory"))
    assert "3.00 MiB" in requested  # the live block, read from the C library's table


def test_snapshot_and_dump_snapshot_use_pytorchs_schema(tmp_path):
    lib = _native.lib()
    ptr = lib.hbm_malloc(5 << 20, 0, None)
    try:
        snap = hbmalloc.snapshot()
        assert {"segments", "device_traces"} <= set(snap)
        seg = next(s for s in snap["segments"] if any(b["address"] == ptr for b in s["blocks"]))
        block = next(b for b in seg["blocks"] if b["address"] == ptr)
        assert block["state"] == "active_allocated"
        assert block["requested_size"] == 5 << 20
        for key in ("device", "address", "total_size", "allocated_size", "segment_type", "stream"):
            assert key in seg
        path = tmp_path / "snap.pickle"
        hbmalloc.dump_snapshot(str(path))
        with open(path, "rb") as f:
            assert pickle.load(f)["segments"]
    finally:
        lib.hbm_free(ptr, 5 << 20, 0, None)


def test_report_is_text_and_optionally_html(tmp_path):
    lib = _native.lib()
    ptr = lib.hbm_malloc(7 << 20, 0, None)
    try:
        html = tmp_path / "frag.html"
        text = hbmalloc.report(html=str(html), device=0)
        assert "reserved" in text.lower()
        assert html.read_text().lstrip().lower().startswith("<!doctype html")
    finally:
        lib.hbm_free(ptr, 7 << 20, 0, None)


def test_dump_snapshot_to_a_bad_path_names_it():
    import pytest

    with pytest.raises(RuntimeError, match="/nonexistent-dir/x.pickle"):
        hbmalloc.dump_snapshot("/nonexistent-dir/x.pickle")
