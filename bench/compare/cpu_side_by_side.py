#!/usr/bin/env python3
"""smolengine against the reference stacks on the cpu, in one run, on the same cores and threads
(docs/cpu-speed.md; developer-side only, never run in CI).

    python3 bench/compare/cpu_side_by_side.py [--threads 2] [--rows 4] [--length 512] [--steps 2]
        [--model models/SmolLM2-135M-Instruct.Q4_1.gguf] [--new-tokens 64] [--skip-torch]
        [--skip-llama-cpp] [--markdown]

Rows (each number is tokens/s, higher is better; every program gets OMP_NUM_THREADS = threads):
  LoRA step, full step  build/bench/training_bench (fp32; and bf16 when the build has
                        --cpu-precision) vs bench/compare/torch_peft_step.py (HF transformers +
                        PEFT, fp32, torch.set_num_threads; for our bf16 also torch's bf16
                        autocast) at rows x length tokens, a masked prompt quarter, LoRA r 8 on
                        q,v.
  prefill, decode       `smolengine generate` greedy on the GGUF (fp32 weights, and quantised
                        weights when the build has --weights quantized) vs HF transformers
                        (LlamaForCausalLM from the same GGUF, dequantised to fp32, greedy
                        generate with its KV cache) and llama.cpp (llama-cpp-python, the GGUF as
                        it is) on the same prompt text.
A reference that is not installed is reported as such, never guessed.
"""
import argparse
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# One GSM8K question in SmolLM2-Instruct's ChatML (what `generate --chat` builds), given to all
# three as text with its special tokens, so each tokenises the same prompt.
QUESTION = ("Natalia sold clips to 48 of her friends in April, and then she sold half as many "
            "clips in May. How many clips did Natalia sell altogether in April and May?")
PROMPT = ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
          "Face<|im_end|>\n<|im_start|>user\n" + QUESTION + "<|im_end|>\n<|im_start|>assistant\n")


def env_with_threads(threads):
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(threads)
    return env


def run(cmd, threads, timeout=1800):
    out = subprocess.run(cmd, env=env_with_threads(threads), capture_output=True, text=True,
                         timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stderr[-2000:]}")
    return out.stdout + out.stderr


def tokens_per_second(text, pattern):
    m = re.search(pattern, text)
    return float(m.group(1)) if m else None


def has_flag(command, flag):
    try:
        out = subprocess.run(command + ["--help"], capture_output=True, text=True)
    except OSError:
        return False
    return flag in out.stdout + out.stderr


# ---- training -----------------------------------------------------------------------------
def ours_training(args, mode, precision):
    cmd = [os.path.join(ROOT, "build/bench/training_bench"), "--device", "cpu", "--mode", mode,
           "--rows", str(args.rows), "--length", str(args.length), "--steps", str(args.steps)]
    if precision != "fp32":
        cmd += ["--cpu-precision", precision]
    text = run(cmd, args.threads)
    return tokens_per_second(text, r"([\d.]+) tokens/s")


def torch_training(args, mode, bf16=False):
    cmd = [sys.executable, os.path.join(ROOT, "bench/compare/torch_peft_step.py"), "--device",
           "cpu", "--threads", str(args.threads), "--mode", mode, "--rows", str(args.rows),
           "--length", str(args.length), "--steps", str(args.steps)] + (["--cpu-bf16"] if bf16
                                                                       else [])
    text = run(cmd, args.threads)
    return tokens_per_second(text, r"([\d.]+) tokens/s")


# ---- generation ---------------------------------------------------------------------------
def ours_generate(args, weights):
    cmd = [os.path.join(ROOT, "build/smolengine"), "generate", "--model", args.model, "--prompt",
           PROMPT, "--max-new-tokens", str(args.new_tokens), "--device", "cpu"]
    if weights != "fp32":
        cmd += ["--weights", weights]
    text = run(cmd, args.threads)
    prefill = tokens_per_second(text, r"prefill [\d.]+ s \(([\d.]+) tokens/s\)")
    decode = tokens_per_second(text, r"decode ([\d.]+) tokens/s")
    return prefill, decode


def transformers_generate(args):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(args.threads)
    folder, name = os.path.split(os.path.abspath(args.model))
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, torch_dtype=torch.float32)
    model.eval()
    ids = tok(PROMPT, return_tensors="pt").input_ids
    with torch.no_grad():
        model(ids)  # warm-up
        start = time.perf_counter()
        model(ids, use_cache=True)
        prefill = ids.shape[1] / (time.perf_counter() - start)
        start = time.perf_counter()
        out = model.generate(ids, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens,
                             do_sample=False)
        total = time.perf_counter() - start
    new = out.shape[1] - ids.shape[1]
    # generate's time includes one prefill; decode rate over the remaining new - 1 tokens.
    decode = (new - 1) / max(total - ids.shape[1] / prefill, 1e-9)
    return prefill, decode, ids.shape[1]


def llama_cpp_generate(args):
    from llama_cpp import Llama

    llm = Llama(model_path=args.model, n_threads=args.threads, n_threads_batch=args.threads,
                n_ctx=1024, n_batch=512, verbose=False)
    ids = llm.tokenize(PROMPT.encode(), add_bos=False, special=True)
    llm.reset()
    llm.eval(ids)  # warm-up
    llm.reset()
    start = time.perf_counter()
    llm.eval(ids)
    prefill = len(ids) / (time.perf_counter() - start)
    llm.reset()
    start = time.perf_counter()
    first_at, count = None, 0
    for _ in llm.generate(ids, top_k=1, top_p=1.0, temp=0.0, reset=True):
        count += 1
        if first_at is None:
            first_at = time.perf_counter()
        if count == args.new_tokens:
            break
    decode = (count - 1) / (time.perf_counter() - first_at)
    return prefill, decode, len(ids)


def ratio(a, b):
    return f"{a / b:.2f}x" if a and b else "-"


def fmt(x):
    return f"{x:.1f}" if x else "-"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rows", type=int, default=4)
    p.add_argument("--length", type=int, default=512)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--model", default=os.path.join(ROOT, "models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--skip-torch", action="store_true")
    p.add_argument("--skip-llama-cpp", action="store_true")
    p.add_argument("--skip-training", action="store_true")
    args = p.parse_args()

    rows = []  # (what, ours, reference name, reference value)
    if not args.skip_training:
        precisions = ["fp32"]
        if "--cpu-precision" in open(os.path.join(ROOT, "bench/training/training_bench.cpp")).read():
            precisions.append("bf16")
        for mode in ("lora", "full"):
            torch_tps = None if args.skip_torch else torch_training(args, mode)
            for precision in precisions:
                if mode == "full" and precision != "fp32":
                    continue
                ours = ours_training(args, mode, precision)
                rows.append((f"{mode} step, {precision} ({args.rows} x {args.length})", ours,
                             "torch+PEFT fp32", torch_tps))
                print(rows[-1], flush=True)
                if precision == "bf16" and not args.skip_torch:
                    rows.append((f"{mode} step, {precision} ({args.rows} x {args.length})", ours,
                                 "torch+PEFT bf16 autocast", torch_training(args, mode, True)))
                    print(rows[-1], flush=True)

    weights = ["fp32"]
    if has_flag([os.path.join(ROOT, "build/smolengine"), "generate"], "--weights"):
        weights.append("quantized")
    hf = None
    if not args.skip_torch:
        try:
            hf = transformers_generate(args)
        except Exception as e:  # an optional reference: say why it is missing
            print(f"transformers generate unavailable: {e}", file=sys.stderr)
    lcpp = None
    if not args.skip_llama_cpp:
        try:
            lcpp = llama_cpp_generate(args)
        except ImportError:
            print("llama-cpp-python is not installed: no llama.cpp column", file=sys.stderr)
    for w in weights:
        prefill, decode = ours_generate(args, w)
        for what, ours, index in (("prefill", prefill, 0), ("decode", decode, 1)):
            if hf:
                rows.append((f"{what}, {w} weights", ours, "transformers fp32", hf[index]))
            if lcpp:
                rows.append((f"{what}, {w} weights", ours, "llama.cpp (GGUF)", lcpp[index]))
            if not hf and not lcpp:
                rows.append((f"{what}, {w} weights", ours, "-", None))
    print()
    print(f"cpu side by side: {args.threads} threads, {os.cpu_count()} cores visible; "
          f"prompt {hf[2] if hf else (lcpp[2] if lcpp else '?')} tokens, "
          f"{args.new_tokens} new tokens")
    print("| what | smolengine tokens/s | reference | reference tokens/s | ratio |")
    print("|---|---|---|---|---|")
    for what, ours, ref, ref_value in rows:
        print(f"| {what} | {fmt(ours)} | {ref} | {fmt(ref_value)} | {ratio(ours, ref_value)} |")


if __name__ == "__main__":
    main()
