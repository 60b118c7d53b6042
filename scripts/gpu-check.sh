#!/usr/bin/env bash
# gpu-check.sh — build the test suites and kernel benchmarks for a GPU on a build machine, and
# run them natively on a GPU host that has only the NVIDIA driver and the CUDA 13 runtime
# libraries (no compiler, no network). docs/design.md §10 (item 4).
#
#   scripts/gpu-check.sh --pack DIR [--arch 90]   build (Release, one CUDA arch, default sm_90)
#                                                 and bundle binaries + their non-CUDA shared
#                                                 libraries + small test data into DIR
#   scripts/gpu-check.sh --run DIR                run every test binary with
#                                                 SMOL_TEST_DEVICE=cuda, then the benchmarks
#                                                 (kernels, training step with MFU, generative
#                                                 eval, prefill/decode, decode and training
#                                                 steps with CUDA graphs off/on), all in
#                                                 one time budget; one summary table last
#
# The bundle (~30 MB: binaries and libraries xz-compressed) fits the device machine's 64 MiB
# carry; the host's CUDA toolkit and NCCL wheel provide cuBLAS, cuSOLVER and libnccl.
#
# Environment: SMOL_BUILD_DIR (default build-gpu-pack), SMOL_GPU_CHECK_NO_BUILD=1 (pack what
# SMOL_BUILD_DIR already holds, without configuring or building: the ctest of --pack uses it),
# SMOL_GPU_CHECK_TIMEOUT (seconds per test binary, default 240), SMOL_GPU_CHECK_BUDGET (seconds
# for the whole --run, default 450), SMOL_GPU_CHECK_TEST_BUDGET (of which the test suites, default
# 200), SMOL_GPU_CHECK_TESTS (test
# binaries to run, default all), SMOL_BENCH_DEVICE (default cuda) and
# SMOL_GPU_CHECK_COMPRESS=none (leave the bundle uncompressed).
set -euo pipefail

usage() {
  sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
}

pack() {
  local dir=$1 arch=$2
  local repo
  repo=$(cd "$(dirname "$0")/.." && pwd)
  local build=${SMOL_BUILD_DIR:-$repo/build-gpu-pack}
  if [ "${SMOL_GPU_CHECK_NO_BUILD:-0}" = 1 ]; then
    echo "gpu-check: packing the existing build in $build (no build)"
    [ -d "$build/tests" ] || { echo "gpu-check: $build/tests does not exist" >&2; exit 1; }
  else
    echo "gpu-check: building for sm_${arch} in $build"
    cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSMOL_CUDA=ON \
      -DCMAKE_CUDA_ARCHITECTURES="$arch" -DSMOL_BUILD_TESTS=ON -DSMOL_BUILD_BENCH=ON >/dev/null
    cmake --build "$build" -j "$(nproc)"
  fi

  rm -rf "$dir"
  mkdir -p "$dir/bin" "$dir/bench" "$dir/lib" "$dir/src/tests" "$dir/src/models" "$dir/shared/data"
  # Test executables (one per tests/<area>) and benchmark executables.
  find "$build/tests" -maxdepth 2 -type f -perm -u+x -name '*_tests' -exec cp {} "$dir/bin/" \;
  for bench in cuda_kernels_bench training_bench model_bench decode_bench; do
    if [ -x "$build/bench/$bench" ]; then cp "$build/bench/$bench" "$dir/bench/"; fi
  done
  # The CLI is written to the build root (build/smolengine).
  if [ -x "$build/smolengine" ]; then cp "$build/smolengine" "$dir/bin/"; fi
  strip --strip-unneeded "$dir"/bin/* "$dir"/bench/* 2>/dev/null || true

  # Shared libraries the binaries need, except the GPU host's own (driver, CUDA runtime and
  # cuBLAS come with the host) and glibc itself (it must match the host's kernel interface).
  # The GPU host's CUDA 13 image has the toolkit's libraries (cuSOLVER, cuSPARSE, nvJitLink) and
  # NCCL (its Python wheel): shipping them would take the bundle from ~30 MB to over 600 MB.
  local skip='^(libcuda|libcudart|libcublas|libcublasLt|libcusolver|libcusparse|libnvJitLink|libnccl|libnvidia|libc\.so|libm\.so|libdl\.so|libpthread\.so|librt\.so|ld-linux|linux-vdso)'
  for bin in "$dir"/bin/* "$dir"/bench/*; do
    [ -f "$bin" ] || continue
    ldd "$bin" | awk '/=>/ && $3 ~ /^\// {print $1, $3}' | while read -r name path; do
      if [[ ! $name =~ $skip ]] && [ ! -e "$dir/lib/$name" ]; then cp -L "$path" "$dir/lib/$name"; fi
    done
  done

  # Every binary links the whole engine statically (~10 MB each, 280 MB in all with the
  # libraries); the device machine takes 64 MiB. xz -9's 64 MiB dictionary reaches back across
  # whole binaries and finds their shared code: 22 MB (xz -6's 8 MiB window gave 56 MB, a bundle
  # of 63 MiB, at the limit). About two minutes on one core; 65 MiB of memory to unpack. SMOL_GPU_CHECK_COMPRESS=none leaves the folders as they are (the ctest
  # of --pack, which only checks what is there).
  local contents
  contents="binaries: $(ls "$dir/bin" | wc -l), benchmarks: $(ls "$dir/bench" | wc -l), libraries: $(ls "$dir/lib" | wc -l)"
  if [ "${SMOL_GPU_CHECK_COMPRESS:-xz}" != none ]; then
    echo "gpu-check: compressing binaries and libraries (xz, a few minutes on 2 cores)"
    tar -C "$dir" -cf - bin bench lib | xz -9 -T0 >"$dir/payload.tar.xz"
    rm -rf "$dir/bin" "$dir/bench" "$dir/lib"
  fi

  # The generative-eval benchmark needs the SmolLM2 tokenizer, and the GGUF that carries it is too
  # large to travel: export it (tokenizer.json) from a one-step tiny run, dropping the weights.
  if [ -x "$build/smolengine" ] && [ -f "$repo/models/SmolLM2-135M-Instruct.Q4_1.gguf" ] &&
    [ -d "$repo/../shared/data/gsm8k" ]; then
    local tok_run
    tok_run=$(mktemp -d)
    if "$build/smolengine" train "$repo/configs/tiny_gsm8k.yaml" --device cpu \
      --data-dir "$repo/../shared/data" --output-dir "$tok_run/run" \
      --set tokenizer.name_or_path="$repo/models/SmolLM2-135M-Instruct.Q4_1.gguf" \
      --set training.max_steps=1 --set training.eval_strategy=no --set training.save_steps=1 \
      >"$tok_run/log" 2>&1 &&
      "$build/smolengine" export "$tok_run/run/checkpoint-1" --out "$dir/tokenizer" >>"$tok_run/log" 2>&1; then
      rm -f "$dir/tokenizer/model.safetensors"
    else
      echo "gpu-check: WARNING: no tokenizer for the eval benchmark:"; cat "$tok_run/log"
    fi
    rm -rf "$tok_run"
  fi
  mkdir -p "$dir/src/configs/bench" "$dir/compare"
  cp "$repo/configs/bench/gsm8k_eval_speed.yaml" "$dir/src/configs/bench/"
  cp "$repo/bench/compare/torch_peft_step.py" "$repo/bench/compare/torch_attention.py" "$dir/compare/"

  # Small test data at the paths the tests expect relative to SMOL_SOURCE_DIR.
  cp -r "$repo/tests/golden" "$dir/src/tests/"
  if [ -d "$repo/../shared/data/gsm8k" ]; then cp -r "$repo/../shared/data/gsm8k" "$dir/shared/data/"; fi
  echo "$repo" >"$dir/source_dir.txt"  # the SMOL_SOURCE_DIR compiled into the tests
  cp "$0" "$dir/gpu-check.sh"
  echo "gpu-check: packed $(du -sh "$dir" | cut -f1) into $dir ($contents)"
}

run() {
  local dir
  dir=$(cd "$1" && pwd)
  if [ ! -d "$dir/bin" ]; then xz -dc "$dir/payload.tar.xz" | tar -C "$dir" -xf -; fi
  # The host's own CUDA libraries: the toolkit's lib64 and the NCCL wheel's lib directory.
  local host_libs=""
  for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
    [ -d "$d" ] && host_libs+=":$d"
  done
  local nccl_dir
  nccl_dir=$(python3 -c 'import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], "lib"))' 2>/dev/null || true)
  [ -n "$nccl_dir" ] && [ -d "$nccl_dir" ] && host_libs+=":$nccl_dir"
  export LD_LIBRARY_PATH="$dir/lib$host_libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  local missing
  missing=$(ldd "$dir"/bin/* 2>/dev/null | grep 'not found' | sort -u || true)
  [ -n "$missing" ] && echo "gpu-check: WARNING: libraries not found on this host:" && echo "$missing"
  export SMOL_TEST_DEVICE=cuda
  local timeout_s=${SMOL_GPU_CHECK_TIMEOUT:-240}
  # Tests find their data under the source dir compiled into them; point it at the pack.
  local src
  src=$(cat "$dir/source_dir.txt")
  if [ ! -e "$src" ]; then
    mkdir -p "$(dirname "$src")" 2>/dev/null && ln -s "$dir/src" "$src" 2>/dev/null ||
      echo "gpu-check: WARNING: cannot create $src; tests that need data will skip or fail"
  fi
  if [ ! -e "$src/../shared" ]; then ln -s "$dir/shared" "$src/../shared" 2>/dev/null || true; fi
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null ||
    echo "gpu-check: WARNING: nvidia-smi not found"

  local logs="$dir/logs"
  mkdir -p "$logs"
  # One call, one budget (issue 12: everything in under 8 minutes): SMOL_GPU_CHECK_BUDGET seconds
  # in all (default 450, which leaves the unpacking and the tables inside 8 minutes), of which the
  # test suites may take SMOL_GPU_CHECK_TEST_BUDGET (default 200). Each stage runs under the
  # smaller of its own limit and what is left; a stage with under 20 s left is skipped and named
  # in the summary. The benchmarks run most telling first.
  local budget=${SMOL_GPU_CHECK_BUDGET:-450} test_budget=${SMOL_GPU_CHECK_TEST_BUDGET:-200}
  local skipped=""
  SECONDS=0
  # limit WANT [CAP]: the seconds the next stage may take (CAP: the budget it draws on), 0 to skip.
  limit() {
    local want=$1 cap=${2:-$budget} left
    ((cap <= budget)) || cap=$budget
    left=$((cap - SECONDS))
    if ((left < 20)); then echo 0; elif ((want < left)); then echo "$want"; else echo "$left"; fi
  }
  # stage NAME WANT LOG COMMAND...: COMMAND, its output appended to LOG, under limit WANT.
  stage() {
    local name=$1 want=$2 log=$3 t
    shift 3
    t=$(limit "$want")
    if [ "$t" = 0 ]; then
      skipped+="$name; "
      if [[ $log != *.csv ]]; then echo "(not run: the budget was spent)" >>"$log"; fi
      return 0
    fi
    echo "gpu-check: $name (at ${SECONDS} s, up to $t s)"
    if [[ $log == *.csv ]]; then  # a table: its stderr (the device line, errors) beside it
      timeout "$t" "$@" >>"$log" 2>>"${log%.csv}.err" || echo "$name failed or ran out of time" >>"${log%.csv}.err"
    else
      timeout "$t" "$@" >>"$log" 2>&1 || echo "$name failed or ran out of time" >>"$log"
    fi
  }

  local summary="" failed=0 passed=0 not_run=0
  local selected=${SMOL_GPU_CHECK_TESTS:-$(cd "$dir/bin" && ls -- *_tests)}
  # comm_mpi_tests is itself one rank of an mpirun job (ctest starts it so); dist_tests starts
  # its ranks with mpirun, which a bare GPU host lacks (the MPI libraries travel in the bundle,
  # the launcher does not). Neither needs the GPU: CI runs both on cpu and cuda-emu.
  local kept=""
  for name in $selected; do
    if [ "$name" = comm_mpi_tests ] || { [ "$name" = dist_tests ] && ! command -v mpirun >/dev/null 2>&1; }; then
      summary+=$(printf '%-22s %-4s %s' "$name" "NOT RUN" "(multi-process: needs mpirun; CI runs it)")$'\n'
      not_run=$((not_run + 1))
    else
      kept+="$name "
    fi
  done
  selected=$kept
  for name in $selected; do
    local bin="$dir/bin/$name" t
    local status=PASS
    t=$(limit "$timeout_s" "$test_budget")
    if [ "$t" = 0 ]; then
      summary+=$(printf '%-22s %-4s %s' "$name" "NOT RUN" "(the tests' budget was spent)")$'\n'
      not_run=$((not_run + 1))
      skipped+="$name; "
      continue
    fi
    timeout "$t" "$bin" --gtest_brief=1 >"$logs/$name.log" 2>&1 || status=FAIL
    if [ $status = FAIL ]; then failed=$((failed + 1)); else passed=$((passed + 1)); fi
    local counts
    counts=$(grep -E '^\[  (PASSED|FAILED|SKIPPED) ' "$logs/$name.log" | sed 's/^\[ *//; s/ *\]//' | tr '\n' ' ')
    summary+=$(printf '%-22s %-4s %s' "$name" "$status" "$counts")$'\n'
    echo "gpu-check: $name $status (at ${SECONDS} s)"
  done

  local bench_csv="$logs/cuda_kernels_bench.csv" step_log="$logs/training_bench.log"
  local eval_log="$logs/eval_speed.log" decode_log="$logs/decode_bench.log"
  local sampled_log="$logs/decode_sampled.log" sdpa_log="$logs/torch_attention.log"
  local train_graph_log="$logs/training_bench_graphs.log"
  local unfused_log="$logs/training_bench_unfused.log" torch_log="$logs/torch_peft_step.log"
  local model_log="$logs/model_bench.log" dropout_log="$logs/training_bench_lora_dropout.log"
  : >"$bench_csv"
  : >"${bench_csv%.csv}.err"
  : >"$step_log"
  : >"$eval_log"
  : >"$decode_log"
  : >"$sampled_log"
  : >"$sdpa_log"
  : >"$train_graph_log"
  : >"$unfused_log"
  : >"$torch_log"
  : >"$model_log"
  : >"$dropout_log"
  # End to end: a whole optimizer step at SmolLM2-135M shape (tokens/s, MFU, peak memory, op
  # breakdown) at the issue's two packings.
  if [ -x "$dir/bench/training_bench" ]; then
    for shape in "8 1024" "16 512"; do
      set -- $shape
      stage "training_bench $1x$2" 150 "$step_log" "$dir/bench/training_bench" --device cuda \
        --rows "$1" --length "$2" --steps 5 --mode all --breakdown
    done
  fi
  # Generative GSM8K evaluation: 1,319 questions × 256 greedy tokens (random weights: an upper
  # bound, configs/bench/gsm8k_eval_speed.yaml).
  if [ -x "$dir/bin/smolengine" ] && [ -f "$dir/tokenizer/tokenizer.json" ]; then
    stage "generative eval" 120 "$eval_log" "$dir/bin/smolengine" eval \
      "$dir/src/configs/bench/gsm8k_eval_speed.yaml" --device cuda --data-dir "$dir/shared/data" \
      --set tokenizer.name_or_path="$dir/tokenizer" --set training.output_dir="$logs/eval_speed"
  fi
  # Kernels: attention, the fused LM head, matmuls, elementwise ops, with their share of the
  # device's peak.
  if [ -x "$dir/bench/cuda_kernels_bench" ]; then
    stage "cuda_kernels_bench" 120 "$bench_csv" "$dir/bench/cuda_kernels_bench" \
      --benchmark_min_time=0.2 --benchmark_format=csv
  fi
  # The decode step as a CUDA graph and eagerly (SMOL_CUDA_GRAPHS A/B in one process,
  # docs/design.md §2.8): greedy steps at batch 1, 16, 64, tokens/s and ms per step.
  if [ -x "$dir/bench/decode_bench" ]; then
    stage "decode graphs A/B" 90 "$decode_log" "$dir/bench/decode_bench" --device cuda \
      --batches 1,16,64 --steps 64 --repeats 3
    # Sampled steps draw on the device too (Backend::sample_tokens, docs/design.md §3).
    stage "decode sampled" 45 "$sampled_log" "$dir/bench/decode_bench" --device cuda \
      --batches 1,64 --steps 64 --repeats 2 --temperature 0.8
  fi
  # The training step as one CUDA graph and eagerly (docs/design.md §2.8; training_bench
  # --graphs both: the same model off, then on, in one process), LoRA q,v and full FT at 8 × 1024.
  if [ -x "$dir/bench/training_bench" ]; then
    for mode in lora full; do
      stage "training graphs A/B $mode" 90 "$train_graph_log" "$dir/bench/training_bench" \
        --device cuda --rows 8 --length 1024 --steps 5 --mode "$mode" --graphs both
    done
  fi
  # A/B of the fusions of docs/design.md §2.9 (residual adds in the GEMMs, the concatenated
  # SwiGLU backward): the same step with SMOL_FUSION=0, LoRA q,v and full FT at 8 × 1024.
  if [ -x "$dir/bench/training_bench" ]; then
    for mode in lora full; do
      stage "fusion A/B $mode" 90 "$unfused_log" env SMOL_FUSION=0 "$dir/bench/training_bench" \
        --device cuda --rows 8 --length 1024 --steps 5 --mode "$mode"
    done
  fi
  # LoRA with the shipped configs' dropout 0.1 (docs/design.md §2.7 "LoRA dropout on the fly"):
  # the masks drawn inside the fused down-projection kernels (grouping on) against the
  # per-projection path (grouping off: dropout + matmul + axpy per adapter), LoRA q,v at 8 × 1024.
  if [ -x "$dir/bench/training_bench" ]; then
    for grouping in on off; do
      stage "lora dropout 0.1 grouping $grouping" 60 "$dropout_log" "$dir/bench/training_bench" \
        --device cuda --rows 8 --length 1024 --steps 5 --mode lora --lora-dropout 0.1 \
        --lora-grouping "$grouping"
    done
  fi
  # The reference stack on the same shapes, when the host has torch + transformers + peft.
  if python3 -c 'import torch, transformers, peft' 2>/dev/null; then
    for shape in "8 1024" "16 512"; do
      set -- $shape
      stage "torch+peft $1x$2" 150 "$torch_log" python3 "$dir/compare/torch_peft_step.py" \
        --device cuda --rows "$1" --length "$2" --steps 5 --mode all
    done
  else
    echo "(torch, transformers or peft not importable here)" >>"$torch_log"
  fi
  # Vendor attention on the same shapes as BM_cuda_attention_*: torch SDPA's flash, cuDNN and
  # memory-efficient kernels (docs/design.md §2.5: cuDNN is compared here, not built in).
  if python3 -c 'import torch' 2>/dev/null; then
    stage "torch sdpa attention" 60 "$sdpa_log" python3 "$dir/compare/torch_attention.py" \
      --device cuda
  else
    echo "(torch not importable here)" >>"$sdpa_log"
  fi
  if [ -x "$dir/bench/model_bench" ]; then
    stage "model_bench" 90 "$model_log" "$dir/bench/model_bench" --device cuda
  fi

  echo
  echo "=== test suites (SMOL_TEST_DEVICE=cuda; logs in $logs) ==="
  printf '%s' "$summary"
  echo
  echo "=== cuda kernels: max |error| vs cpu (cuda_ops_tests) ==="
  grep -h '^\[ max-err' "$logs/cuda_ops_tests.log" 2>/dev/null | sed 's/^\[ max-err  \] //' ||
    echo "(none: cuda_ops_tests did not run on the GPU; see its log)"
  echo
  echo "=== cuda kernel benchmarks (T=4096, SmolLM2-135M shapes) ==="
  if [ -s "$bench_csv" ]; then
    # CSV: name,iterations,real_time,cpu_time,time_unit,bytes_per_second,items_per_second,
    #      label,error_occurred,error_message[,FLOP/s]
    awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
      /^"/ {
        name = $1; gsub(/"/, "", name)
        t = $(col["real_time"]); unit = $(col["time_unit"])
        bw = $(col["bytes_per_second"]); fl = (col["\"FLOP/s\""] ? $(col["\"FLOP/s\""]) : "")
        if (fl == "" && col["FLOP/s"]) fl = $(col["FLOP/s"])
        if ($(col["error_occurred"]) == "true") { msg = $(col["error_message"]); gsub(/"/, "", msg)
          printf "%-40s %s\n", name, "error: " msg; next }
        rate = (fl != "" && fl + 0 > 0) ? sprintf("%8.2f TFLOP/s", fl / 1e12) : sprintf("%8.1f GB/s", bw / 1e9)
        scale = unit == "ns" ? 1e-3 : unit == "ms" ? 1e3 : unit == "s" ? 1e6 : 1
        pf = col["\"%peak_FLOP\""] ? $(col["\"%peak_FLOP\""]) + 0 : 0
        pb = col["\"%peak_BW\""] ? $(col["\"%peak_BW\""]) + 0 : 0
        peak = (pf > 0 ? sprintf("  %5.1f%% of peak FLOP/s", pf) : "") (pb > 0 ? sprintf("  %5.1f%% of peak bandwidth", pb) : "")
        printf "%-40s %12.1f us %s%s\n", name, t * scale, rate, peak
      }' "$bench_csv"
  else
    echo "(no benchmark output; see $logs/cuda_kernels_bench.err)"
  fi
  echo
  echo "=== training step, SmolLM2-135M (training_bench --device cuda) ==="
  grep -E '^(lora|lora-all|full) ' "$step_log" 2>/dev/null || echo "(none; see $step_log)"
  echo "--- the same with SMOL_FUSION=0 (docs/design.md §2.9 A/B; compare the 8 x 1024 rows above)"
  grep -E '^(lora|full) ' "$unfused_log" 2>/dev/null | sed 's/^/unfused /' ||
    echo "(none; see $unfused_log)"
  echo
  echo "--- LoRA q,v with dropout 0.1: fused masks (grouping on) / per projection (grouping off)"
  grep -E '^lora ' "$dropout_log" 2>/dev/null || echo "(none; see $dropout_log)"
  echo
  echo "=== training step, CUDA graphs off / on (training_bench --graphs both; SMOL_CUDA_GRAPHS) ==="
  grep -E '^(lora|full) |failed|error' "$train_graph_log" 2>/dev/null ||
    echo "(none; see $train_graph_log)"
  echo
  echo "=== the same step in PyTorch + PEFT (bf16 autocast, fused AdamW; the ratio is in the summary) ==="
  grep -E '^torch-' "$torch_log" 2>/dev/null || tail -3 "$torch_log"
  echo
  echo "=== generative GSM8K eval, 1,319 questions (smolengine eval --device cuda) ==="
  grep -E '"eval_(runtime|generated_tokens|generated_samples)"|error|failed' "$eval_log" 2>/dev/null ||
    echo "(none; see $eval_log)"
  echo
  echo "=== prefill / decode (model_bench --device cuda) ==="
  cat "$model_log" 2>/dev/null || echo "(none)"
  echo
  echo "=== decode step, CUDA graphs off / on (decode_bench --device cuda; SMOL_CUDA_GRAPHS) ==="
  grep -E '^(step floor|\| (graphs|on|off) )|failed|error' "$decode_log" 2>/dev/null ||
    echo "(none; see $decode_log)"

  echo
  echo "=== vendor attention on the same shapes (bench/compare/torch_attention.py) ==="
  cat "$sdpa_log" 2>/dev/null || echo "(none)"

  # ---- one table: the numbers issue 12 asks for, each from its log above -------------------
  echo
  echo "=== summary: $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1) ==="
  printf '| %-44s | %s |\n' "what" "result"
  printf '|%s|%s|\n' "----------------------------------------------" "------------------------------------------------"
  printf '| %-44s | %s |\n' "test suites (SMOL_TEST_DEVICE=cuda)" \
    "$passed pass, $failed fail, $not_run not run"
  # training_bench lines: mode device precision graphs G trainable N batch R x L step S s
  # X tokens/s ... [MFU M%] peak memory P MB
  awk -v tag="" '/^(lora|lora-all|full) / {
      match($0, /batch [0-9]+ x [0-9]+/); shape = substr($0, RSTART + 6, RLENGTH - 6); gsub(/ /, "", shape)
      match($0, /[0-9.]+ tokens\/s/); tps = substr($0, RSTART, RLENGTH)
      mfu = ""; if (match($0, /MFU +[0-9.]+%/)) mfu = ", " substr($0, RSTART, RLENGTH)
      mem = ""; if (match($0, /peak memory +[0-9.]+ MB/)) mem = ", " substr($0, RSTART, RLENGTH)
      printf "| %-44s | %s%s%s |\n", "training step " $1 " " shape, tps, mfu, mem }' "$step_log"
  awk '/^(lora|full) / {
      g = ""; if (match($0, /graphs (on|off)/)) g = substr($0, RSTART + 7, RLENGTH - 7)
      match($0, /[0-9.]+ tokens\/s/); r[$1] = r[$1] (r[$1] == "" ? "" : " / ") substr($0, RSTART, RLENGTH - 9)
      n[$1] = n[$1] (n[$1] == "" ? "" : "/") g }
    END { for (m in r) printf "| %-44s | %s tokens/s |\n", "training step " m " 8x1024, graphs " n[m], r[m] }' \
    "$train_graph_log" | sort
  awk '/^(lora|full) / { match($0, /[0-9.]+ tokens\/s/)
      printf "| %-44s | %s |\n", "training step " $1 " 8x1024, SMOL_FUSION=0", substr($0, RSTART, RLENGTH) }' \
    "$unfused_log"
  awk '/^lora / { match($0, /[0-9.]+ tokens\/s/); tps = substr($0, RSTART, RLENGTH)
      g = ""; if (match($0, /grouping (on|off)/)) g = substr($0, RSTART + 9, RLENGTH - 9)
      printf "| %-44s | %s |\n", "training step lora 8x1024, dropout 0.1, " (g == "on" ? "fused" : "per proj."), tps }' \
    "$dropout_log"
  # Ratio per (mode, batch): ours / torch's tokens/s, lines matched by mode and "batch R x L".
  awk '/^(lora|lora-all|full) / || /^torch-/ {
         mode = $1; sub(/^torch-/, "", mode)
         match($0, /batch [0-9]+ x [0-9]+/); key = mode " " substr($0, RSTART, RLENGTH)
         match($0, /[0-9.]+ tokens\/s/); tps = substr($0, RSTART, RLENGTH) + 0
         if ($1 ~ /^torch-/) theirs[key] = tps; else ours[key] = tps }
       END { for (k in ours) if (k in theirs && theirs[k] > 0)
               printf "| %-44s | %.2fx |\n", "vs torch+peft " k, ours[k] / theirs[k] }' \
    "$step_log" "$torch_log" 2>/dev/null | sort
  awk 'function value(key,   v) { if (!match($0, "\"" key "\": *[0-9.eE+-]+")) return ""
        v = substr($0, RSTART, RLENGTH); sub(/^[^:]*: */, "", v); return v }
      { v = value("eval_runtime"); if (v != "") rt = v
        v = value("eval_generated_samples"); if (v != "") n = v }
      END { if (rt != "") printf "| %-44s | %s s for %s questions |\n", "generative GSM8K eval", rt, n }' \
    "$eval_log"
  # decode_bench --device rows: | graphs | batch | tokens/s | ms/step | ...
  awk -F'|' '$2 ~ /^ *(on|off) *$/ { g = $2; gsub(/ /, "", g); b = $3; gsub(/ /, "", b)
      t = $4; gsub(/ /, "", t); r[b] = r[b] (r[b] == "" ? "" : ", ") "graphs " g " " t }
    END { for (b in r) printf "| %-44s | %s tokens/s |\n", "decode batch " b, r[b] }' "$decode_log" | sort -t' ' -k4 -n
  awk -F'|' '$2 ~ /^ *on *$/ { b = $3; gsub(/ /, "", b); t = $4; gsub(/ /, "", t)
      printf "| %-44s | %s tokens/s |\n", "decode sampled (T 0.8, top_p 0.9) batch " b, t }' \
    "$sampled_log" 2>/dev/null
  if [ -s "$bench_csv" ]; then
    awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
      /^"BM_cuda_lora_(down|up)/ {
        name = $1; gsub(/"/, "", name); sub(/^BM_cuda_/, "", name); sub(/\/real_time$/, "", name)
        t = $(col["real_time"]); unit = $(col["time_unit"])
        scale = unit == "ns" ? 1e-3 : unit == "ms" ? 1e3 : unit == "s" ? 1e6 : 1
        printf "| %-44s | %.1f us |\n", name, t * scale }
      /^"BM_cuda_(attention|lm_head)/ {
        name = $1; gsub(/"/, "", name); sub(/^BM_cuda_/, "", name); sub(/\/real_time$/, "", name)
        fl = col["\"FLOP/s\""] ? $(col["\"FLOP/s\""]) + 0 : 0
        pf = col["\"%peak_FLOP\""] ? $(col["\"%peak_FLOP\""]) + 0 : 0
        extra = pf > 0 ? sprintf(", %.1f%% of peak", pf) : ""
        if (fl > 0) printf "| %-44s | %.1f TFLOP/s%s |\n", name, fl / 1e12, extra }' \
      "$bench_csv"
  fi
  # torch_attention.py lines: torch-sdpa NAME SxL: forward F ms X TFLOP/s, backward B ms Y TFLOP/s
  awk '/^torch-sdpa .*TFLOP/ { line = $0; sub(/^torch-sdpa +/, "", line)
      split(line, part, ":"); name = part[1]; gsub(/ +/, " ", name)
      n = split(part[2], w, " "); printf "| %-44s | forward %s, backward %s TFLOP/s |\n",
        "torch sdpa " name, w[4], w[9] }' "$sdpa_log" 2>/dev/null
  printf '| %-44s | %s |\n' "gpu-check time" "${SECONDS} s of a ${budget} s budget"
  [ -n "$skipped" ] && printf '| %-44s | %s |\n' "not run (budget spent)" "$skipped"
  return $((failed > 0))
}

[ $# -ge 2 ] || usage
case $1 in
  --pack)
    arch=90
    if [ "${3:-}" = "--arch" ]; then arch=${4:?--arch needs a value}; fi
    arch=${arch#sm_}
    pack "$2" "$arch"
    ;;
  --run) run "$2" ;;
  *) usage ;;
esac
