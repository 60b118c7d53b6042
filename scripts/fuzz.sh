#!/usr/bin/env bash
# Coverage-guided fuzzing of every parser of outside input (docs/design.md §9 "Untrusted input").
#
#   scripts/fuzz.sh [TARGET|all] [SECONDS]   fuzz each target for SECONDS (default 60) starting
#                                            from a scratch copy of fuzz/corpus/<target>/
#   scripts/fuzz.sh regress [TARGET|all]     run every committed corpus file once (fast)
#   scripts/fuzz.sh list                     the target names
#
# Builds build-fuzz first (clang++, SMOL_BUILD_FUZZ=ON: the parsers and the targets only, with
# ASan + UBSan). Each run uses -rss_limit_mb=1024 and -malloc_limit_mb=512, so an allocation
# sized by a bad count in a small file is a finding, not just slow. Exits non-zero when any
# target finds something; the crashing inputs land in fuzz/findings/<target>/ (git-ignored).
# Environment: SMOL_FUZZ_BUILD_DIR (default build-fuzz), SMOL_FUZZ_JOBS (build jobs, default
# nproc), SMOL_FUZZ_PARALLEL (targets fuzzed at once, default 1; CI uses nproc),
# SMOL_FUZZ_KEEP_CORPUS=1 (keep the grown scratch corpus under fuzz/findings/).
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=${SMOL_FUZZ_BUILD_DIR:-build-fuzz}
findings_root=fuzz/findings

# target  max_len  dictionaries (beside fuzz/dict/<target>.dict)
targets_table() {
  cat <<'EOF'
gguf            16384
safetensors     4096   json
hf_config       4096   json
tokenizer_json  16384  json
sentencepiece   16384
dataset         4096   json
batch_jsonl     4096   json
checkpoint      8192   json safetensors
peft_adapter    8192   json safetensors
run_config      8192
EOF
}
all_targets() { targets_table | awk '{print $1}'; }
target_field() { targets_table | awk -v t="$1" -v f="$2" '$1 == t {print $f}'; }
target_extra_dicts() { targets_table | awk -v t="$1" '$1 == t {for (i = 3; i <= NF; ++i) print $i}'; }

usage() {
  awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$0"
  exit 2
}

build() {
  local compiler_launcher=()
  if command -v ccache >/dev/null; then compiler_launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
  if [[ ! -f $build_dir/build.ninja ]]; then
    cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Debug \
      -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ "${compiler_launcher[@]}" \
      -DSMOL_BUILD_FUZZ=ON -DSMOL_CUDA=OFF -DSMOL_BUILD_TESTS=OFF -DSMOL_BUILD_BENCH=OFF >/dev/null
  fi
  cmake --build "$build_dir" --target fuzz_all -j "${SMOL_FUZZ_JOBS:-$(nproc)}"
}

# The merged dictionary of a target, in a scratch file.
dictionary_for() {
  local target=$1 out=$2
  : >"$out"
  [[ -f fuzz/dict/$target.dict ]] && cat "fuzz/dict/$target.dict" >>"$out"
  for extra in $(target_extra_dicts "$target"); do cat "fuzz/dict/$extra.dict" >>"$out"; done
}

common_flags=(-rss_limit_mb=1024 -malloc_limit_mb=512 -timeout=10 -print_final_stats=1)
export OMP_NUM_THREADS=1
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:allocator_may_return_null=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# fuzz_target TARGET SECONDS: prints one summary line; returns non-zero on a finding.
fuzz_target() {
  local target=$1 seconds=$2
  local binary=$build_dir/fuzz_$target
  local work
  work=$(mktemp -d "${TMPDIR:-/tmp}/smol-fuzz-$target.XXXXXX")
  mkdir -p "$work/corpus" "$findings_root/$target"
  cp fuzz/corpus/"$target"/* "$work/corpus/"
  dictionary_for "$target" "$work/dict"
  local dict_flag=()
  [[ -s $work/dict ]] && dict_flag=(-dict="$work/dict")
  local log=$work/log status=0
  local started=$SECONDS
  "$binary" "${common_flags[@]}" -max_total_time="$seconds" -max_len="$(target_field "$target" 2)" \
    "${dict_flag[@]}" -artifact_prefix="$findings_root/$target/" "$work/corpus" >"$log" 2>&1 ||
    status=$?
  local elapsed=$((SECONDS - started))
  local execs cov ft
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | awk '{print $2}')
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | awk '{print $2}')
  printf '%-16s %10s execs  cov %-6s ft %-7s corpus %-5s %4ss  %s\n' "$target" "${execs:-?}" \
    "${cov:-?}" "${ft:-?}" "$(ls "$work/corpus" | wc -l)" "$elapsed" \
    "$([[ $status == 0 ]] && echo ok || echo "FINDING (exit $status)")"
  if [[ $status != 0 ]]; then
    cp "$log" "$findings_root/$target/log-$(date +%Y%m%d-%H%M%S).txt"
    grep -E 'ERROR: |SUMMARY: |fuzz: |runtime error|Test unit written' "$log" | head -20 | sed 's/^/    /'
  fi
  if [[ ${SMOL_FUZZ_KEEP_CORPUS:-0} == 1 ]]; then
    mkdir -p "$findings_root/$target/corpus" && cp "$work/corpus"/* "$findings_root/$target/corpus/"
  fi
  rm -rf "$work"
  return "$status"
}

# regress_target TARGET: every committed corpus file once.
regress_target() {
  local target=$1 log status=0
  log=$(mktemp)
  "$build_dir/fuzz_$target" "${common_flags[@]}" fuzz/corpus/"$target"/* >"$log" 2>&1 || status=$?
  printf '%-16s %4s files  %s\n' "$target" "$(ls fuzz/corpus/"$target" | wc -l)" \
    "$([[ $status == 0 ]] && echo ok || echo "FAILED (exit $status)")"
  [[ $status == 0 ]] || grep -E 'ERROR: |SUMMARY: |fuzz: |runtime error|Running: ' "$log" | tail -20 | sed 's/^/    /'
  rm -f "$log"
  return "$status"
}

mode=${1:-all}
case $mode in
  -h | --help | help) usage ;;
  list) all_targets; exit 0 ;;
esac

if [[ $mode == regress ]]; then
  selection=${2:-all}
  runner=regress_target
else
  selection=$mode
  seconds=${2:-60}
  runner=fuzz_target
fi
if [[ $selection == all ]]; then
  selected=$(all_targets)
else
  target_field "$selection" 1 | grep -q . || { echo "fuzz.sh: unknown target '$selection' (scripts/fuzz.sh list)" >&2; exit 2; }
  selected=$selection
fi

build
failures=0
if [[ $runner == fuzz_target && ${SMOL_FUZZ_PARALLEL:-1} -gt 1 ]]; then
  # Several targets at once (one core each); summaries printed in table order afterwards.
  results=$(mktemp -d)
  running=0
  for target in $selected; do
    (fuzz_target "$target" "$seconds" >"$results/$target.out" 2>&1; echo $? >"$results/$target.rc") &
    running=$((running + 1))
    if [[ $running -ge $SMOL_FUZZ_PARALLEL ]]; then wait -n || true; running=$((running - 1)); fi
  done
  wait || true
  for target in $selected; do
    cat "$results/$target.out"
    [[ $(cat "$results/$target.rc") == 0 ]] || failures=$((failures + 1))
  done
  rm -rf "$results"
else
  for target in $selected; do
    if [[ $runner == fuzz_target ]]; then
      fuzz_target "$target" "$seconds" || failures=$((failures + 1))
    else
      regress_target "$target" || failures=$((failures + 1))
    fi
  done
fi
if [[ $failures != 0 ]]; then
  echo "fuzz.sh: $failures target(s) with findings (inputs under $findings_root/)" >&2
  exit 1
fi
echo "fuzz.sh: no findings"
