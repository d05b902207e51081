#!/usr/bin/env bash
# Compiles the libtorch extension (syntax and types only, no link) against the
# headers of several torch releases, to check the version guards in
# python/csrc/torch_allocator.h. Downloads each torch wheel once from PyPI and
# keeps only its headers in ~/.cache/hbmalloc/torch-headers (HBMALLOC_PY_CACHE).
#   bash python/check_torch_headers.sh [2.4.1 2.11.0 2.15.0 ...]
set -euo pipefail
cd "$(dirname "$0")/csrc"
cache=${HBMALLOC_PY_CACHE:-$HOME/.cache/hbmalloc}/torch-headers
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(2.4.1 2.11.0 2.15.0)
cuda_include=${CUDA_INCLUDE:-/usr/local/cuda/include}
status=0
for v in "${versions[@]}"; do
  dir="$cache/$v"
  if [ ! -f "$dir/.complete" ]; then
    tmp=$(mktemp -d)
    python3 -m pip download -q --no-deps -d "$tmp" "torch==$v" >/dev/null
    rm -rf "$dir" && mkdir -p "$dir"
    unzip -q -o "$tmp"/torch-*.whl 'torch/include/*' 'torch/version.py' -d "$dir"
    rm -rf "$tmp"
    touch "$dir/.complete"
  fi
  IFS=. read -r major minor _ <<<"$v"
  version=$((major * 100 + minor))
  abi=1
  [ "$version" -lt 206 ] && abi=0  # PyPI's wheels used the old C++ ABI before torch 2.6
  for src in torch_allocator.cc history.cc install.cc; do
    if ! g++ -std=c++20 -fsyntax-only -Wall -Wextra -Wno-overloaded-virtual -Wno-unused-parameter \
        -DHBMT_TORCH_VERSION=$version -D_GLIBCXX_USE_CXX11_ABI=$abi \
        -isystem "$dir/torch/include" -isystem "$dir/torch/include/torch/csrc/api/include" -isystem "$cuda_include" \
        -I../../include "$src"; then
      echo "torch $v: $src does not compile"
      status=1
    fi
  done
  echo "torch $v: checked"
done
exit $status
