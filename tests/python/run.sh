#!/usr/bin/env bash
# The Python side of the suite: `pip install .` into the cached environment
# (env.sh), then pytest on tests/python. Prints pytest's summary; the last
# line is "python: N passed, 0 failed" for tests/run.sh to count.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD_DIR=${BUILD_DIR:-build}
mkdir -p "$BUILD_DIR"
start=$(date +%s)
python=$(bash tests/python/env.sh)
echo "python env: $python ($(( $(date +%s) - start )) s)"
# The environment's torch must be visible to the build: no build isolation.
"$python" -m pip install -q --disable-pip-version-check --no-build-isolation --force-reinstall --no-deps . \
  >"$BUILD_DIR/pip-install.log" 2>&1 || { cat "$BUILD_DIR/pip-install.log"; exit 1; }
echo "pip install .: $(( $(date +%s) - start )) s"
log="$BUILD_DIR/pytest.log"
# Tests run against the installed package, not the source folder.
(cd tests/python && "$python" -m pytest -q -p no:cacheprovider . 2>&1) | tee "$log"
passed=$(sed -n 's/^\([0-9]*\) passed.*/\1/p' "$log" | tail -1)
if grep -Eq "[0-9]+ (failed|error)" "$log" || [ -z "$passed" ]; then exit 1; fi
echo "python: $passed passed, 0 failed"
