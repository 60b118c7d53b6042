#!/usr/bin/env python3
"""Vendor attention kernels at the shapes of cuda_kernels_bench's BM_cuda_attention_* cases, so a
lent GPU's gpu-check prints our flash attention next to PyTorch's SDPA backends — FlashAttention-2,
cuDNN's fused attention, the memory-efficient kernel — measured in the same run (never run in CI;
docs/design.md §2.5: why cuDNN SDPA is compared here rather than built into the engine).

Shapes: SmolLM2-135M attention (9 query heads, 3 kv heads, head_dim 64), causal, bf16, as
sequences x length (8 x 1024 and 16 x 512: the same tokens as the packed rows of our bench, in a
padded batch since every sequence has the same length). FLOPs are counted as our bench counts
them: forward 4 * S * (L^2 / 2) * H * D, backward 2.5x that.

    python3 bench/compare/torch_attention.py [--device cuda|cpu] [--iters 20]

Prints one line per (backend, shape): forward and backward ms and TFLOP/s; a backend the build or
the GPU does not offer prints why.
"""
import argparse
import time

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

HEADS, KV_HEADS, HEAD_DIM = 9, 3, 64


def timed(fn, iters, device):
    fn()  # warm-up (and the backend's own planning)
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / iters


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--shapes", default="8x1024,16x512")
    args = parser.parse_args()
    dtype = torch.bfloat16 if args.device == "cuda" else torch.float32
    backends = [("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION),
                ("efficient", SDPBackend.EFFICIENT_ATTENTION)]
    if args.device != "cuda":
        backends = [("math", SDPBackend.MATH)]
    for shape in args.shapes.split(","):
        seqs, length = (int(v) for v in shape.split("x"))
        flops = 4.0 * seqs * (length * length / 2) * HEADS * HEAD_DIM
        q = torch.randn(seqs, HEADS, length, HEAD_DIM, device=args.device, dtype=dtype,
                        requires_grad=True)
        k = torch.randn(seqs, KV_HEADS, length, HEAD_DIM, device=args.device, dtype=dtype,
                        requires_grad=True)
        v = torch.randn_like(k, requires_grad=True)
        grad = torch.randn_like(q)
        for name, backend in backends:
            try:
                with sdpa_kernel([backend]):
                    def forward():
                        return F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                                              enable_gqa=True)

                    def forward_backward():
                        out = forward()
                        torch.autograd.grad(out, (q, k, v), grad)

                    fwd = timed(lambda: forward(), args.iters, args.device)
                    both = timed(forward_backward, args.iters, args.device)
            except RuntimeError as error:  # the backend refuses this GPU, dtype or GQA
                reason = str(error).strip().splitlines()[0][:100]
                print(f"torch-sdpa {name:9s} {seqs}x{length}: not available ({reason})")
                continue
            bwd = max(both - fwd, 1e-9)
            print(f"torch-sdpa {name:9s} {seqs}x{length}: forward {fwd * 1e3:.3f} ms "
                  f"{flops / fwd / 1e12:.1f} TFLOP/s, backward {bwd * 1e3:.3f} ms "
                  f"{2.5 * flops / bwd / 1e12:.1f} TFLOP/s", flush=True)


if __name__ == "__main__":
    main()
