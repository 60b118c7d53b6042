#!/usr/bin/env python3
"""Golden fixtures for tests/model (model_tests), made with HF transformers + PEFT in fp32.

Writes, next to this script:
  tiny/config.json, tiny/model.safetensors  a tiny random Llama (2 layers, hidden 64, 4 heads,
                                            2 kv heads, head_dim 16, intermediate 96, vocab 300,
                                            rope_theta 1e5, tied embeddings), HF save_pretrained
  forward.safetensors   3 rows of different lengths: ids (packed), lengths, logits [sum L, V]
  train_batch.json      the 2-row batch (prompt tokens labelled -100, right-padded to a multiple
                        of 8 with pad id 0 / label -100, attention_mask 0 on padding: docs/seed-behaviour.md §2)
  lora.safetensors      PEFT LoRA r=4, alpha=8, dropout 0 on all seven projections with RANDOM
                        nonzero A and B: "param.<peft name>" and "grad.<peft name>" for every
                        lora_A/lora_B, "loss" (HF mean over supervised tokens)
  full.safetensors      full fine-tuning of the same batch: "loss" and "grad.<hf name>" for every
                        parameter (tied embeddings: one grad holding both uses)
  gguf_golden.json      (if the GGUF is present) transformers' GGUF loading of
                        models/SmolLM2-135M-Instruct.Q4_1.gguf in fp32: prompt ids, argmax and
                        top-8 logits at every position, and 16 greedy tokens (full recompute per step, no stop) per prompt.
The tiny fixtures are computed in float64 from fp32-exact weights and stored as fp32: the
reference is then exact up to one rounding, and the C++ fp32 error is measured against the truth
(PyTorch's own fp32 result is itself ~5e-5 off on the LoRA batch).
Grads are of the MEAN loss (what HF computes without num_items_in_batch); the C++ side uses
loss_scale = 1 / supervised tokens, which is the same quantity.

Run: /work/venv/bin/python tests/golden/model/make_fixtures.py [--skip-gguf]
"""
import copy
import json
import os
import sys

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
torch.manual_seed(1234)
torch.use_deterministic_algorithms(True)


def tiny_model():
    cfg = LlamaConfig(
        vocab_size=300, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, rope_theta=100000.0,
        rms_norm_eps=1e-5, tie_word_embeddings=True, max_position_embeddings=128,
        bos_token_id=1, eos_token_id=2, pad_token_id=0, initializer_range=0.08,
        attn_implementation="eager", torch_dtype="float32")
    model = LlamaForCausalLM(cfg).float().eval()
    with torch.no_grad():  # non-unit norm weights so a norm ignoring its weight is caught
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
    return model


def write_forward(model):
    lengths = [7, 13, 4]
    rows = [torch.randint(0, 300, (n,)) for n in lengths]
    logits = []
    m64 = copy.deepcopy(model).double()
    with torch.no_grad():
        for r in rows:
            logits.append(m64(r[None]).logits[0].float())
    save_file({"ids": torch.cat(rows).to(torch.int32), "lengths": torch.tensor(lengths, dtype=torch.int32),
               "logits": torch.cat(logits).contiguous()}, os.path.join(HERE, "forward.safetensors"))


def train_batch():
    # Row 0: 6 prompt + 9 completion tokens; row 1: 4 prompt + 5 completion. Right-padded to 16.
    spec = [(6, 9), (4, 5)]
    rows = []
    for p, c in spec:
        ids = torch.randint(3, 300, (p + c,))
        ids[-1] = 2  # EOS, supervised
        labels = ids.clone()
        labels[:p] = -100
        rows.append((ids, labels))
    pad_to = (max(len(r[0]) for r in rows) + 7) // 8 * 8
    input_ids = torch.zeros(len(rows), pad_to, dtype=torch.long)
    labels = torch.full((len(rows), pad_to), -100, dtype=torch.long)
    mask = torch.zeros(len(rows), pad_to, dtype=torch.long)
    for i, (ids, lab) in enumerate(rows):
        input_ids[i, :len(ids)] = ids
        labels[i, :len(ids)] = lab
        mask[i, :len(ids)] = 1
    with open(os.path.join(HERE, "train_batch.json"), "w") as f:
        json.dump({"rows": [{"input_ids": r[0].tolist(), "labels": r[1].tolist()} for r in rows],
                   "padded": {"input_ids": input_ids.tolist(), "labels": labels.tolist(),
                              "attention_mask": mask.tolist()}}, f)
    return input_ids, labels, mask


def write_lora(model, batch):
    from peft import LoraConfig, get_peft_model
    cfg = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0,
                     target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    peft_model = get_peft_model(copy.deepcopy(model), cfg)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_" in name:
                # Nonzero B: every gradient is non-trivial. Magnitudes like PEFT's kaiming A and a
                # trained B keep the problem well conditioned.
                p.copy_((0.1 if "lora_A" in name else 0.05) * torch.randn_like(p))
    peft_model = peft_model.double().train()
    input_ids, labels, mask = batch
    out = peft_model(input_ids=input_ids, attention_mask=mask, labels=labels)
    out.loss.backward()
    tensors = {"loss": out.loss.detach().float().reshape(1)}
    for name, p in peft_model.named_parameters():
        if p.requires_grad:
            short = name.replace("base_model.model.", "").replace(".default", "")
            tensors["param." + short] = p.detach().float().contiguous()
            tensors["grad." + short] = p.grad.detach().float().contiguous()
    save_file(tensors, os.path.join(HERE, "lora.safetensors"))


def write_full(model, batch):
    m = copy.deepcopy(model).double().train()
    input_ids, labels, mask = batch
    out = m(input_ids=input_ids, attention_mask=mask, labels=labels)
    out.loss.backward()
    tensors = {"loss": out.loss.detach().float().reshape(1)}
    for name, p in m.named_parameters():
        tensors["grad." + name] = p.grad.detach().float().contiguous()
    save_file(tensors, os.path.join(HERE, "full.safetensors"))


def write_gguf():
    path = os.path.join(REPO, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
    if not os.path.exists(path):
        print("GGUF absent: skipping gguf_golden.json", file=sys.stderr)
        return
    from transformers import AutoModelForCausalLM, AutoTokenizer
    d, f = os.path.split(path)
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, torch_dtype=torch.float32).eval()
    chat = ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
            "<|im_end|>\n<|im_start|>user\nWhat is 12*7?<|im_end|>\n<|im_start|>assistant\n")
    texts = ["The capital of France is", chat,
             "Natalia sold clips to 48 of her friends in April, and then she sold half as many"]
    prompts = []
    for i, text in enumerate(texts):
        ids = tok(text, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0].float()
            top = torch.topk(logits, 8, dim=-1)
            seq = list(ids)
            for _ in range(16):  # greedy by full recompute: no cache, no stopping
                nxt = int(torch.argmax(model(torch.tensor([seq])).logits[0, -1]))
                seq.append(nxt)
        entry = {"text": text, "ids": ids, "argmax": logits.argmax(-1).tolist(),
                 "top_ids": top.indices.tolist(), "top_logits": top.values.tolist(),
                 "greedy": seq[len(ids):], "greedy_text": tok.decode(seq[len(ids):])}
        if i == 0:  # full logits of one position, stored binary (JSON text would be ~1 MB)
            save_file({"last_logits": logits[-1].contiguous()},
                      os.path.join(HERE, "gguf_last_logits.safetensors"))
        prompts.append(entry)
    with open(os.path.join(HERE, "gguf_golden.json"), "w") as f:
        json.dump({"model": "models/SmolLM2-135M-Instruct.Q4_1.gguf", "prompts": prompts}, f)


def main():
    model = tiny_model()
    os.makedirs(os.path.join(HERE, "tiny"), exist_ok=True)
    model.save_pretrained(os.path.join(HERE, "tiny"), safe_serialization=True)
    # transformers >= 5 writes rope_theta only inside "rope_parameters"; real SmolLM2 configs
    # (transformers 4.x) have it at top level, which is the form the engine reads.
    cfg_path = os.path.join(HERE, "tiny", "config.json")
    with open(cfg_path) as f:
        cfg = json.load(f)
    cfg["rope_theta"] = cfg.get("rope_parameters", {}).get("rope_theta", cfg.get("rope_theta"))
    cfg.pop("rope_parameters", None)
    with open(cfg_path, "w") as f:
        json.dump(cfg, f, indent=2)
    write_forward(model)
    batch = train_batch()
    write_lora(model, batch)
    write_full(model, batch)
    if "--skip-gguf" not in sys.argv:
        write_gguf()


if __name__ == "__main__":
    main()
