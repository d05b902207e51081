"""Module-level statistics with PyTorch's key names, read from the C ABI, so
they work in either install mode (and on the sim backend without a GPU)."""
from __future__ import annotations

import ctypes
import json
from collections import OrderedDict

from . import _native

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


def _text(call, device: int, what: str) -> str:
    """The whole text of an hbm_stats_json-like C call: its length first, then the text."""
    lib = _native.lib()
    lib.hbm_clear_error()
    need = call(device, None, 0)
    if need == 0:
        raise RuntimeError(f"hbmalloc: {what} of device {device}: {_native.last_error()}")
    buf = ctypes.create_string_buffer(need + 1)
    call(device, buf, len(buf))
    return buf.value.decode()


def _raw(device: int) -> dict:
    return json.loads(_text(_native.lib().hbm_stats_json, device, "statistics"))


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


def memory_summary(device=None) -> str:
    """The statistics as torch.cuda.memory_summary() tabulates them, then
    hbmalloc's own figures (largest free block, external fragmentation, limit):
    the C library's table, the same as hbmalloc's reports print."""
    return _text(_native.lib().hbm_memory_summary, _device(device), "memory summary")
