"""pip install . put the package, its native parts and the command in place."""
import shutil
import subprocess
from pathlib import Path

import hbmalloc
from hbmalloc import _native


def test_package_is_the_installed_one_not_the_source_folder():
    here = Path(hbmalloc.__file__).resolve().parent
    assert "site-packages" in str(here), here


def test_native_parts_are_inside_the_package():
    here = Path(hbmalloc.__file__).resolve().parent
    for name in ("libhbmalloc.so", "bin/hbmalloc", "_hbmalloc_torch.so", "torch_built.txt"):
        assert (here / name).is_file(), name


def test_the_c_abi_loads_and_answers():
    lib = _native.lib()
    ptr = lib.hbm_malloc(4096, 0, None)
    assert ptr, _native.last_error()
    lib.hbm_free(ptr, 4096, 0, None)
    assert lib.hbm_check_invariants(0) == 0, _native.last_error()


def test_hbmalloc_command_is_on_path_and_runs_the_bundled_binary():
    exe = shutil.which("hbmalloc", path=str(Path(__import__("sys").executable).parent))
    assert exe is not None
    done = subprocess.run([exe, "--help"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "replay" in done.stdout and "report" in done.stdout
