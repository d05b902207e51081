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


def test_naming_stacks_without_a_recorder_names_none():
    # What install() registers with atexit: with no HBMALLOC_TRACE there is no
    # recorder, and nothing waits to be named.
    assert _native.extension().hbmt_name_stacks() == 0


def test_install_without_a_gpu_fails_with_a_clear_message():
    with pytest.raises(hbmalloc.InstallError, match="no CUDA device is available"):
        hbmalloc.install()
    assert hbmalloc.mode() is None


def test_without_the_extension_install_falls_back_to_the_pluggable_allocator(run, tmp_path):
    # No GPU here: torch.cuda.is_available is made to say yes, so that the
    # fallback's swap (which needs no device until the first allocation) runs.
    done = run("-c", """
import warnings, torch, hbmalloc
torch.cuda.is_available = lambda: True
with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter("always")
    print("mode", hbmalloc.install())
print("warned", any("falling back" in str(x.message) for x in w))
print("backend", torch.cuda.memory.get_allocator_backend())
""", env={"HBMALLOC_TORCH_EXTENSION": str(tmp_path / "missing.so")})
    assert done.returncode == 0, done.stderr
    assert "mode pluggable" in done.stdout
    assert "warned True" in done.stdout
    assert "backend pluggable" in done.stdout


def test_a_bad_conf_is_refused_by_name(run):
    done = run("-c", """
import torch, hbmalloc
torch.cuda.is_available = lambda: True
try:
    hbmalloc.install(conf="no_such_key:1")
except hbmalloc.InstallError as e:
    print("refused", e)
""")
    assert done.returncode == 0, done.stderr
    assert "refused" in done.stdout and "no_such_key" in done.stdout
