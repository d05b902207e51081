"""Snapshots in PyTorch's schema and hbmalloc's fragmentation report."""
from __future__ import annotations

import os
import pickle
import subprocess
import tempfile

from . import _install, _native


def dump_snapshot(path: str) -> None:
    """Writes a PyTorch memory snapshot pickle (memory_viz opens it). With the
    full install it is torch's own, history included when
    torch.cuda.memory._record_memory_history is on; otherwise hbmalloc writes
    what every device holds now."""
    if _install.mode() == "full":
        import torch

        torch.cuda.memory._dump_snapshot(path)
        return
    lib = _native.lib()
    lib.hbm_clear_error()
    if lib.hbm_dump_snapshot(os.fsencode(path)) != 0:
        raise RuntimeError(f"hbmalloc.dump_snapshot({path!r}): {_native.last_error()}")


def snapshot() -> dict:
    """The snapshot dump_snapshot would write, as a dict ('segments',
    'device_traces', ...)."""
    if _install.mode() == "full":
        import torch

        return torch.cuda.memory._snapshot()
    with tempfile.TemporaryDirectory(prefix="hbmalloc-") as tmp:
        path = os.path.join(tmp, "snapshot.pickle")
        dump_snapshot(path)
        with open(path, "rb") as f:
            return pickle.load(f)  # written by hbmalloc itself just now


def report(html: str | None = None, device: int | None = None) -> str:
    """The fragmentation report of the live state (the `hbmalloc report`
    command on a snapshot); html=path also writes it as an HTML page."""
    with tempfile.TemporaryDirectory(prefix="hbmalloc-") as tmp:
        path = os.path.join(tmp, "snapshot.pickle")
        dump_snapshot(path)
        cmd = [_native.cli_path(), "report", path]
        if html is not None:
            cmd += ["--html", os.fspath(html)]
        if device is not None:
            cmd += ["--device", str(device)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"hbmalloc.report(): {done.stderr.strip() or done.stdout.strip()}")
        return done.stdout
