#!/usr/bin/env bash
# Prints the python of a virtual environment with what the Python tests need:
# scikit-build-core, pytest and torch from PyPI. The environment lives in a
# cache outside the clone (HBMALLOC_PY_CACHE, default ~/.cache/hbmalloc), keyed
# by what it holds, so a second CI run reuses it.
#
# torch is installed as lightly as `import torch` allows: the wheel without
# its dependencies, its pure-Python needs, then only the CUDA libraries the
# machine lacks (this image has the CUDA 13 toolkit, cuDNN and NCCL; not
# cuFile, cuSPARSELt, NVSHMEM); if import still fails, torch's full set.
set -euo pipefail
TORCH_VERSION=${HBMALLOC_TORCH_VERSION:-2.11.0}
cache=${HBMALLOC_PY_CACHE:-$HOME/.cache/hbmalloc}
py=${PYTHON:-python3}
key="$($py -c 'import sys; print(f"py{sys.version_info[0]}{sys.version_info[1]}")')-torch$TORCH_VERSION-v1"
venv="$cache/venv-$key"
if [ -f "$venv/.complete" ]; then
  echo "$venv/bin/python"
  exit 0
fi
log="$cache/venv-$key.log"
mkdir -p "$cache"
rm -rf "$venv"
{
  echo "env.sh: creating $venv"
  $py -m venv "$venv"
  pip=("$venv/bin/python" -m pip install -q --disable-pip-version-check)
  "${pip[@]}" "scikit-build-core>=0.10" pytest numpy
  "${pip[@]}" --no-deps "torch==$TORCH_VERSION"
  "${pip[@]}" filelock "typing-extensions>=4.10.0" "setuptools<82" "sympy>=1.13.3" "networkx>=2.5.1" jinja2 \
    "fsspec>=0.8.5"
  if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
    echo "env.sh: import torch needs more CUDA libraries; adding those this image lacks"
    "${pip[@]}" --no-deps "nvidia-cufile==1.15.1.6.*" "nvidia-cusparselt-cu13==0.8.0" "nvidia-nvshmem-cu13==3.4.5"
  fi
  if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
    echo "env.sh: still not importable; installing torch's full dependencies"
    "${pip[@]}" "torch==$TORCH_VERSION"
  fi
  "$venv/bin/python" -c "import torch; print('env.sh: torch', torch.__version__, 'CUDA', torch.version.cuda)"
} >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
touch "$venv/.complete"
echo "$venv/bin/python"
