#!/usr/bin/env python3
"""Golden fixtures for tests/training (PyTorch + transformers + PEFT, fp32, CPU).

Run from the repository root with the developer venv:
    /work/venv/bin/python tests/golden/training/make_fixtures.py
Writes (all small) into tests/golden/training/:
  tiny/config.json, tiny/model.safetensors   a tiny random Llama (2 layers, hidden 32, GQA 4/2)
  batch1.jsonl, batch2.jsonl                 two micro-batches {"input_ids","labels"} per line
  lora_step.safetensors   LoRA r=4 α=8 on all 7 projections (nonzero B), forward+backward of
                          batch1: input_ids, labels (padded), logits, loss, param.*, grad.*
  full_step.safetensors   full fine-tuning, same batch: every weight's grad
  lora_train.safetensors, full_train.safetensors
                          5 optimizer steps, each over [batch1, batch2] with gradient
                          accumulation and loss = Σ CE / N(step) (transformers ≥ 4.46), clipping
                          at a binding max_grad_norm, AdamW (wd 0.01), cosine with warmup:
                          loss.k, lr.k, grad_norm.k per step and the final param.*
  accumulation.safetensors  grads of the GA loss over [batch1, batch2] (LoRA), the step-0 grad
  ga_gradient.safetensors   G for every weight: mean over [batch1, batch2] of per-batch
                            token-mean-loss grads (the lora_ga/lora_ns gradient pass)
  pissa.safetensors       gapped weights W and PEFT's pissa / pissa_niter_4 A, B, W_res
  gradient_init.safetensors  fixed W, G, sketch, Ω and the numpy docs/seed-behaviour.md §4 lora_ga / lora_ns
                             results (several directions / scales)
  schedules.json          HF get_*_schedule_* multipliers at every k
"""
import json
import math
import os
import shutil

import numpy as np
import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file
from transformers import (LlamaConfig, LlamaForCausalLM, get_constant_schedule,
                          get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup,
                          get_linear_schedule_with_warmup)

OUT = os.path.dirname(os.path.abspath(__file__))
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
PAD_ID = 0
R, ALPHA = 4, 8
SCALING = ALPHA / R

torch.manual_seed(1234)
np.random.seed(1234)


def tiny_config():
    return LlamaConfig(hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, head_dim=8, vocab_size=97,
                       max_position_embeddings=128, rope_theta=100000.0, rms_norm_eps=1e-5,
                       tie_word_embeddings=True, bos_token_id=0, eos_token_id=0,
                       pad_token_id=PAD_ID, hidden_act="silu", attention_bias=False,
                       mlp_bias=False, initializer_range=0.1)


def build_base():
    torch.manual_seed(1234)
    model = LlamaForCausalLM(tiny_config()).float()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:  # non-trivial norm weights so their gradients matter
                p.uniform_(0.5, 1.5)
    model.config._attn_implementation = "eager"
    return model


def make_rows(rng, spec):
    rows = []
    for prompt_len, completion_len in spec:
        ids = rng.integers(1, 97, size=prompt_len + completion_len).tolist()
        labels = [-100] * prompt_len + ids[prompt_len:]
        rows.append({"input_ids": ids, "labels": labels})
    return rows


def pad(rows, multiple=8):
    longest = max(len(r["input_ids"]) for r in rows)
    length = (longest + multiple - 1) // multiple * multiple
    ids = torch.full((len(rows), length), PAD_ID, dtype=torch.long)
    labels = torch.full((len(rows), length), -100, dtype=torch.long)
    mask = torch.zeros((len(rows), length), dtype=torch.long)
    for i, r in enumerate(rows):
        n = len(r["input_ids"])
        ids[i, :n] = torch.tensor(r["input_ids"])
        labels[i, :n] = torch.tensor(r["labels"])
        mask[i, :n] = 1
    return ids, labels, mask


def ce_sum(model, rows):
    """Σ token CE over supervised (shifted) positions, and the padded tensors and logits."""
    ids, labels, mask = pad(rows)
    logits = model(input_ids=ids, attention_mask=mask).logits.float()
    shift_logits = logits[:, :-1, :].reshape(-1, logits.shape[-1])
    shift_labels = labels[:, 1:].reshape(-1)
    total = torch.nn.functional.cross_entropy(shift_logits, shift_labels, ignore_index=-100,
                                              reduction="sum")
    count = int((shift_labels != -100).sum())
    return total, count, ids, labels, logits


def peft_name(name):
    return name.replace("base_model.model.", "", 1).replace(".default", "")


def lora_model(base):
    torch.manual_seed(99)
    config = LoraConfig(r=R, lora_alpha=ALPHA, lora_dropout=0.0, target_modules=TARGETS,
                        init_lora_weights=False)  # nonzero B so every gradient is non-trivial
    return get_peft_model(base, config)


def trainable(model):
    return [(peft_name(n), p) for n, p in model.named_parameters() if p.requires_grad]


def step_fixture(model, rows, path):
    model.zero_grad()
    total, count, ids, labels, logits = ce_sum(model, rows)
    loss = total / count
    loss.backward()
    out = {"input_ids": ids.to(torch.int32), "labels": labels.to(torch.int32),
           "logits": logits.detach().contiguous(), "loss": loss.detach().reshape(1)}
    for name, p in trainable(model):
        out["param." + name] = p.detach().clone().contiguous()
        out["grad." + name] = p.grad.detach().clone().contiguous()
    save_file(out, path, metadata={"format": "pt"})
    model.zero_grad()


def train_fixture(model, batches, path, max_grad_norm_fraction=0.5):
    params = [p for _, p in trainable(model)]
    steps, lr, wd = 5, 1e-3, 0.01
    warmup = math.ceil(0.3 * steps)  # warmup_ratio 0.3 -> 2 (HF ceil)
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=wd)
    sched = get_cosine_schedule_with_warmup(opt, warmup, steps)
    out = {}
    max_grad_norm = None
    for k in range(steps):
        opt.zero_grad()
        n_total = sum(ce_sum(model, b)[1] for b in batches)
        loss_value = 0.0
        for b in batches:
            total, _, _, _, _ = ce_sum(model, b)
            (total / n_total).backward()
            loss_value += float(total) / n_total
        norm = math.sqrt(sum(float((p.grad.double() ** 2).sum()) for p in params))
        if max_grad_norm is None:  # binding at every step: half the first norm
            max_grad_norm = max_grad_norm_fraction * norm
        reported = torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
        out[f"lr.{k}"] = torch.tensor([sched.get_last_lr()[0]], dtype=torch.float32)
        opt.step()
        sched.step()
        out[f"loss.{k}"] = torch.tensor([loss_value], dtype=torch.float32)
        out[f"grad_norm.{k}"] = torch.tensor([float(reported)], dtype=torch.float32)
    for name, p in trainable(model):
        out["param." + name] = p.detach().clone().contiguous()
    out["max_grad_norm"] = torch.tensor([max_grad_norm], dtype=torch.float32)
    out["settings"] = torch.tensor([steps, warmup, lr, wd], dtype=torch.float32)
    save_file(out, path, metadata={"format": "pt"})


def gapped_matrix(rng, rows, cols, top):
    """U diag(σ) Vᵀ with σ = top values then a 100× smaller tail: a clear gap after len(top)."""
    u, _ = np.linalg.qr(rng.standard_normal((rows, rows)))
    v, _ = np.linalg.qr(rng.standard_normal((cols, cols)))
    k = min(rows, cols)
    sigma = np.concatenate([top, 0.02 * rng.uniform(0.5, 1.0, k - len(top))])
    return (u[:, :k] * sigma) @ v[:, :k].T


# ---- numpy replica of docs/seed-behaviour.md §4 lora_ga / lora_ns (torch.svd_lowrank with a given sketch) --
def np_svd_lowrank(a, q, niter, sketch):
    m, n = a.shape
    transpose = m < n
    tall = a.T if transpose else a
    basis = np.linalg.qr(tall @ sketch)[0]
    for _ in range(niter):
        basis = np.linalg.qr(tall.T @ basis)[0]
        basis = np.linalg.qr(tall @ basis)[0]
    u, s, vt = np.linalg.svd(basis.T @ tall, full_matrices=False)
    u = basis @ u
    v = vt.T
    if transpose:
        u, v = v, u
    return u, s, v


def np_lora_ga(w, g, r, scaling, sketch, direction="ArB2r", scale="stable", gamma=16.0):
    q = min(4 * r, min(g.shape))
    u, s, v = np_svd_lowrank(g, q, 4, sketch)
    vt = v.T
    if direction == "ArBr":
        b, a = u[:, 0:2 * r:2], vt[1:2 * r:2, :]
    elif direction == "A2rBr":
        b, a = u[:, :r], vt[r:2 * r, :]
    else:  # ArB2r
        b, a = u[:, r:2 * r], vt[:r, :]
    if scale == "gd":
        a, b = a / scaling, b / scaling
    elif scale == "stable":
        m = g.shape[0]
        a, b = a * m ** 0.25 / gamma ** 0.5, b * m ** 0.25 / gamma ** 0.5
    return a, b, w - scaling * (b @ a)


def np_ns_polar(g, steps=5, eps=1e-6):
    x = g / (np.linalg.norm(g) + eps)
    transpose = x.shape[0] > x.shape[1]
    if transpose:
        x = x.T
    eye = np.eye(x.shape[1])
    for _ in range(steps):
        x = 0.5 * x @ (3.0 * eye - x.T @ x)
    return x.T if transpose else x


def np_lora_ns(w, g, r, scaling, omega, gamma=16.0):
    q = np_ns_polar(g)
    basis = np.linalg.qr(q.T @ omega)[0]
    v_r = basis[:, :r]
    b = q @ v_r
    a = v_r.T
    coef = g.shape[0] ** 0.25 / (gamma ** 0.5 + 1e-12)
    a, b = a * coef, b * coef
    return a, b, w - scaling * (b @ a)


def main():
    rng = np.random.default_rng(7)
    batch1 = make_rows(rng, [(5, 8), (3, 4)])            # 12 supervised targets... see counts
    batch2 = make_rows(rng, [(6, 4), (4, 15), (2, 1)])
    for name, rows in (("batch1.jsonl", batch1), ("batch2.jsonl", batch2)):
        with open(os.path.join(OUT, name), "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")

    base = build_base()
    tiny = os.path.join(OUT, "tiny")
    if os.path.isdir(tiny):
        shutil.rmtree(tiny)
    base.save_pretrained(tiny, safe_serialization=True)
    for extra in ("generation_config.json",):
        p = os.path.join(tiny, extra)
        if os.path.exists(p):
            os.remove(p)
    # transformers 5 writes rope_theta inside "rope_parameters"; older readers (and ours) read
    # the top-level key, so write it there too.
    config_path = os.path.join(tiny, "config.json")
    with open(config_path) as f:
        config_json = json.load(f)
    config_json["rope_theta"] = base.config.rope_theta if hasattr(base.config, "rope_theta") \
        else config_json["rope_parameters"]["rope_theta"]
    with open(config_path, "w") as f:
        json.dump(config_json, f, indent=2, sort_keys=True)
    base_state = {k: v.clone() for k, v in base.state_dict().items()}

    # Full fine-tuning: one step's grads, then the 5-step trajectory.
    full = build_base()
    full.load_state_dict(base_state)
    step_fixture(full, batch1, os.path.join(OUT, "full_step.safetensors"))
    train_fixture(full, [batch1, batch2], os.path.join(OUT, "full_train.safetensors"))

    # The lora_ga / lora_ns gradient pass: mean over batches of per-batch token-mean grads.
    full = build_base()
    full.load_state_dict(base_state)
    full.zero_grad()
    for b in (batch1, batch2):
        total, count, _, _, _ = ce_sum(full, b)
        (total / count / 2).backward()
    save_file({n: p.grad.detach().clone().contiguous() for n, p in full.named_parameters()
               if any(t in n for t in TARGETS)},
              os.path.join(OUT, "ga_gradient.safetensors"), metadata={"format": "pt"})

    # LoRA on all seven projections.
    base = build_base()
    base.load_state_dict(base_state)
    lora = lora_model(base)
    step_fixture(lora, batch1, os.path.join(OUT, "lora_step.safetensors"))
    # Accumulation over two micro-batches of different supervised counts.
    lora.zero_grad()
    n_total = sum(ce_sum(lora, b)[1] for b in (batch1, batch2))
    for b in (batch1, batch2):
        (ce_sum(lora, b)[0] / n_total).backward()
    save_file({"grad." + n: p.grad.detach().clone().contiguous() for n, p in trainable(lora)},
              os.path.join(OUT, "accumulation.safetensors"), metadata={"format": "pt"})
    lora.zero_grad()
    train_fixture(lora, [batch1, batch2], os.path.join(OUT, "lora_train.safetensors"))

    # PiSSA on gapped weights (clear gap after r so the randomized variant converges too).
    base = build_base()
    base.load_state_dict(base_state)
    gapped = {}
    with torch.no_grad():
        for n, p in base.named_parameters():
            if any(t in n for t in TARGETS) and n.endswith(".weight"):
                w = gapped_matrix(rng, p.shape[0], p.shape[1], np.array([4.0, 3.5, 3.0, 2.5]))
                p.copy_(torch.tensor(w, dtype=torch.float32))
                gapped[n] = p.detach().clone()
    gapped_state = {k: v.clone() for k, v in base.state_dict().items()}
    out = {"weight." + n: w for n, w in gapped.items()}
    for init in ("pissa", "pissa_niter_4"):
        m = build_base()
        m.load_state_dict(gapped_state)
        torch.manual_seed(5)
        pm = get_peft_model(m, LoraConfig(r=R, lora_alpha=ALPHA, lora_dropout=0.0,
                                          target_modules=TARGETS, init_lora_weights=init))
        for n, p in pm.named_parameters():
            name = peft_name(n).replace(".base_layer", "")
            if "lora_" in name:
                out[f"{init}.{name}"] = p.detach().clone().contiguous()
            elif name in gapped:
                out[f"{init}.residual.{name}"] = p.detach().clone().contiguous()
    save_file(out, os.path.join(OUT, "pissa.safetensors"), metadata={"format": "pt"})

    # lora_ga / lora_ns formulas on fixed W, G, sketch, Ω: out > in (48x32) and out < in (32x48).
    out = {}
    for tag, (rows, cols) in (("tall", (48, 32)), ("wide", (32, 48))):
        w = rng.standard_normal((rows, cols)) * 0.1
        g = rng.standard_normal((rows, cols)) * 0.01
        q = min(4 * R, min(rows, cols))
        sketch = rng.standard_normal((min(rows, cols), q))
        omega = rng.standard_normal((rows, min(R + 4, min(rows, cols))))
        f32 = lambda x: torch.tensor(np.ascontiguousarray(x), dtype=torch.float32)
        # Inputs are stored fp32 and the reference runs on exactly those fp32 values.
        w, g, sketch, omega = (x.astype(np.float32).astype(np.float64)
                               for x in (w, g, sketch, omega))
        out[f"{tag}.W"], out[f"{tag}.G"] = f32(w), f32(g)
        out[f"{tag}.sketch"], out[f"{tag}.omega"] = f32(sketch), f32(omega)
        for direction in ("ArB2r", "ArBr", "A2rBr"):
            for scale in ("stable", "gd", "unit"):
                a, b, res = np_lora_ga(w, g, R, SCALING, sketch, direction, scale)
                key = f"{tag}.lora_ga.{direction}.{scale}"
                out[key + ".A"], out[key + ".B"], out[key + ".residual"] = f32(a), f32(b), f32(res)
        a, b, res = np_lora_ns(w, g, R, SCALING, omega)
        out[f"{tag}.lora_ns.A"], out[f"{tag}.lora_ns.B"] = f32(a), f32(b)
        out[f"{tag}.lora_ns.residual"] = f32(res)
        out[f"{tag}.ns_polar"] = f32(np_ns_polar(g))
    save_file(out, os.path.join(OUT, "gradient_init.safetensors"), metadata={"format": "pt"})

    # HF schedules: T = 10, warmup = ceil(0.25 · 10) = 3.
    sched = {"total": 10, "warmup": 3, "peak_lr": 1.0}
    for kind, fn in (("cosine", get_cosine_schedule_with_warmup),
                     ("linear", get_linear_schedule_with_warmup),
                     ("constant_with_warmup", get_constant_schedule_with_warmup),
                     ("constant", get_constant_schedule)):
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        if kind == "constant":
            s = fn(opt)
        elif kind == "constant_with_warmup":
            s = fn(opt, 3)
        else:
            s = fn(opt, 3, 10)
        values = []
        for _ in range(12):
            values.append(s.get_last_lr()[0])
            opt.step()
            s.step()
        sched[kind] = values
    with open(os.path.join(OUT, "schedules.json"), "w") as f:
        json.dump(sched, f, indent=1)


if __name__ == "__main__":
    main()
