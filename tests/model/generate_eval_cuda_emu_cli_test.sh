#!/bin/sh
# `smolengine generate` and `smolengine eval` (generative, GSM8K) on --device cuda-emu — the CUDA
# sources on the CPU, the path `--device cuda` runs on a GPU (issue 12 item 4) — against the same
# commands on cpu, with a tiny random Llama (configs/tiny_gsm8k.yaml: 2 layers of 64, the real
# SmolLM2 tokenizer from the fetched GGUF) on 3 GSM8K test rows.
#
# What must agree, and why:
#  - generate: both succeed; stdout is the continuation in the same form (text, one final
#    newline), stderr names the backend and reports the same token count and stop reason (the
#    budget, 8 tokens, is reached by both: eos is id 0 of 49152 and never the argmax here).
#    Equal greedy text where the logit margins allow is asserted token by token in
#    tests/model_device/greedy_generate_vs_cpu_test.cpp, which can read the margins; here the
#    texts are printed side by side.
#  - eval: both succeed and print the same metric keys; the same number of questions
#    (eval_samples 3, eval_generated_samples 3) and predictions (3 JSONL rows, each with every
#    field); every metric finite. If every device logit is within B of cpu's, a token's
#    cross-entropy lse(z) − z_target moves by at most 2B, and so does their mean, eval_loss. B as
#    derived in tests/model_device/greedy_generate_vs_cpu_test.cpp: 4·√(29/3)·2^-9·S with
#    S = √C·max_v‖w ∘ E_v‖; here C = 64, w = 1 and E ~ N(0, 0.02²) over V = 49152 rows, whose
#    largest row norm is about σ(√C + √(2 ln V)) = 0.25 (Gaussian concentration of the norm, a
#    union over the rows), so S ≈ 2.0 and B ≈ 0.05:
#    allowed |Δ eval_loss| ≤ 0.1 (measured 3e-5). eval_token_accuracy: a supervised position's
#    argmax can change only where cpu's top-2 margin is ≤ 2B, which the shell cannot see; this
#    random model mostly predicts its input token again with a margin far above 2B (the
#    generated text repeats one token), so allowed: 5 of the 239 supervised positions, 0.02
#    (measured: equal).
# Exit 77 (ctest SKIP) without the fetched GGUF (its tokenizer) or the GSM8K data.
set -u
BIN="$1"
SRC="$2"
MODEL="$SRC/models/SmolLM2-135M-Instruct.Q4_1.gguf"
DATA="$SRC/../shared/data"
fail() {
  echo "FAIL: $*"
  exit 1
}
if [ ! -f "$MODEL" ] || [ ! -f "$DATA/gsm8k/test.jsonl" ]; then
  echo "SKIPPED: $MODEL or $DATA/gsm8k/test.jsonl is absent (scripts/fetch-model.sh, fetch-data.sh)"
  exit 77
fi
if ! "$BIN" generate --help >/dev/null 2>&1; then fail "$BIN does not run"; fi
TMP=$(mktemp -d "${TMPDIR:-/tmp}/smol_device_cli.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
CONFIG="$SRC/configs/tiny_gsm8k.yaml"
COMMON="--data-dir $DATA --set tokenizer.name_or_path=$MODEL"

# The tiny random model as an HF directory with the tokenizer: a one-step cpu run writes it
# (base_model/, the random base every rank builds from model.seed).
"$BIN" train "$CONFIG" --device cpu $COMMON --output-dir "$TMP/run" \
  --set training.max_steps=1 --set training.eval_strategy=no --set training.save_strategy=no \
  --set training.per_device_train_batch_size=1 --set dataset.max_length=64 \
  >"$TMP/train.log" 2>&1 || fail "the cpu run that writes the tiny model failed: $(tail -3 "$TMP/train.log")"
[ -f "$TMP/run/base_model/tokenizer.json" ] || fail "no base_model/tokenizer.json"

# ---- generate ----------------------------------------------------------------------------------
for device in cpu cuda-emu; do
  if ! "$BIN" generate --model "$TMP/run/base_model" --prompt "Natalia sold clips to 48 of her" \
    --max-new-tokens 8 --device "$device" >"$TMP/gen.$device.out" 2>"$TMP/gen.$device.err"; then
    if grep -q "unknown or unavailable device" "$TMP/gen.$device.err"; then
      echo "SKIPPED: this build has no $device backend"
      exit 77
    fi
    fail "generate --device $device failed: $(cat "$TMP/gen.$device.err")"
  fi
done
grep -q "cuda-emu backend" "$TMP/gen.cuda-emu.err" ||
  fail "generate --device cuda-emu does not report its backend: $(cat "$TMP/gen.cuda-emu.err")"
summary() { grep -o "generated [0-9]* tokens, stop: [a-z_]*" "$1"; }
want=$(summary "$TMP/gen.cpu.err") || fail "cpu generate printed no summary"
got=$(summary "$TMP/gen.cuda-emu.err") || fail "cuda-emu generate printed no summary"
[ "$want" = "generated 8 tokens, stop: length" ] || fail "cpu: unexpected summary '$want'"
[ "$got" = "$want" ] || fail "cuda-emu '$got' where cpu '$want'"
[ "$(wc -l <"$TMP/gen.cuda-emu.out")" = "$(wc -l <"$TMP/gen.cpu.out")" ] ||
  fail "generate output has another form on cuda-emu"
[ -s "$TMP/gen.cuda-emu.out" ] || fail "cuda-emu generated nothing"
echo "generate cpu:      $(cat "$TMP/gen.cpu.out")"
echo "generate cuda-emu: $(cat "$TMP/gen.cuda-emu.out")"

# ---- eval (generative GSM8K on 3 rows, teacher-forced metrics too) -----------------------------
for device in cpu cuda-emu; do
  "$BIN" eval "$CONFIG" --device "$device" $COMMON --split 'test[:3]' --max-new-tokens 8 \
    --set dataset.max_length=128 --out "$TMP/pred.$device.jsonl" >"$TMP/eval.$device.json" \
    2>"$TMP/eval.$device.err" || fail "eval --device $device exited $?: $(tail -5 "$TMP/eval.$device.err")"
done
# The metrics JSON (one "key": value per line) as "key value" lines, sorted.
metrics() { sed -n 's/^ *"\(eval_[a-z_0-9]*\)": *\([^,]*\),*$/\1 \2/p' "$1" | sort; }
metrics "$TMP/eval.cpu.json" >"$TMP/m.cpu"
metrics "$TMP/eval.cuda-emu.json" >"$TMP/m.emu"
[ -s "$TMP/m.cpu" ] || fail "cpu eval printed no metrics: $(cat "$TMP/eval.cpu.json")"
[ "$(cut -d' ' -f1 "$TMP/m.emu")" = "$(cut -d' ' -f1 "$TMP/m.cpu")" ] ||
  fail "cuda-emu eval reports other metrics than cpu: $(cat "$TMP/m.emu")"
for file in "$TMP/m.cpu" "$TMP/m.emu"; do
  if grep -qiE ' (nan|-?inf|null)' "$file"; then fail "a metric is not finite: $(cat "$file")"; fi
done
value() { awk -v k="$1" '$1 == k { print $2 }' "$2"; }
for key in eval_samples eval_generated_samples; do
  for file in "$TMP/m.cpu" "$TMP/m.emu"; do
    awk -v x="$(value "$key" "$file")" 'BEGIN { exit !(x == 3) }' || fail "$key is not 3 in $file"
  done
done
for device in cpu cuda-emu; do
  [ "$(wc -l <"$TMP/pred.$device.jsonl")" = 3 ] || fail "$device wrote not 3 predictions"
  for field in question reference generated extracted correct; do
    [ "$(grep -c "\"$field\"" "$TMP/pred.$device.jsonl")" = 3 ] ||
      fail "$device predictions lack \"$field\""
  done
done
check_close() { # key, allowed difference, relative (1) or absolute (0)
  awk -v a="$(value "$1" "$TMP/m.cpu")" -v b="$(value "$1" "$TMP/m.emu")" -v tol="$2" -v rel="$3" \
    -v k="$1" 'BEGIN {
      d = a - b; if (d < 0) d = -d
      allowed = rel ? tol * (a < 0 ? -a : a) : tol
      printf "%-28s cpu %-12s cuda-emu %-12s |diff| %.3g (allowed %.3g)\n", k, a, b, d, allowed
      exit !(d <= allowed) }' || fail "$1 differs beyond its bound"
}
check_close eval_loss 0.1 0
check_close eval_token_accuracy 0.02 0
echo "eval generated (cpu):      $(grep -o '"generated":"[^"]*"' "$TMP/pred.cpu.jsonl" | tr '\n' ' ')"
echo "eval generated (cuda-emu): $(grep -o '"generated":"[^"]*"' "$TMP/pred.cuda-emu.jsonl" | tr '\n' ' ')"
echo "generate/eval on cuda-emu vs cpu OK"
