// HostTensor: a weight as loaded from a file, dequantised to fp32 on the host, in HF layout
// and under its HF name. stored_dtype records what the file held ("Q4_1", "BF16", ...).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "kernels/tensor.h"

namespace smol {

struct HostTensor {
  Shape shape;
  std::string stored_dtype = "F32";
  std::vector<float> data;  // shape.numel() values, row-major
};

using HostTensorMap = std::map<std::string, HostTensor>;  // HF names, sorted

}  // namespace smol
