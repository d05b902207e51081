"""The two native libraries the package carries, loaded through ctypes.

libhbmalloc.so is the allocator (its C ABI, include/hbmalloc/hbmalloc.h);
_hbmalloc_torch.so is the libtorch extension, present when the package was
built against a torch. HBMALLOC_LIBRARY and HBMALLOC_TORCH_EXTENSION name
other files (a build tree, tests).
"""
from __future__ import annotations

import ctypes
import os
from pathlib import Path

_HERE = Path(__file__).resolve().parent
_lib: ctypes.CDLL | None = None
_ext: ctypes.CDLL | None = None


def library_path() -> str:
    return os.environ.get("HBMALLOC_LIBRARY") or str(_HERE / "libhbmalloc.so")


def extension_path() -> str:
    return os.environ.get("HBMALLOC_TORCH_EXTENSION") or str(_HERE / "_hbmalloc_torch.so")


def cli_path() -> str:
    return os.environ.get("HBMALLOC_CLI") or str(_HERE / "bin" / "hbmalloc")


def _import_torch_first() -> None:
    # torch's import loads the CUDA runtime that libhbmalloc.so links (from
    # the nvidia-* wheels when that is where it lives).
    try:
        import torch  # noqa: F401
    except ImportError:
        pass


def lib() -> ctypes.CDLL:
    """libhbmalloc.so, loaded once with its C ABI declared."""
    global _lib
    if _lib is None:
        _import_torch_first()
        path = library_path()
        if not os.path.exists(path):
            raise ImportError(f"hbmalloc: {path} is missing (was the package built?)")
        h = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
        h.hbm_malloc.restype = ctypes.c_void_p
        h.hbm_malloc.argtypes = [ctypes.c_ssize_t, ctypes.c_int, ctypes.c_void_p]
        h.hbm_free.restype = None
        h.hbm_free.argtypes = [ctypes.c_void_p, ctypes.c_ssize_t, ctypes.c_int, ctypes.c_void_p]
        h.hbm_configure.restype = ctypes.c_int
        h.hbm_configure.argtypes = [ctypes.c_char_p]
        h.hbm_stats_json.restype = ctypes.c_size_t
        h.hbm_stats_json.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t]
        h.hbm_dump_snapshot.restype = ctypes.c_int
        h.hbm_dump_snapshot.argtypes = [ctypes.c_char_p]
        h.hbm_empty_cache.restype = None
        h.hbm_empty_cache.argtypes = []
        h.hbm_reset_peak_stats.restype = None
        h.hbm_reset_peak_stats.argtypes = [ctypes.c_int]
        h.hbm_check_invariants.restype = ctypes.c_int
        h.hbm_check_invariants.argtypes = [ctypes.c_int]
        h.hbm_last_error.restype = ctypes.c_char_p
        h.hbm_last_error.argtypes = []
        h.hbm_clear_error.restype = None
        h.hbm_clear_error.argtypes = []
        _lib = h
    return _lib


def last_error() -> str:
    return lib().hbm_last_error().decode(errors="replace")


def extension() -> ctypes.CDLL:
    """The libtorch extension (torch must be importable). Raises ImportError
    naming why it cannot be used: missing, or built against another torch."""
    global _ext
    if _ext is None:
        import torch

        lib()
        path = extension_path()
        if not os.path.exists(path):
            raise ImportError(f"{path} is missing: the package was built without torch")
        built = _HERE / "torch_built.txt"
        if "HBMALLOC_TORCH_EXTENSION" not in os.environ and built.exists():
            want = built.read_text().strip()
            if want.split("+")[0].rsplit(".", 1)[0] != torch.__version__.split("+")[0].rsplit(".", 1)[0]:
                raise ImportError(f"the extension was built against torch {want}, this is torch {torch.__version__}")
        h = ctypes.CDLL(path)
        h.hbmt_install.restype = ctypes.c_int
        h.hbmt_install.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
        h.hbmt_is_current.restype = ctypes.c_int
        h.hbmt_is_current.argtypes = []
        _ext = h
    return _ext
