#!/usr/bin/env python3
"""A tiny HF Llama model directory as transformers itself saves it, for the loader tests.

Writes tiny_hf_llama/ (config.json and model.safetensors in BF16, as SmolLM2 ships; whatever
keys this transformers version writes, e.g. 5.x's rope_parameters) and tiny_hf_llama.expected.json:
the config values transformers reads back, and per tensor its shape and the float64 sum of
its values, computed from the model transformers loads from that directory.

Run from the repository root with the dev venv:
  /work/venv/bin/python tests/golden/weights/make_tiny_hf_dir.py
"""
import json
import os
import shutil

import torch
from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "tiny_hf_llama")


def main():
    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, vocab_size=64,
                         max_position_embeddings=128, rope_theta=100000.0, rms_norm_eps=1e-5,
                         tie_word_embeddings=True, bos_token_id=0, eos_token_id=0)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    shutil.rmtree(OUT, ignore_errors=True)
    model.save_pretrained(OUT)
    for extra in ("generation_config.json",):
        if os.path.exists(os.path.join(OUT, extra)):
            os.remove(os.path.join(OUT, extra))

    loaded = AutoModelForCausalLM.from_pretrained(OUT, dtype=torch.float32)
    c = AutoConfig.from_pretrained(OUT)
    rope_theta = getattr(c, "rope_theta", None)
    if rope_theta is None:
        rope_theta = c.rope_parameters["rope_theta"]
    expected = {
        "config": {
            "hidden_size": c.hidden_size, "intermediate_size": c.intermediate_size,
            "num_hidden_layers": c.num_hidden_layers,
            "num_attention_heads": c.num_attention_heads,
            "num_key_value_heads": c.num_key_value_heads, "head_dim": c.head_dim,
            "vocab_size": c.vocab_size, "max_position_embeddings": c.max_position_embeddings,
            "rope_theta": rope_theta, "rms_norm_eps": c.rms_norm_eps,
            "tie_word_embeddings": c.tie_word_embeddings,
        },
        "num_parameters": loaded.num_parameters(),
        "tensors": {
            name: {"shape": list(t.shape), "sum": float(t.double().sum())}
            for name, t in loaded.state_dict().items() if name != "lm_head.weight"
        },
    }
    with open(OUT + ".expected.json", "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
    print(OUT, sorted(os.listdir(OUT)), "params", expected["num_parameters"])


if __name__ == "__main__":
    main()
