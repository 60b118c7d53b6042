#!/usr/bin/env bash
# Peak memory of the engine on small hostile inputs (docs/design.md §9.1): each case is a file of
# a few KB built to make a parser allocate by a count it read, nest deeply, or expand aliases.
# Runs the release binary (not the sanitizer build) and prints, per case, the exit status, the
# wall time, the peak RSS and the first line of the error. A bounded parser stays at the
# binary's own baseline, the first line (`smolengine --version`).
#   fuzz/measure_bad_inputs.sh [path/to/smolengine]   (default build/smolengine)
set -euo pipefail
cd "$(dirname "$0")/.."
engine=${1:-build/smolengine}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python3 - "$work" <<'EOF'
import json, struct, sys, os
w = sys.argv[1]
def put(name, data):
    with open(os.path.join(w, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
def s(text):
    return struct.pack("<Q", len(text)) + text.encode()
gguf = lambda tensors, kvs, body=b"": b"GGUF" + struct.pack("<IQQ", 3, tensors, kvs) + body
# GGUF: counts and lengths far beyond the file
put("gguf-tensor-count.gguf", gguf(1 << 40, 0) + b"\0" * 4000)
put("gguf-kv-count.gguf", gguf(0, 1 << 40) + b"\0" * 4000)
put("gguf-array-count.gguf", gguf(0, 1, s("a") + struct.pack("<IIQ", 9, 8, 1 << 60)) + b"\0" * 4000)
put("gguf-string-length.gguf", gguf(0, 1, s("a") + struct.pack("<IQ", 8, 1 << 62)) + b"\0" * 4000)
put("gguf-nested-arrays.gguf", gguf(0, 1, s("a") + struct.pack("<IIQ", 9, 9, 300) +
                                    struct.pack("<IQ", 9, 330) * 7 + b"\0" * 4000))
put("gguf-tensor-dims.gguf", gguf(1, 0, s("t") + struct.pack("<IQQIQ", 2, 1 << 40, 1 << 40, 0, 0)))
# safetensors: header length beyond the file / the limit, absurd shape
os.makedirs(os.path.join(w, "st-header"), exist_ok=True)
put("st-header/model.safetensors", struct.pack("<Q", 99_000_000) + b"{" + b" " * 4000)
cfg = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 1,
       "num_attention_heads": 4, "vocab_size": 300}
put("st-header/config.json", json.dumps(cfg))
os.makedirs(os.path.join(w, "st-shape"), exist_ok=True)
header = json.dumps({"x": {"dtype": "F32", "shape": [1 << 30, 1 << 30], "data_offsets": [0, 4]}})
put("st-shape/model.safetensors", struct.pack("<Q", len(header)) + header.encode() + b"\0" * 4)
put("st-shape/config.json", json.dumps(cfg))
# config.json: a config sizing a huge model; deep nesting
os.makedirs(os.path.join(w, "cfg-huge"), exist_ok=True)
put("cfg-huge/config.json", json.dumps(dict(cfg, vocab_size=4000000, hidden_size=65536,
    num_attention_heads=64, intermediate_size=262144, num_hidden_layers=1024,
    max_position_embeddings=1 << 40)))
os.makedirs(os.path.join(w, "cfg-deep"), exist_ok=True)
put("cfg-deep/config.json", "[" * 5000 + "]" * 5000)
# tokenizer.json: an added token id near 2^31 (the issue's case); deep nesting
base = {"model": {"type": "BPE", "vocab": {chr(97 + i): i for i in range(26)}, "merges": []},
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True},
        "added_tokens": [{"id": 2147483000, "content": "<big>", "special": True}]}
os.makedirs(os.path.join(w, "tok-id"), exist_ok=True)
put("tok-id/tokenizer.json", json.dumps(base) + " " * 8000)
os.makedirs(os.path.join(w, "tok-deep"), exist_ok=True)
put("tok-deep/tokenizer.json", "[" * 5000 + "]" * 5000)
# sentencepiece: garbage
put("garbage.model", bytes(range(256)) * 16)
# YAML: billion laughs (600 bytes), deep flow nesting
lines = ["task_name: x", "model: {name_or_path: m.gguf}", "sft:", "  a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
lines += ["  a%d: &a%d [%s]" % (i, i, ", ".join(["*a%d" % (i - 1)] * 10)) for i in range(1, 9)]
put("laughs.yaml", "\n".join(lines) + "\n")
put("deep.yaml", "task_name: x\nsft: " + "[" * 1900 + "]" * 1900 + "\n")
EOF
mkfifo "$work/fifo.gguf" "$work/fifo.json"

run_case() {
  local name=$1
  shift
  local out=$work/out
  local status=0
  /usr/bin/time -f '%e %M' -o "$work/time" timeout 120 "$@" </dev/null >"$out" 2>&1 || status=$?
  read -r seconds peak_kb < <(tail -1 "$work/time") || true
  printf '%-26s exit %-3s %6ss %8s KB  %s\n' "$name" "$status" "$seconds" "$peak_kb" \
    "$(grep -m1 . "$out" | cut -c1-110)"
}

echo '"hi"' >"$work/line"
run_case baseline:--version "$engine" --version
run_case fifo.gguf "$engine" inspect "$work/fifo.gguf"
for f in "$work"/gguf-*.gguf; do run_case "$(basename "$f")" "$engine" inspect "$f"; done
for d in st-header st-shape cfg-huge cfg-deep; do run_case "$d" "$engine" inspect "$work/$d"; done
run_case /dev/zero "$engine" inspect /dev/zero
for d in tok-id tok-deep; do
  run_case "$d" sh -c "'$engine' tokenize --jsonl --model '$work/$d/tokenizer.json' <'$work/line'"
done
run_case garbage.model sh -c "'$engine' tokenize --jsonl --model '$work/garbage.model' <'$work/line'"
run_case fifo.json sh -c "'$engine' tokenize --jsonl --model '$work/fifo.json' <'$work/line'"
run_case laughs.yaml "$engine" config "$work/laughs.yaml"
run_case deep.yaml "$engine" config "$work/deep.yaml"
