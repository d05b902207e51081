"""hbmalloc: a drop-in CUDA caching allocator for PyTorch.

    import hbmalloc
    hbmalloc.install()            # before the first CUDA tensor
    ...
    print(hbmalloc.memory_summary())
    hbmalloc.dump_snapshot("snap.pickle")   # PyTorch's schema; memory_viz opens it
    print(hbmalloc.report(html="frag.html"))

or, with nothing changed in the script: python -m hbmalloc.run train.py ...
HBMALLOC_CONF, HBMALLOC_TRACE and HBMALLOC_OOM_DUMP configure the library.
"""
from ._install import InstallError, install, mode
from ._snapshot import dump_snapshot, report, snapshot
from ._stats import memory_stats, memory_summary

__version__ = "0.1.0"
__all__ = ["InstallError", "install", "mode", "memory_stats", "memory_summary", "snapshot", "dump_snapshot",
           "report", "__version__"]
