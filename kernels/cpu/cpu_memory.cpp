// Element-wise memory ops of the cpu backend: fill_zero, copy (with F32 <-> BF16 casts),
// axpy (y += alpha·x) and scale (x *= alpha). OpenMP over elements; the loops are plain
// stride-1 so the compiler vectorises them.
#include <cstring>

#include "kernels/cpu/cpu_ops.h"

namespace smol::cpu {
namespace {

// BF16 is the high half of an IEEE f32 (docs/formats.md §3 table); f32 -> bf16 rounds to nearest
// even, as torch's .to(bfloat16) does, and keeps NaN a NaN.
inline uint16_t f32_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);
  const uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}
inline float bf16_to_f32(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

}  // namespace

void fill_zero(Tensor t) {
  if (t.bytes() > 0) std::memset(t.data, 0, t.bytes());
}

void copy(Tensor dst, const Tensor& src) {
  // A copy between two views of the same elements in different shapes ([T, H·D] and
  // [T, H, D]) is legitimate, so only the element count has to agree.
  const int64_t n = dst.numel();
  if (dst.dtype == src.dtype) {
    if (n > 0 && dst.data != src.data) std::memmove(dst.data, src.data, dst.bytes());
    return;
  }
  if (dst.dtype == DType::BF16 && src.dtype == DType::F32) {
    uint16_t* out = dst.as<uint16_t>();
    const float* in = src.as<float>();
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; ++i) out[i] = f32_to_bf16(in[i]);
    return;
  }
  if (dst.dtype == DType::F32 && src.dtype == DType::BF16) {
    float* out = dst.as<float>();
    const uint16_t* in = src.as<uint16_t>();
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_f32(in[i]);
    return;
  }
  throw_error("copy: cannot cast ", dtype_name(src.dtype), " ", src.shape.str(), " to ",
              dtype_name(dst.dtype), " ", dst.shape.str(),
              " (the cpu backend casts only between F32 and BF16)");
}

// Row copies (kernels/backend.h scatter_rows / gather_rows): rows moved as bytes, the index
// read on the host and checked.
namespace {
int64_t checked_row(const char* op, const Tensor& index, int64_t i, int64_t rows) {
  const int64_t row = index.as<int32_t>()[i];
  SMOL_CHECK(row >= 0 && row < rows, op, ": index[", i, "] = ", row, " is outside [0, ", rows, ")");
  return row;
}
}  // namespace

void scatter_rows(std::span<const Backend::RowScatter> pairs, const Tensor& index) {
  for (const Backend::RowScatter& p : pairs) {
    const size_t row_bytes = static_cast<size_t>(p.src.shape[1]) * dtype_size(p.src.dtype);
    for (int64_t i = 0; i < index.numel(); ++i) {
      const int64_t row = checked_row("scatter_rows", index, i, p.dst.shape[0]);
      std::memmove(static_cast<char*>(p.dst.data) + row * row_bytes,
                   static_cast<const char*>(p.src.data) + i * row_bytes, row_bytes);
    }
  }
}

void gather_rows(Tensor dst, const Tensor& src, const Tensor& index) {
  const size_t row_bytes = static_cast<size_t>(src.shape[1]) * dtype_size(src.dtype);
  for (int64_t i = 0; i < index.numel(); ++i) {
    const int64_t row = checked_row("gather_rows", index, i, src.shape[0]);
    std::memmove(static_cast<char*>(dst.data) + i * row_bytes,
                 static_cast<const char*>(src.data) + row * row_bytes, row_bytes);
  }
}

void axpy(Tensor y, const Tensor& x, float alpha) {
  float* out = y.as<float>();
  const float* in = x.as<float>();
  const int64_t n = y.numel();
#pragma omp parallel for simd schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) out[i] += alpha * in[i];
}

void scale(Tensor x, float alpha) {
  float* data = x.as<float>();
  const int64_t n = x.numel();
#pragma omp parallel for simd schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) data[i] *= alpha;
}

}  // namespace smol::cpu
