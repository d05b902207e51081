"""The libtorch extension was built against the torch of this environment and
refuses cleanly where there is no GPU."""
import ctypes
import subprocess
from pathlib import Path

import pytest
import torch

import hbmalloc
from hbmalloc import _native


def test_extension_was_built_against_this_torch():
    built = (Path(hbmalloc.__file__).parent / "torch_built.txt").read_text().strip()
    assert built == torch.__version__


def test_extension_links_this_torchs_c10_and_the_packaged_library():
    path = _native.extension_path()
    needed = subprocess.run(["readelf", "-d", path], capture_output=True, text=True, check=True).stdout
    for lib in ("libc10.so", "libc10_cuda.so", "libhbmalloc.so"):
        assert f"[{lib}]" in needed, needed
    ext = _native.extension()
    assert ext.hbmt_is_current() == 0


def test_extension_defines_the_cudaallocator_hooks_torch_calls():
    # The class is concrete (instantiated in the .so), so every pure virtual of
    # this torch's CUDAAllocator is implemented; these are the ones the issue names.
    symbols = subprocess.run(["nm", "-D", "-C", "--defined-only", _native.extension_path()], capture_output=True,
                             text=True, check=True).stdout
    for method in ("allocate(unsigned long)", "raw_alloc(", "raw_delete(", "getDeviceStats(", "resetPeakStats(",
                   "emptyCache(", "setMemoryFraction(", "recordStream(", "cacheInfo(", "snapshot(",
                   "recordHistory(", "attachOutOfMemoryObserver(", "beginAllocateToPool(", "endAllocateToPool(",
                   "releasePool(", "attachAllocatorTraceTracker("):
        assert f"TorchAllocator::{method}" in symbols, method


def test_extension_install_without_a_gpu_refuses_and_leaves_torch_alone():
    err = ctypes.create_string_buffer(512)
    assert _native.extension().hbmt_install(err, len(err)) == -1
    assert "no CUDA device is visible" in err.value.decode()
    assert _native.extension().hbmt_is_current() == 0


def test_install_without_a_gpu_fails_with_a_clear_message():
    with pytest.raises(hbmalloc.InstallError, match="no CUDA device is available"):
        hbmalloc.install()
    assert hbmalloc.mode() is None
