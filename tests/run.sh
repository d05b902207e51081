#!/usr/bin/env bash
# The whole test suite: build, every GoogleTest through ctest, then the
# installed tree (exported symbols, dlopen of the installed library, a
# find_package(hbmalloc) consumer), then the hostile inputs (tests/hostile,
# under a memory limit), then the Python package (tests/python), then a few
# seconds of each libFuzzer target (tests/fuzz/smoke.sh, clang).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}

# A virtual environment with torch (cached outside the clone): the libtorch
# extension and its test are built against it, and the Python tests run in it.
python=$(bash tests/python/env.sh)
bash tools/build.sh -DHBMALLOC_BUILD_PYTHON=ON -DPython3_EXECUTABLE="$python"
ctest_log="$BUILD_DIR/ctest.log"
(cd "$BUILD_DIR" && ctest --output-on-failure -j "$(nproc)") | tee "$ctest_log"
ctest_count=$(sed -n 's/.*tests passed, 0 tests failed out of \([0-9]*\).*/\1/p' "$ctest_log")

prefix="$PWD/$BUILD_DIR/install-check"
rm -rf "$prefix"
cmake --install "$BUILD_DIR" --prefix "$prefix" >/dev/null
lib="$prefix/lib/libhbmalloc.so"
# grep reads all its input: under pipefail, grep -q quitting early fails nm or ldd with SIGPIPE.
for sym in hbm_malloc hbm_free; do
  nm -D --defined-only "$lib" | grep -w "$sym" >/dev/null || { echo "FAIL: $sym not exported by $lib"; exit 1; }
done
if nm -D --defined-only "$lib" | grep " absl" >/dev/null; then echo "FAIL: $lib exports Abseil symbols"; exit 1; fi
if ldd "$lib" | grep absl >/dev/null; then echo "FAIL: $lib needs Abseil at run time"; exit 1; fi
echo "installed library: exports hbm_malloc/hbm_free, no Abseil dependency"

HBMALLOC_LIB="$lib" "$BUILD_DIR/tests/c_abi_test" --gtest_brief=1

consumer="$BUILD_DIR/install-consumer"
cmake -S tests/install_consumer -B "$consumer" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$consumer" >/dev/null
"$consumer/consumer"

# Hostile inputs (tests/hostile): each attack under a 1 GiB address-space
# limit, checked for its exit code, its one-line message, memory and time.
hostile_log="$BUILD_DIR/hostile.log"
python3 tests/hostile/run.py "$BUILD_DIR/hbmalloc" | tee "$hostile_log"
hostile_count=$(sed -n 's/^hostile: \([0-9]*\) passed, 0 failed$/\1/p' "$hostile_log")

# The Python package: pip install . into a cached environment with torch, then pytest.
py_log="$BUILD_DIR/python-tests.log"
bash tests/python/run.sh | tee "$py_log"
py_count=$(sed -n 's/^python: \([0-9]*\) passed, 0 failed$/\1/p' "$py_log")

# The fuzz targets build with clang and survive a short run on seeds.
bash tests/fuzz/smoke.sh

# ctest's suites, the three installed-tree checks above, the hostile inputs, the Python tests and the fuzz smoke.
echo "tests: $((ctest_count + 3 + hostile_count + py_count + 1)) passed, 0 failed"
