#!/usr/bin/env bash
# The newcomer's one command: install dependencies, build, fetch the model, run the main job.
# For now the main job is a generation demo with SmolLM2-135M-Instruct; the training issue
# turns it into a short GSM8K fine-tune.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="${SMOL_CUDA_ARCHS:-80;86;89;90}"
cmake --build build -j "$(nproc)" --target smolengine
bash scripts/fetch-model.sh

model=models/SmolLM2-135M-Instruct.Q4_1.gguf
build/smolengine inspect "$model"
echo
echo "== smolengine generate --chat --prompt 'What is 12*7?'"
build/smolengine generate --model "$model" --chat --max-new-tokens 64 --prompt "What is 12*7?"
