#!/usr/bin/env python3
"""Golden dequantisation fixture for tests/weights (docs/formats.md §3 "Blocks").

Writes quant_fixtures.gguf: for each supported ggml type T, a tensor "T" of shape [2, 512]
(ne = [512, 2]) stored as T, and a tensor "T.expected" (F32, same shape) holding what the
PyPI `gguf` package's own gguf.quants.dequantize makes of those bytes. Where gguf-py can
quantize (F32..Q5_1) the data is quantized random normals; for Q4_K and Q6_K (no quantizer
in gguf-py) the blocks are random bytes with finite fp16 scale fields, which also exercises
every bit pattern of the packed fields. A second random-bytes tensor "T.random" covers the
same for the 32-element types.

Run from the repository root with the dev venv:  /work/venv/bin/python tests/golden/weights/make_quant_fixtures.py
"""
import os

import numpy as np
import gguf
from gguf import quants
from gguf.constants import GGMLQuantizationType as T, GGML_QUANT_SIZES

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "quant_fixtures.gguf")
ROWS, COLS = 2, 512
rng = np.random.default_rng(20260127)


def fp16_field(n):
    """n finite fp16 scale values as 2-byte little-endian arrays."""
    return rng.uniform(-0.05, 0.05, size=n).astype(np.float16).view(np.uint8).reshape(n, 2)


def random_blocks(t):
    """Random bytes for ROWS x COLS elements of block type t with sane fp16 fields."""
    block_elems, block_bytes = GGML_QUANT_SIZES[t]
    nblocks = ROWS * COLS // block_elems
    raw = rng.integers(0, 256, size=(nblocks, block_bytes), dtype=np.uint8)
    # Offsets of fp16 fields inside each block (ggml-common.h).
    fp16_offsets = {
        T.Q8_0: [0], T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2],
        T.Q4_K: [0, 2], T.Q6_K: [208],
    }[t]
    for off in fp16_offsets:
        raw[:, off:off + 2] = fp16_field(nblocks)
    return raw.reshape(ROWS, COLS // block_elems * block_bytes)


def main():
    writer = gguf.GGUFWriter(OUT, arch="smol-test")
    values = rng.standard_normal((ROWS, COLS)).astype(np.float32)
    for t in [T.F32, T.F16, T.BF16, T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q4_K, T.Q6_K]:
        try:
            data = quants.quantize(values, t)
        except NotImplementedError:
            data = random_blocks(t)
        tensors = [(t.name, data)]
        if t in (T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1):
            tensors.append((t.name + ".random", random_blocks(t)))
        for name, raw in tensors:
            expected = quants.dequantize(raw, t).astype(np.float32)
            assert expected.shape == (ROWS, COLS), (name, expected.shape)
            if t == T.F32:
                writer.add_tensor(name, raw)
            elif t == T.F16:
                writer.add_tensor(name, raw, raw_dtype=T.F16)
            else:
                writer.add_tensor(name, raw, raw_shape=raw.shape, raw_dtype=t)
            writer.add_tensor(name + ".expected", expected)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    print(OUT, os.path.getsize(OUT), "bytes")


if __name__ == "__main__":
    main()
