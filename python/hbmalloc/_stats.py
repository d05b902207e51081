"""Module-level statistics with PyTorch's key names, read from the C ABI, so
they work in either install mode (and on the sim backend without a GPU)."""
from __future__ import annotations

import ctypes
import json
from collections import OrderedDict

from . import _native

_STAT_ARRAYS = ("allocation", "segment", "active", "inactive_split", "allocated_bytes", "reserved_bytes",
                "active_bytes", "inactive_split_bytes", "requested_bytes")
_FIELDS = ("current", "peak", "allocated", "freed")


def _device(device) -> int:
    if device is None:
        try:
            import torch

            if torch.cuda.is_initialized():
                return torch.cuda.current_device()
        except ImportError:
            pass
        return 0
    if isinstance(device, int):
        return device
    index = getattr(device, "index", None)  # torch.device
    if index is not None:
        return index
    if isinstance(device, str) and ":" in device:
        return int(device.rsplit(":", 1)[1])
    return 0


def _raw(device: int) -> dict:
    lib = _native.lib()
    lib.hbm_clear_error()
    need = lib.hbm_stats_json(device, None, 0)
    if need == 0:
        raise RuntimeError(f"hbmalloc: statistics of device {device}: {_native.last_error()}")
    buf = ctypes.create_string_buffer(need + 1)
    lib.hbm_stats_json(device, buf, len(buf))
    return json.loads(buf.value.decode())


def memory_stats(device=None, *, hbmalloc_figures: bool = False) -> "OrderedDict[str, float]":
    """hbmalloc's statistics of `device` under exactly the keys of
    torch.cuda.memory_stats(), sorted as it sorts them; hbmalloc_figures=True
    adds hbmalloc's own (largest free block, external fragmentation, limit)."""
    raw = _raw(_device(device))
    out = {k: v for k, v in raw.items() if not k.startswith("hbmalloc.")}
    # hbmalloc splits any block and has no oversize class: PyTorch's figures
    # for an allocator with no max_split_size.
    out["max_split_size"] = -1
    for name in ("oversize_allocations", "oversize_segments"):
        for field in _FIELDS:
            out[f"{name}.{field}"] = 0
    if hbmalloc_figures:
        out.update({k: v for k, v in raw.items() if k.startswith("hbmalloc.")})
    return OrderedDict(sorted(out.items()))


def _fmt(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return str(n)


def memory_summary(device=None) -> str:
    """A table of the statistics (PyTorch's rows) with hbmalloc's own figures."""
    d = _device(device)
    s = memory_stats(d, hbmalloc_figures=True)
    rows = [("Allocated memory", "allocated_bytes", True), ("Active memory", "active_bytes", True),
            ("Requested memory", "requested_bytes", True), ("Reserved memory", "reserved_bytes", True),
            ("Non-releasable memory", "inactive_split_bytes", True), ("Allocations", "allocation", False),
            ("Active allocs", "active", False), ("Device reserved segments", "segment", False),
            ("Non-releasable allocs", "inactive_split", False)]
    line = "=" * 87
    out = [line, f" hbmalloc memory summary, device {d}".ljust(87), line,
           f" {'Metric':<26}| {'Cur Usage':>13} | {'Peak Usage':>13} | {'Tot Alloc':>12} | {'Tot Freed':>10} ", line]
    for title, key, is_bytes in rows:
        for pool, label in (("all", title), ("large_pool", "      from large pool"), ("small_pool", "      from small pool")):
            vals = [s[f"{key}.{pool}.{f}"] for f in _FIELDS]
            text = [_fmt(v) if is_bytes else str(int(v)) for v in vals]
            out.append(f" {label:<26}| {text[0]:>13} | {text[1]:>13} | {text[2]:>12} | {text[3]:>10} ")
        out.append("-" * 87)
    out.append(f" {'Oversize allocations':<26}| {0:>13} | {0:>13} | {0:>12} | {0:>10} ")
    out.append(line)
    cached = s["reserved_bytes.all.current"] - s["allocated_bytes.all.current"]
    limit = s["hbmalloc.memory_limit"]
    out.append(f" cached free {_fmt(cached)}, largest free block {_fmt(s['hbmalloc.largest_free_block'])}, "
               f"external fragmentation {100 * s['hbmalloc.external_fragmentation']:.1f}%, "
               f"limit {_fmt(limit) if limit else 'none'}")
    out.append(f" alloc retries {s['num_alloc_retries']}, OOMs {s['num_ooms']}, "
               f"device allocs {s['num_device_alloc']}, device frees {s['num_device_free']}")
    out.append(line)
    return "\n".join(out) + "\n"
