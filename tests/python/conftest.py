"""The Python tests run against the installed package (pip install . in
tests/python/run.sh), on a machine without a GPU: the C library is put on
its sim backend, which needs no device."""
import os
import subprocess
import sys
from pathlib import Path

# Read by libhbmalloc.so on its first allocation.
os.environ.setdefault("HBMALLOC_CONF", "backend:sim,capacity:1GiB")

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def run_python(*args, env=None, cwd=None, timeout=300):
    """Runs this interpreter with args; returns the CompletedProcess."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=full_env, cwd=cwd,
                          timeout=timeout)


@pytest.fixture
def run():
    return run_python
