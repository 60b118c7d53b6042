// fp32 views of F32/BF16 device tensors (bf16 = the high half of an fp32, docs/formats.md §3).
#include "model/host_transfer.h"

#include "io/dequantize.h"

#include <cstdint>
#include <cstring>

namespace smol {

std::vector<float> download_f32(Backend& backend, const Tensor& src) {
  std::vector<float> out(static_cast<size_t>(src.numel()));
  if (src.dtype == DType::F32) {
    backend.download(out.data(), src);
  } else if (src.dtype == DType::BF16) {
    std::vector<uint16_t> raw(out.size());
    backend.download(raw.data(), src);
    for (size_t i = 0; i < raw.size(); ++i) out[i] = bf16_to_fp32(raw[i]);
  } else {
    throw_error("download_f32: tensor of dtype ", dtype_name(src.dtype), " is not floating point");
  }
  return out;
}

HostTensor download_host_tensor(Backend& backend, const Tensor& src) {
  HostTensor h;
  h.shape = src.shape;
  h.data = download_f32(backend, src);
  return h;
}

void upload_f32(Backend& backend, Tensor dst, const float* host) {
  if (dst.dtype == DType::F32) {
    backend.upload(dst, host);
  } else if (dst.dtype == DType::BF16) {
    std::vector<uint16_t> raw(static_cast<size_t>(dst.numel()));
    for (size_t i = 0; i < raw.size(); ++i) raw[i] = fp32_to_bf16(host[i]);
    backend.upload(dst, raw.data());
  } else {
    throw_error("upload_f32: tensor of dtype ", dtype_name(dst.dtype), " is not floating point");
  }
}

}  // namespace smol
