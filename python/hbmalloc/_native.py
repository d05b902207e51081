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


_p, _i, _s, _c = ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t, ctypes.c_char_p
# name: (result, arguments), as include/hbmalloc/hbmalloc.h declares them.
_C_ABI = {
    "hbm_malloc": (_p, [ctypes.c_ssize_t, _i, _p]),
    "hbm_free": (None, [_p, ctypes.c_ssize_t, _i, _p]),
    "hbm_configure": (_i, [_c]),
    "hbm_stats_json": (_s, [_i, _c, _s]),
    "hbm_memory_summary": (_s, [_i, _c, _s]),
    "hbm_dump_snapshot": (_i, [_c]),
    "hbm_empty_cache": (None, []),
    "hbm_reset_peak_stats": (None, [_i]),
    "hbm_check_invariants": (_i, [_i]),
    "hbm_last_error": (_c, []),
    "hbm_clear_error": (None, []),
}
# The extension's entry points (python/csrc/install.cc).
_EXTENSION = {
    "hbmt_install": (_i, [_c, _s]),
    "hbmt_is_current": (_i, []),
    "hbmt_name_stacks": (_s, []),
}


def _open(path: str, functions: dict, why_missing: str, mode: int = ctypes.DEFAULT_MODE) -> ctypes.CDLL:
    """Loads a library and declares its functions: name -> (result, arguments)."""
    if not os.path.exists(path):
        raise ImportError(f"hbmalloc: {path} is missing ({why_missing})")
    h = ctypes.CDLL(path, mode=mode)
    for name, (result, arguments) in functions.items():
        fn = getattr(h, name)
        fn.restype, fn.argtypes = result, arguments
    return h


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
        _lib = _open(library_path(), _C_ABI, "was the package built?", ctypes.RTLD_GLOBAL)
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
        built = _HERE / "torch_built.txt"
        if "HBMALLOC_TORCH_EXTENSION" not in os.environ and built.exists():
            want = built.read_text().strip()
            if want.split("+")[0].rsplit(".", 1)[0] != torch.__version__.split("+")[0].rsplit(".", 1)[0]:
                raise ImportError(f"the extension was built against torch {want}, this is torch {torch.__version__}")
        _ext = _open(extension_path(), _EXTENSION, "the package was built without torch")
    return _ext
