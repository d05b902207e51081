"""The `hbmalloc` command: the binary carried in the package."""
import os
import sys

from . import _native


def main() -> None:
    path = _native.cli_path()
    if not os.path.exists(path):
        sys.exit(f"hbmalloc: {path} is missing (was the package built?)")
    os.execv(path, [path, *sys.argv[1:]])


if __name__ == "__main__":
    main()
