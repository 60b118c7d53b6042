#!/usr/bin/env bash
# Installs dependencies, builds everything (CUDA sources included when nvcc is present) and
# runs the whole ctest suite. This is what CI runs (.ci/run).
#   SMOL_BUILD_DIR   build folder (default build)
#   SMOL_CUDA_ARCHS  CUDA architectures to compile for (default 90: one, to keep CI fast)
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
build_dir=${SMOL_BUILD_DIR:-build}
archs=${SMOL_CUDA_ARCHS:-90}
jobs=$(nproc)

cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CUDA_ARCHITECTURES="$archs" -DSMOL_BUILD_TESTS=ON -DSMOL_BUILD_BENCH=ON
cmake --build "$build_dir" -j "$jobs"

# The real SmolLM2 model is needed by a few tests; without it they report a loud skip.
bash scripts/fetch-model.sh || echo "test.sh: WARNING: model not fetched; real-model tests will be skipped"

# libgomp spin-waits by default; with ctest running tests in parallel on few cores that makes
# the cpu backend many times slower. Passive waiting costs little when cores are free.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}

(cd "$build_dir" && ctest --output-on-failure -j "$jobs" --timeout 1500)

# Every parser fuzzed briefly under ASan + UBSan from its committed corpus (which holds the
# regression inputs of past findings): a clang build of the parsers only in build-fuzz, then
# 30 s per target, nproc targets at a time (docs/design.md §9 "Untrusted input").
SMOL_FUZZ_PARALLEL=$jobs SMOL_FUZZ_JOBS=$jobs bash scripts/fuzz.sh all 30
