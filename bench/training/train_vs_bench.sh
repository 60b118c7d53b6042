#!/usr/bin/env bash
# tokens/s of `smolengine train` vs build/bench/training_bench at the same shapes (4 × 512
# tokens per step, LoRA r 8 q/v, SmolLM2-135M shape, cpu): the loop's overhead (data, logging,
# optimizer bookkeeping) should be a few percent at most. Prints both and their ratio.
#   bench/training/train_vs_bench.sh [STEPS]     (needs the fetched GGUF for the tokenizer)
set -euo pipefail
cd "$(dirname "$0")/../.."
steps=${1:-6}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
data=/tmp/smol_train_speed.jsonl
# Rows far longer than 512 tokens (several GSM8K questions / answers joined), cut at 512 with
# the prompt kept whole (~25% of the tokens unsupervised, as training_bench masks a quarter).
python3 - "$data" <<'PY'
import json, sys
rows = [json.loads(l) for l in open("../shared/data/gsm8k/train.jsonl")]
with open(sys.argv[1], "w") as f:
    for i in range(0, 400, 4):
        q = " ".join(r["question"] for r in rows[i:i + 2])
        a = "\n".join(r["answer"] for r in rows[i:i + 8])
        f.write(json.dumps({"question": q, "answer": a}) + "\n")
PY
echo "== training_bench (bare optimizer step, $steps timed steps)"
bench_line=$(build/bench/training_bench --mode lora --steps "$steps")
echo "$bench_line"
out=/tmp/smol_train_speed
rm -rf "$out"
echo "== smolengine train configs/bench/train_speed.yaml ($((steps + 1)) steps, the first is warm-up)"
build/smolengine train configs/bench/train_speed.yaml --device cpu --output-dir "$out" \
  --set training.max_steps=$((steps + 1)) > /dev/null
python3 - "$out/metrics.jsonl" "$bench_line" <<'PY'
import json, sys
events = [json.loads(l) for l in open(sys.argv[1]) if '"kind":"train"' in l]
# Wall clock between the first and the last step's log line: everything the loop does (data,
# the step, logging, TensorBoard) counts. Step 1 (the arenas' first allocation) is left out.
tokens = 4 * 512 * (len(events) - 1)
seconds = events[-1]["elapsed_seconds"] - events[0]["elapsed_seconds"]
train = tokens / seconds
bench = float(sys.argv[2].split()[-2])
print(f"train {train:.1f} tokens/s (wall clock, steps 2..{len(events)}), training_bench "
      f"{bench:.1f} tokens/s: train / bench = {train / bench:.3f}")
PY
