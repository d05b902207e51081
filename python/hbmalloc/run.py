"""python -m hbmalloc.run [--conf K:V,...] [--optional] (script.py | -m module) [args...]

Runs a script or module as `python` would, with hbmalloc installed as
PyTorch's CUDA allocator first. Arguments, sys.argv, the exit code and any
exception pass through unchanged. Under torchrun each rank runs this, and
LOCAL_RANK picks the rank's device after the install. HBMALLOC_CONF,
HBMALLOC_TRACE and HBMALLOC_OOM_DUMP apply as for any hbmalloc user.

  --conf K:V,...  configuration (replaces HBMALLOC_CONF)
  --optional      when hbmalloc cannot be installed (no GPU, no torch), say
                  so on stderr and run with PyTorch's own allocator instead
                  of stopping with exit code 1
"""
from __future__ import annotations

import os
import runpy
import sys

from ._install import InstallError, install


def _usage(message: str) -> "SystemExit":
    return SystemExit(f"hbmalloc.run: {message}\nusage: python -m hbmalloc.run [--conf K:V,...] [--optional] "
                      "(script.py | -m module) [args...]")


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    conf, optional = None, False
    while args and args[0].startswith("--"):
        flag = args.pop(0)
        if flag == "--conf":
            if not args:
                raise _usage("--conf needs a value")
            conf = args.pop(0)
        elif flag.startswith("--conf="):
            conf = flag.split("=", 1)[1]
        elif flag == "--optional":
            optional = True
        elif flag in ("--help", "-h"):
            print(__doc__)
            return
        else:
            raise _usage(f"unknown option {flag}")
    if not args:
        raise _usage("no script or module to run")
    module = None
    if args[0] == "-m":
        if len(args) < 2:
            raise _usage("-m needs a module name")
        module, args = args[1], args[2:]
    target = module or args[0]

    try:
        mode = install(conf)
        if os.environ.get("HBMALLOC_RUN_VERBOSE"):
            print(f"hbmalloc.run: installed ({mode})", file=sys.stderr)
        local_rank = os.environ.get("LOCAL_RANK")
        if local_rank is not None:
            import torch

            torch.cuda.set_device(int(local_rank))  # one device per rank, after the swap
    except InstallError as e:
        if not optional:
            sys.exit(f"hbmalloc.run: {e}")
        print(f"hbmalloc.run: running {target} without hbmalloc: {e}", file=sys.stderr)

    if module is not None:
        sys.argv = [module, *args]
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    else:
        script = args[0]
        sys.argv = list(args)
        sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
        runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
