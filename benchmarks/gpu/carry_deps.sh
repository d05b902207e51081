#!/usr/bin/env bash
# Run HERE (the development machine) before benchmarks/gpu/run_all.sh on the
# GPU machine. Fills .gpu-deps/ (git-ignored, carried to the device) with what
# that machine lacks to build hbmalloc from source: Abseil's headers (only the
# header-only btree is used), nlohmann/json and zlib's headers and a link-time
# libz.so (the device's own libz.so.1 is used at run time). Also puts a wheel
# built here against torch 2.11 (the device's version) in it, which run_all.sh
# installs if the build there fails.
set -euo pipefail
cd "$(dirname "$0")/../.."
deps=.gpu-deps
rm -rf "$deps"
mkdir -p "$deps/include" "$deps/lib" "$deps/share/cmake"
cp -r /usr/include/absl /usr/include/nlohmann "$deps/include/"
cp /usr/include/zlib.h "$deps/include/"
cp "$(dirname "$(readlink -f /usr/include/zlib.h)")/zconf.h" "$deps/include/" 2>/dev/null ||
  cp /usr/include/x86_64-linux-gnu/zconf.h "$deps/include/"
cp "$(readlink -f /usr/lib/x86_64-linux-gnu/libz.so)" "$deps/lib/libz.so"
cp -r /usr/share/cmake/nlohmann_json "$deps/share/cmake/"
python=$(bash tests/python/env.sh)
"$python" -m pip wheel -q --no-build-isolation --no-deps -w "$deps" . >/dev/null
# The price benchmark, built here (it needs only libcudart.so.13 there).
ninja -C build device_prices >/dev/null && cp build/benchmarks/device_prices "$deps/"
exclude=$(git rev-parse --git-path info/exclude)
grep -qx '/.gpu-deps/' "$exclude" 2>/dev/null || echo '/.gpu-deps/' >>"$exclude"
du -sh "$deps"
ls "$deps"/*.whl
