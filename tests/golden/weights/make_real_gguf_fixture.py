#!/usr/bin/env python3
"""Golden check of the real SmolLM2-135M-Instruct Q4_1 GGUF as transformers loads it.

transformers' own GGUF path (AutoModelForCausalLM.from_pretrained(dir, gguf_file=name)) reads
the file with the PyPI `gguf` package, dequantises every tensor to fp32 and reverses the
converter's q/k row permutation (docs/formats.md §3), giving the HF-layout weights the engine must
reproduce. For a few tensors this script saves, into real_gguf_fixture.safetensors (F32):
  <name>.row_sums   per-row sums (accumulated in float64, stored as F32)
  <name>.rows       a few whole rows (indices in <name>.row_index, I32)
for layers 0 and 29 q/k/v/o_proj, model.embed_tokens.weight (rows 0..3) and model.norm.weight.

Run from the repository root after scripts/fetch-model.sh:
  /work/venv/bin/python tests/golden/weights/make_real_gguf_fixture.py
"""
import os

import numpy as np
import torch
from safetensors.numpy import save_file
from transformers import AutoModelForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
MODEL_DIR = os.path.join(ROOT, "models")
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
OUT = os.path.join(HERE, "real_gguf_fixture.safetensors")


def main():
    model = AutoModelForCausalLM.from_pretrained(MODEL_DIR, gguf_file=MODEL_FILE,
                                                 dtype=torch.float32)
    state = model.state_dict()
    out = {}
    picks = {}
    for layer in (0, 29):
        for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
            name = f"model.layers.{layer}.self_attn.{proj}.weight"
            rows = state[name].shape[0]
            # Rows 0..3 cover both halves of a head's rotate-half pairs (0/32 after un-permute
            # come from GGUF rows 0/1); the last row checks the final head.
            picks[name] = [0, 1, 2, 3, 32, 33, rows - 1]
    picks["model.embed_tokens.weight"] = [0, 1, 2, 3]
    picks["model.norm.weight"] = None
    for name, rows in picks.items():
        w = state[name].detach().cpu().numpy().astype(np.float32)
        if w.ndim == 1:
            out[name + ".rows"] = w.reshape(1, -1).copy()
            out[name + ".row_sums"] = np.array([w.astype(np.float64).sum()], dtype=np.float32)
            out[name + ".row_index"] = np.array([0], dtype=np.int32)
            continue
        if name != "model.embed_tokens.weight":
            out[name + ".row_sums"] = w.astype(np.float64).sum(axis=1).astype(np.float32)
        else:
            out[name + ".row_sums"] = w[:4].astype(np.float64).sum(axis=1).astype(np.float32)
        out[name + ".rows"] = w[rows].copy()
        out[name + ".row_index"] = np.array(rows, dtype=np.int32)
    save_file(out, OUT, metadata={"format": "pt", "source": MODEL_FILE,
                                  "made_by": "transformers GGUF loading, fp32"})
    print(OUT, os.path.getsize(OUT), "bytes;", len(out), "tensors;",
          "lm_head tied:", model.config.tie_word_embeddings)


if __name__ == "__main__":
    main()
