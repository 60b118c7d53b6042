#!/usr/bin/env bash
# The newcomer's one command: install dependencies, build, fetch SmolLM2-135M-Instruct, then
# fine-tune it with LoRA on a GSM8K slice on the CPU (configs/quickstart_gsm8k.yaml: about ten
# minutes on 2 cores), evaluating generative GSM8K accuracy on 8 test questions before and
# after. The console shows the loss falling; the run directory holds the report.
#   SMOL_QUICKSTART_DIR   run directory (default runs/quickstart_gsm8k; replaced each time)
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="${SMOL_CUDA_ARCHS:-80;86;89;90}"
cmake --build build -j "$(nproc)" --target smolengine
bash scripts/fetch-model.sh

# libgomp's default spin-waiting slows the cpu backend down badly on a shared machine.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
run_dir=${SMOL_QUICKSTART_DIR:-runs/quickstart_gsm8k}
rm -rf "$run_dir"
echo "== smolengine train configs/quickstart_gsm8k.yaml --device cpu --output-dir $run_dir"
build/smolengine train configs/quickstart_gsm8k.yaml --device cpu --output-dir "$run_dir"

echo
echo "== before and after (eval events in $run_dir/metrics.jsonl)"
grep '"kind":"eval"' "$run_dir/metrics.jsonl" |
  sed -E 's/.*"step":([0-9]+).*"eval_loss":([^,]+).*"eval_gsm8k_accuracy":([^,]+).*/step \1: eval_loss \2, gsm8k_accuracy \3/'
echo
echo "== one answer after training ($run_dir/eval_predictions.jsonl)"
head -n 1 "$run_dir/eval_predictions.jsonl"
echo
echo "report: $run_dir/report.html   adapter (PEFT): $run_dir/adapter_model.safetensors"
