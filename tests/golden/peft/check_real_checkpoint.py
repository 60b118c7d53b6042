#!/usr/bin/env python3
"""Does PEFT load a `smolengine train` checkpoint of the real model with the same logits?

  check_real_checkpoint.py CONFIG CHECKPOINT_DIR [--engine build/smolengine] [--set k=v ...]

1. Our logits: `smolengine dump-step CONFIG --checkpoint CHECKPOINT_DIR --batch B --out F` on one
   row (the first GSM8K test question rendered by the config's template, tokenised by our
   tokenizer through `smolengine tokenize`).
2. PEFT's: transformers loads the base model the adapter names (a GGUF: from its directory with
   gguf_file=..., dequantised to fp32, which equals our loader bit for bit), then
   PeftModel.from_pretrained(base, CHECKPOINT_DIR), eval mode, fp32, eager attention.
3. Prints max |ours - PEFT| over every logit, the argmax agreement, and how far the adapter
   moves PEFT's logits at all (so a check of an adapter that barely trained is not mistaken
   for one that proves something). Both sides are fp32; the
   expected difference is fp32 summation-order noise (~1e-5 on logits of magnitude ~20).
Developer-side check (CI runs no Python); its output is quoted in the closing notes.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import load_file


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("checkpoint")
    ap.add_argument("--engine", default="build/smolengine")
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--text", default="Janet's ducks lay 16 eggs per day. She eats three for "
                    "breakfast every morning and bakes muffins for her friends every day with "
                    "four. How much in dollars does she make every day at the farmers' market?")
    a = ap.parse_args()
    sets = sum([["--set", s] for s in a.set], [])
    adapter = json.load(open(os.path.join(a.checkpoint, "adapter_config.json")))
    base = adapter["base_model_name_or_path"]

    tok = subprocess.run([a.engine, "tokenize", "--model", base, "--jsonl"],
                         input=json.dumps(a.text) + "\n", capture_output=True, text=True, check=True)
    ids = json.loads(tok.stdout.strip())
    with tempfile.TemporaryDirectory() as tmp:
        batch = os.path.join(tmp, "batch.jsonl")
        with open(batch, "w") as f:
            f.write(json.dumps({"input_ids": ids, "labels": ids}) + "\n")
        out = os.path.join(tmp, "ours.safetensors")
        subprocess.run([a.engine, "dump-step", a.config, "--checkpoint", a.checkpoint, "--batch",
                        batch, "--out", out, "--device", "cpu"] + sets, check=True)
        dumped = load_file(out)
    ours = dumped["logits"][0, : len(ids)].double()

    from transformers import AutoModelForCausalLM
    from peft import PeftModel
    if base.endswith(".gguf"):
        model = AutoModelForCausalLM.from_pretrained(os.path.dirname(os.path.abspath(base)),
                                                     gguf_file=os.path.basename(base),
                                                     dtype=torch.float32, attn_implementation="eager")
    else:
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32,
                                                     attn_implementation="eager")
    model = PeftModel.from_pretrained(model, a.checkpoint).eval()
    with torch.no_grad():
        theirs = model(torch.tensor([ids])).logits[0].double()
        with model.disable_adapter():
            base_only = model(torch.tensor([ids])).logits[0].double()
    diff = (ours - theirs).abs().max().item()
    agree = (ours.argmax(-1) == theirs.argmax(-1)).float().mean().item()
    print(json.dumps({"tokens": len(ids), "max_abs_logit_diff": diff,
                      "max_abs_logit": theirs.abs().max().item(), "argmax_agreement": agree,
                      "adapter_effect_max_abs": (theirs - base_only).abs().max().item(),
                      "adapter_r": adapter["r"], "adapter_alpha": adapter["lora_alpha"]}))


if __name__ == "__main__":
    sys.exit(main())
