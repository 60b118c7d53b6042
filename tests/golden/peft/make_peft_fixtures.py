#!/usr/bin/env python3
"""Golden fixtures for tests/peft (peft_tests), made with PEFT itself on the tiny fp32 Llama of
tests/golden/model/tiny (2 layers, hidden 64, 4 heads / 2 kv heads, head_dim 16, vocab 300).

Writes, next to this script (all small, committed; CI runs no Python):
  lora_adapter/        PEFT save_pretrained of a LoRA (r 4, alpha 8, dropout 0.05, targets
                       q/v/o/up) whose A and B were overwritten with random non-zero values
  lora_expected.safetensors
                       ids [T] (one fixed row), base_logits / lora_logits [T, 300] computed in
                       float64 from the fp32 weights and rounded once to fp32 (the truth up to one
                       rounding), and merged.<hf name> for every targeted weight: PEFT's own fp32
                       merge_and_unload() result
  pissa_initial/       PiSSA adapter (r 4, alpha 8, q/v) right after init, saved the way PEFT's
                       docs say (init_lora_weights set to True first)
  pissa_trained/       the same adapter after "training" (A, B perturbed), saved plainly: its
                       config still says init_lora_weights "pissa"; it only means the trained
                       function on top of the residual base W_res = W - s B0 A0
  pissa_converted/     save_pretrained(path_initial_model_for_weight_conversion=pissa_initial):
                       PEFT's rank-2r plain LoRA against the ORIGINAL base
  pissa_expected.safetensors
                       pissa_logits: the trained PiSSA model (residual base + trained adapter) on
                       `ids`, float64 rounded to fp32
  pissa_rslora_converted/adapter_config.json
                       the converted config when use_rslora is on (alpha * sqrt 2)

Modes for checking what the C++ side wrote (prints the numbers the report quotes):
  --check DIR          PeftModel.from_pretrained(tiny base, DIR): max |logits - lora_logits|
  --check-export DIR   AutoModelForCausalLM.from_pretrained(DIR) on the tiny fixture (if its
                       config matches) or, for a SmolLM2 export, the tokenizer: tokenizers and
                       AutoTokenizer ids vs tests/golden/tokenizer/gsm8k_hashes.txt on GSM8K test

Run from the repository root: /work/venv/bin/python tests/golden/peft/make_peft_fixtures.py
"""
import copy
import json
import os
import shutil
import sys
import tempfile

import torch
from safetensors.torch import save_file, load_file

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
BASE_REL = "tests/golden/model/tiny"  # relative, so base_model_name_or_path is portable
TARGETS = ["q_proj", "v_proj", "o_proj", "up_proj"]


def load_base():
    from transformers import AutoModelForCausalLM
    os.chdir(REPO)
    return AutoModelForCausalLM.from_pretrained(BASE_REL, dtype=torch.float32,
                                                attn_implementation="eager").eval()


def fixed_ids():
    g = torch.Generator().manual_seed(7)
    return torch.randint(0, 300, (11,), generator=g)


def logits64(model, ids):
    with torch.no_grad():
        return copy.deepcopy(model).double()(ids[None]).logits[0].float().contiguous()


def copy_adapter(src, dst):
    shutil.rmtree(dst, ignore_errors=True)
    os.makedirs(dst)
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        shutil.copy(os.path.join(src, name), os.path.join(dst, name))


def make_lora(ids):
    from peft import LoraConfig, get_peft_model
    base = load_base()
    base_logits = logits64(base, ids)
    config = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.05, target_modules=TARGETS,
                        task_type="CAUSAL_LM")
    model = get_peft_model(base, config).eval()
    torch.manual_seed(11)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.copy_(0.3 * torch.randn_like(p))
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        copy_adapter(tmp, os.path.join(HERE, "lora_adapter"))
    lora_logits = logits64(model, ids)
    merged = model.merge_and_unload()
    tensors = {"ids": ids.to(torch.int32), "base_logits": base_logits, "lora_logits": lora_logits}
    for name, t in merged.state_dict().items():
        if any(f".{m}." in name for m in TARGETS):
            tensors["merged." + name] = t.detach().float().contiguous()
    save_file(tensors, os.path.join(HERE, "lora_expected.safetensors"))
    print("lora: max |lora - base| logits", float((lora_logits - base_logits).abs().max()))


def make_pissa(ids, use_rslora=False):
    from peft import LoraConfig, get_peft_model
    base = load_base()
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                        init_lora_weights="pissa", use_rslora=use_rslora, task_type="CAUSAL_LM")
    model = get_peft_model(base, config).eval()
    with tempfile.TemporaryDirectory() as tmp:
        initial = os.path.join(tmp, "pissa_initial")
        model.peft_config["default"].init_lora_weights = True
        model.save_pretrained(initial)
        model.peft_config["default"].init_lora_weights = "pissa"
        torch.manual_seed(13)
        with torch.no_grad():  # "training": move every A and B
            for name, p in model.named_parameters():
                if "lora_" in name:
                    p.add_(0.05 * torch.randn_like(p))
        trained = os.path.join(tmp, "pissa_trained")
        model.save_pretrained(trained)
        converted = os.path.join(tmp, "pissa_converted")
        model.save_pretrained(converted, path_initial_model_for_weight_conversion=initial)
        if use_rslora:
            os.makedirs(os.path.join(HERE, "pissa_rslora_converted"), exist_ok=True)
            shutil.copy(os.path.join(converted, "adapter_config.json"),
                        os.path.join(HERE, "pissa_rslora_converted", "adapter_config.json"))
            return
        for d in ("pissa_initial", "pissa_trained", "pissa_converted"):
            copy_adapter(os.path.join(tmp, d), os.path.join(HERE, d))
        save_file({"ids": ids.to(torch.int32), "pissa_logits": logits64(model, ids)},
                  os.path.join(HERE, "pissa_expected.safetensors"))
        # PEFT's own claim, checked here: original base + converted adapter = trained model.
        from peft import PeftModel
        plain = PeftModel.from_pretrained(load_base(), converted).eval()
        print("pissa: |converted on original base - trained on residual| logits",
              float((logits64(plain, ids) - logits64(model, ids)).abs().max()))


def check_adapter(path):
    from peft import PeftModel, LoraConfig
    LoraConfig.from_pretrained(path)  # the config alone must parse
    expected = load_file(os.path.join(HERE, "lora_expected.safetensors"))
    model = PeftModel.from_pretrained(load_base(), path).eval()
    ids = expected["ids"].long()
    diff = float((logits64(model, ids) - expected["lora_logits"]).abs().max())
    with torch.no_grad():
        diff32 = float((model(ids[None]).logits[0] - expected["lora_logits"]).abs().max())
    print(f"--check {path}: max |logits - PEFT's| = {diff:.3g} (float64 forward), "
          f"{diff32:.3g} (fp32 forward)")


def fnv1a64(ids):
    h = 0xcbf29ce484222325
    for i in ids:
        for b in int(i).to_bytes(4, "little", signed=True):
            h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def check_export(path):
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    cfg = AutoConfig.from_pretrained(path)
    print("config:", cfg.model_type, cfg.architectures, "hidden", cfg.hidden_size)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    if cfg.vocab_size == 300:
        expected = load_file(os.path.join(HERE, "lora_expected.safetensors"))
        ids = expected["ids"].long()
        diff = float((logits64(model, ids) - expected["lora_logits"]).abs().max())
        print(f"--check-export {path}: max |logits - PEFT's| = {diff:.3g}")
    if os.path.exists(os.path.join(path, "tokenizer.json")):
        from tokenizers import Tokenizer
        tok = Tokenizer.from_file(os.path.join(path, "tokenizer.json"))
        auto = AutoTokenizer.from_pretrained(path)
        gsm8k = os.path.join(REPO, "..", "shared", "data", "gsm8k")
        texts = []
        for split in ("train.jsonl", "test.jsonl"):
            with open(os.path.join(gsm8k, split)) as f:
                for line in f:
                    row = json.loads(line)
                    texts += [row["question"], row["answer"]]
        with open(os.path.join(REPO, "tests", "golden", "tokenizer", "gsm8k_hashes.txt")) as f:
            golden = [line.split() for line in f]
        bad_tok = bad_auto = 0
        for text, (length, digest) in zip(texts, golden):
            want = (int(length), int(digest, 16))
            ids = tok.encode(text, add_special_tokens=False).ids
            bad_tok += (len(ids), fnv1a64(ids)) != want
            ids = auto(text, add_special_tokens=False)["input_ids"]
            bad_auto += (len(ids), fnv1a64(ids)) != want
        print(f"tokenizer: {len(texts)} GSM8K texts, tokenizers mismatches {bad_tok}, "
              f"AutoTokenizer mismatches {bad_auto}; bos {auto.bos_token!r} eos "
              f"{auto.eos_token!r} pad {auto.pad_token!r} chat_template "
              f"{'yes' if auto.chat_template else 'no'}")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        return check_adapter(os.path.abspath(sys.argv[2]))
    if len(sys.argv) == 3 and sys.argv[1] == "--check-export":
        return check_export(os.path.abspath(sys.argv[2]))
    torch.manual_seed(1234)
    ids = fixed_ids()
    make_lora(ids)
    make_pissa(ids)
    make_pissa(ids, use_rslora=True)


if __name__ == "__main__":
    main()
