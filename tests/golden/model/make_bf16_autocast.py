#!/usr/bin/env python3
"""The yardstick of training.cpu_precision: bf16 (docs/cpu-speed.md "bf16 on cpu"): how far
PyTorch's own bf16 autocast on cpu lands from its fp32 result on one LoRA step.

Same step as lora.safetensors (make_fixtures.py): the tiny Llama of tiny/, PEFT LoRA r=4,
alpha=8, dropout 0 on all seven projections with the fixture's random nonzero A and B
("param.*"), the padded 2-row batch of train_batch.json, HF's mean loss. Runs it twice in
PyTorch: fp32, and the forward under torch.autocast("cpu", dtype=torch.bfloat16) (backward
outside it, as the AMP recipe does). Autocast on cpu rounds both operands of every linear and
matmul to bf16 and accumulates in fp32, the model our bf16 path follows for the frozen weights.

Writes bf16_autocast_error.json next to this script:
  loss_rel_error       |loss_bf16 − loss_fp32| / |loss_fp32|
  grad_rel_l2_global   ‖g_bf16 − g_fp32‖₂ / ‖g_fp32‖₂ over every LoRA gradient together
  grad_rel_l2          the same per LoRA tensor (PEFT name without base_model.model. / .default)
  grad_rel_l2_max      the largest per-tensor value
tests/model/bf16_autocast_test.cpp runs our fp32 and bf16 on the same step and requires our
errors ≤ 2 × these (the issue's bound).

Run: /work/venv/bin/python tests/golden/model/make_bf16_autocast.py
"""
import copy
import json
import os

import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import load_file
from transformers import LlamaForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
torch.use_deterministic_algorithms(True)


def short_name(name):
    return name.replace("base_model.model.", "").replace(".default", "")


def lora_step(peft_model, batch, autocast):
    peft_model.zero_grad(set_to_none=True)
    input_ids, labels, mask = batch
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        out = peft_model(input_ids=input_ids, attention_mask=mask, labels=labels)
    out.loss.float().backward()
    grads = {short_name(n): p.grad.detach().double().clone()
             for n, p in peft_model.named_parameters() if p.requires_grad}
    return float(out.loss.detach()), grads


def main():
    model = LlamaForCausalLM.from_pretrained(os.path.join(HERE, "tiny"), torch_dtype=torch.float32,
                                             attn_implementation="eager").float()
    cfg = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0,
                     target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                     "up_proj", "down_proj"])
    peft_model = get_peft_model(copy.deepcopy(model), cfg)
    fixture = load_file(os.path.join(HERE, "lora.safetensors"))
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if p.requires_grad:
                p.copy_(fixture["param." + short_name(name)])
    peft_model.train()
    with open(os.path.join(HERE, "train_batch.json")) as f:
        padded = json.load(f)["padded"]
    batch = tuple(torch.tensor(padded[k]) for k in ("input_ids", "labels", "attention_mask"))

    loss32, g32 = lora_step(peft_model, batch, autocast=False)
    loss16, g16 = lora_step(peft_model, batch, autocast=True)
    per_tensor = {n: float((g16[n] - g32[n]).norm() / g32[n].norm()) for n in sorted(g32)}
    diff = torch.cat([(g16[n] - g32[n]).flatten() for n in sorted(g32)])
    ref = torch.cat([g32[n].flatten() for n in sorted(g32)])
    result = {
        "step": "lora.safetensors: tiny Llama, LoRA r 4 alpha 8 on all seven projections, "
                "train_batch.json, mean loss",
        "torch": torch.__version__,
        "loss_fp32": loss32,
        "loss_bf16_autocast": loss16,
        "loss_rel_error": abs(loss16 - loss32) / abs(loss32),
        "grad_rel_l2_global": float(diff.norm() / ref.norm()),
        "grad_rel_l2_max": max(per_tensor.values()),
        "grad_rel_l2": per_tensor,
    }
    with open(os.path.join(HERE, "bf16_autocast_error.json"), "w") as f:
        json.dump(result, f, indent=1)
    print({k: v for k, v in result.items() if k != "grad_rel_l2"})


if __name__ == "__main__":
    main()
