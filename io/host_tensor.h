// HostTensor: a weight as loaded from a file, dequantised to fp32 on the host, in HF layout
// and under its HF name. stored_dtype records what the file held ("Q4_1", "BF16", ...).
// QuantizedHostTensor: a weight kept in its GGUF block format instead (load option
// keep_quantized, docs/cpu-speed.md "Quantised inference"), also in HF layout.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "kernels/quant_matrix.h"
#include "kernels/tensor.h"

namespace smol {

struct HostTensor {
  Shape shape;
  std::string stored_dtype = "F32";
  std::vector<float> data;  // shape.numel() values, row-major
};

using HostTensorMap = std::map<std::string, HostTensor>;  // HF names, sorted

// shape [rows, cols] (HF layout: q/k rows already un-permuted); blocks holds rows · cols /
// block_elems ggml blocks, row-major, each row starting on a block (kernels/quant_matrix.h).
struct QuantizedHostTensor {
  Shape shape;
  QuantFormat format = QuantFormat::Q8_0;
  std::vector<uint8_t> blocks;

  QuantMatrix matrix() const { return QuantMatrix{format, shape[0], shape[1], blocks.data()}; }
};

using QuantizedTensorMap = std::map<std::string, QuantizedHostTensor>;  // HF names, sorted

}  // namespace smol
