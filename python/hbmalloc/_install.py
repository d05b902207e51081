"""hbmalloc.install(): hbmalloc becomes PyTorch's CUDA allocator.

Full: the libtorch extension's CUDAAllocator, swapped in the way
torch.cuda.memory.change_current_allocator does it, so every torch.cuda
memory API keeps working. Fallback, when the extension is missing or was
built against another torch: torch.cuda.memory.CUDAPluggableAllocator on the
C ABI (hbm_malloc / hbm_free), with whichever setters that torch exposes.
"""
from __future__ import annotations

import atexit
import ctypes
import warnings

from . import _native

_mode: str | None = None  # "full" or "pluggable" once installed


class InstallError(RuntimeError):
    """hbmalloc could not become PyTorch's CUDA allocator; the text says why."""


def mode() -> str | None:
    """How hbmalloc serves PyTorch now: "full", "pluggable", or None."""
    return _mode


def _configure(conf: str | None) -> None:
    if conf is None:
        return  # HBMALLOC_CONF, read by the library on first use
    lib = _native.lib()
    lib.hbm_clear_error()
    if lib.hbm_configure(conf.encode()) != 0:
        raise InstallError(f"hbmalloc.install(conf={conf!r}): {_native.last_error()}")


# PyTorch's pluggable allocator setters and the C ABI function each takes.
_PLUGGABLE_SETTERS = {
    "set_init_fn": "hbm_init",
    "set_reset_fn": "hbm_empty_cache",
    "set_memory_fraction_fn": "hbm_set_memory_fraction",
    "set_record_stream_fn": "hbm_record_stream",
}


def _install_pluggable(torch) -> None:
    pluggable = torch.cuda.memory.CUDAPluggableAllocator(_native.library_path(), "hbm_malloc", "hbm_free")
    lib = _native.lib()
    for setter, fn in _PLUGGABLE_SETTERS.items():
        if hasattr(pluggable._allocator, setter):
            getattr(pluggable._allocator, setter)(ctypes.cast(getattr(lib, fn), ctypes.c_void_p).value)
    try:
        torch.cuda.memory.change_current_allocator(pluggable)
    except RuntimeError as e:
        raise InstallError(f"hbmalloc.install(): {e}") from e


def install(conf: str | None = None) -> str:
    """Makes hbmalloc PyTorch's CUDA allocator; returns "full" or "pluggable".

    Must run before the first CUDA allocation (PyTorch cannot swap an
    initialized allocator): `python -m hbmalloc.run script.py` does it first.
    conf ("key:value,...", HBMALLOC_CONF's syntax) replaces HBMALLOC_CONF.
    Raises InstallError naming the reason: no torch, no CUDA device, PyTorch's
    allocator already initialized, a bad conf.
    """
    global _mode
    if _mode is not None:
        if conf is not None:
            raise InstallError("hbmalloc.install(conf=...): hbmalloc is installed already; conf must come first")
        return _mode
    try:
        import torch
    except ImportError as e:
        raise InstallError(f"hbmalloc.install(): torch is not importable ({e})") from e
    if not torch.cuda.is_available():
        raise InstallError(
            "hbmalloc.install(): no CUDA device is available to PyTorch "
            f"(torch {torch.__version__}, built for CUDA {torch.version.cuda}); hbmalloc serves CUDA memory only")
    if torch.cuda.is_initialized():
        raise InstallError(
            "hbmalloc.install(): PyTorch's CUDA state is already initialized, so its allocator can no longer be "
            "swapped; call hbmalloc.install() before the first CUDA tensor, or run the script with "
            "`python -m hbmalloc.run script.py`")
    _configure(conf)
    try:
        ext = _native.extension()
    except (ImportError, OSError) as e:
        warnings.warn(f"hbmalloc: the libtorch extension cannot be used ({e}); falling back to "
                      "torch.cuda.memory.CUDAPluggableAllocator, without PyTorch's memory statistics, "
                      "snapshots and CUDA graph pools", RuntimeWarning, stacklevel=2)
        _install_pluggable(torch)
        _mode = "pluggable"
        return _mode
    err = ctypes.create_string_buffer(1024)
    if ext.hbmt_install(err, len(err)) != 0:
        raise InstallError(f"hbmalloc.install(): {err.value.decode(errors='replace')}")
    # The recorder's trace keeps the stacks the memory history gathers; those
    # still waiting are named while the interpreter can still name them.
    atexit.register(ext.hbmt_name_stacks)
    _mode = "full"
    return _mode
