#!/usr/bin/env bash
# Renders the sample reports of report_test (a replay, a replay with OOMs, a
# static snapshot) to PNG with headless Chromium, for a person to look at.
# Not part of CI: needs chromium. Usage: tests/report/screenshot.sh [out_dir]
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD_DIR=${BUILD_DIR:-build}
out=${1:-/tmp/hbmalloc-report-samples}
mkdir -p "$out"
command -v chromium >/dev/null || { echo "screenshot.sh: chromium not found" >&2; exit 1; }
[ -x "$BUILD_DIR/tests/report_test" ] || bash tools/build.sh

HBMALLOC_REPORT_SAMPLE_DIR="$out" "$BUILD_DIR/tests/report_test" --gtest_brief=1 >/dev/null
for html in "$out"/*.html; do
  png="${html%.html}.png"
  chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1400,4000 \
    --screenshot="$png" "file://$html" >/dev/null 2>&1
  # A blank page compresses to a few KiB; a rendered report does not.
  size=$(stat -c %s "$png")
  if [ "$size" -lt 20000 ]; then echo "FAIL: $png is only $size bytes (blank render?)"; exit 1; fi
  echo "$png ($size bytes)"
done
