// fp32 views of F32/BF16 device tensors (bf16 = the high half of an fp32, formats.md §3).
#include "model/host_transfer.h"

#include <cstdint>
#include <cstring>

namespace smol {

namespace {

float bf16_to_f32(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t f32_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7F800000u) == 0x7F800000u && (bits & 0x7FFFFFu)) return 0x7FC0;  // NaN
  bits += 0x7FFFu + ((bits >> 16) & 1u);  // round to nearest, ties to even
  return static_cast<uint16_t>(bits >> 16);
}

}  // namespace

std::vector<float> download_f32(Backend& backend, const Tensor& src) {
  std::vector<float> out(static_cast<size_t>(src.numel()));
  if (src.dtype == DType::F32) {
    backend.download(out.data(), src);
  } else if (src.dtype == DType::BF16) {
    std::vector<uint16_t> raw(out.size());
    backend.download(raw.data(), src);
    for (size_t i = 0; i < raw.size(); ++i) out[i] = bf16_to_f32(raw[i]);
  } else {
    throw_error("download_f32: tensor of dtype ", dtype_name(src.dtype), " is not floating point");
  }
  return out;
}

void upload_f32(Backend& backend, Tensor dst, const float* host) {
  if (dst.dtype == DType::F32) {
    backend.upload(dst, host);
  } else if (dst.dtype == DType::BF16) {
    std::vector<uint16_t> raw(static_cast<size_t>(dst.numel()));
    for (size_t i = 0; i < raw.size(); ++i) raw[i] = f32_to_bf16(host[i]);
    backend.upload(dst, raw.data());
  } else {
    throw_error("upload_f32: tensor of dtype ", dtype_name(dst.dtype), " is not floating point");
  }
}

}  // namespace smol
