#!/usr/bin/env python3
"""The reference stack's training step at the shapes of build/bench/training_bench, so that one
run prints both and their ratio is measured on the same machine (never run in CI).

HF transformers' LlamaForCausalLM at SmolLM2-135M's shape (random weights), PEFT LoRA r 8
(alpha 16, q and v, or all seven projections) or full fine-tuning, AdamW (fused on cuda),
global-norm clipping at 1.0, rows x length random tokens with a masked prompt quarter: the step
training_bench times. On cuda: bf16 autocast (what HF Trainer's bf16=True does) with fp32
weights and optimizer state; on cpu: fp32 (or, with --cpu-bf16, bf16 autocast) and
torch.set_num_threads(--threads).

    python3 bench/compare/torch_peft_step.py [--device cuda|cpu] [--rows 8] [--length 1024]
        [--mode lora|lora-all|full|all] [--steps 5] [--threads N] [--attn sdpa|eager]

Prints one line per mode: "torch-<mode> <device> ... <tokens/s> tokens/s  peak memory <MB>".
"""
import argparse
import time

import torch


def smollm2_config():
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=49152,
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        head_dim=64,
        max_position_embeddings=8192,
        rope_theta=100000.0,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
        bos_token_id=0,
        eos_token_id=0,
    )


def bench(mode, args):
    from transformers import LlamaForCausalLM

    device = torch.device(args.device)
    torch.manual_seed(42)
    config = smollm2_config()
    config._attn_implementation = args.attn
    model = LlamaForCausalLM(config).to(device)
    if mode != "full":
        from peft import LoraConfig, get_peft_model

        targets = ["q_proj", "v_proj"]
        if mode == "lora-all":
            targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
        model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0,
                                                 target_modules=targets))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    trainable = sum(p.numel() for p in params)
    fused = device.type == "cuda"
    optimizer = torch.optim.AdamW(params, lr=2e-4, weight_decay=0.01, fused=fused)
    g = torch.Generator().manual_seed(7)
    ids = torch.randint(0, config.vocab_size, (args.rows, args.length), generator=g).to(device)
    labels = ids.clone()
    labels[:, : args.length // 4] = -100

    def step():
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16,
                            enabled=device.type == "cuda" or args.cpu_bf16):
            loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    step()  # warm-up: allocations, kernel selection
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync()
    seconds = (time.perf_counter() - start) / args.steps
    peak = torch.cuda.max_memory_allocated() / 1e6 if device.type == "cuda" else float("nan")
    tokens = args.rows * args.length
    print(f"torch-{mode:8s} {args.device:9s} trainable {trainable:11d}  batch {args.rows} x "
          f"{args.length}  step {seconds:8.3f} s  {tokens / seconds:10.1f} tokens/s  "
          f"peak memory {peak:8.1f} MB", flush=True)
    del model, optimizer
    if device.type == "cuda":
        torch.cuda.empty_cache()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--rows", type=int, default=4)
    parser.add_argument("--length", type=int, default=512)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--mode", default="all", choices=["lora", "lora-all", "full", "all"])
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"])
    # cpu only: torch.autocast("cpu", bfloat16) — matmuls (and SDPA) on bf16-rounded operands with
    # fp32 weights kept, the reference for smolengine's training.cpu_precision: bf16.
    parser.add_argument("--cpu-bf16", action="store_true")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    for mode in ["lora", "lora-all", "full"]:
        if args.mode in ("all", mode):
            bench(mode, args)


if __name__ == "__main__":
    main()
