#!/bin/sh
# gpu-check.sh --pack on an existing build: every *_tests binary of the build and the
# smolengine CLI must land in the bundle's bin/, the libraries in lib/ (packed into payload.tar.xz), and the golden
# test data under src/tests. Usage: gpu_check_pack_test.sh GPU_CHECK_SH BUILD_DIR
set -eu
script=$1
build=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
SMOL_BUILD_DIR=$build SMOL_GPU_CHECK_NO_BUILD=1 SMOL_GPU_CHECK_COMPRESS=none bash "$script" --pack "$tmp/pack" >"$tmp/log" 2>&1 || {
  cat "$tmp/log"
  echo "FAIL: gpu-check.sh --pack exited non-zero"
  exit 1
}
fail=0
found=0
for bin in "$build"/tests/*/*_tests; do
  [ -x "$bin" ] || continue
  found=$((found + 1))
  name=$(basename "$bin")
  if [ ! -x "$tmp/pack/bin/$name" ]; then
    echo "FAIL: $name is missing from the bundle"
    fail=1
  fi
done
if [ "$found" -eq 0 ]; then
  echo "FAIL: no test binaries in $build/tests (build them first)"
  fail=1
fi
if [ -x "$build/smolengine" ] && [ ! -x "$tmp/pack/bin/smolengine" ]; then
  echo "FAIL: smolengine is missing from the bundle"
  fail=1
fi
ls "$tmp/pack/lib/"libopenblas* >/dev/null 2>&1 || { echo "FAIL: no OpenBLAS in lib/"; fail=1; }
[ -f "$tmp/pack/src/configs/bench/gsm8k_eval_speed.yaml" ] || { echo "FAIL: no eval-speed config"; fail=1; }
[ -d "$tmp/pack/src/tests/golden" ] || { echo "FAIL: no golden test data"; fail=1; }
[ $fail -eq 0 ] && echo "gpu_check_pack: $found test binaries and the CLI bundled"
exit $fail
