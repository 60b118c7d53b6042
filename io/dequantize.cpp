// ggml block formats → fp32 (docs/formats.md §3; ggml src/ggml-quants.c dequantize_row_*).
// Each block decoder mirrors the reference loop order, so results are bit-identical to ggml's
// scalar code: every value is one product (plus one add for the "_1"/K types) in fp32.
#include "io/dequantize.h"

#include <cmath>
#include <cstring>

#include "common/error.h"
#include "kernels/quant_blocks.h"

namespace smol {
namespace {

uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// ---- 32-element blocks ------------------------------------------------------------------
// Q8_0, Q4_0, Q4_1 (and Q4_K below) decode through the block structs the quantised matmul
// shares (kernels/quant_blocks.h): one definition of each layout.
void block_q8_0(const uint8_t* b, float* y) {
  dequantize_block_at<BlockQ8_0>(b, y);
}
void block_q4_0(const uint8_t* b, float* y) {
  dequantize_block_at<BlockQ4_0>(b, y);
}
void block_q4_1(const uint8_t* b, float* y) {
  dequantize_block_at<BlockQ4_1>(b, y);
}

// Q5_0: d, qh (u32: bit j = 5th bit of element j), qs[16]; x = (q − 16)·d.
void block_q5_0(const uint8_t* b, float* y) {
  const float d = fp16_to_fp32(load_u16(b));
  const uint32_t qh = load_u32(b + 2);
  const uint8_t* qs = b + 6;
  for (int j = 0; j < 16; ++j) {
    const uint8_t xh_0 = ((qh >> (j + 0)) << 4) & 0x10;
    const uint8_t xh_1 = ((qh >> (j + 12))) & 0x10;
    const int32_t x0 = ((qs[j] & 0x0F) | xh_0) - 16;
    const int32_t x1 = ((qs[j] >> 4) | xh_1) - 16;
    y[j] = x0 * d;
    y[j + 16] = x1 * d;
  }
}

// Q5_1: d, m, qh, qs[16]; x = q·d + m.
void block_q5_1(const uint8_t* b, float* y) {
  const float d = fp16_to_fp32(load_u16(b));
  const float m = fp16_to_fp32(load_u16(b + 2));
  const uint32_t qh = load_u32(b + 4);
  const uint8_t* qs = b + 8;
  for (int j = 0; j < 16; ++j) {
    const uint8_t xh_0 = ((qh >> (j + 0)) << 4) & 0x10;
    const uint8_t xh_1 = ((qh >> (j + 12))) & 0x10;
    const int x0 = (qs[j] & 0x0F) | xh_0;
    const int x1 = (qs[j] >> 4) | xh_1;
    y[j] = x0 * d + m;
    y[j + 16] = x1 * d + m;
  }
}

// ---- 256-element super-blocks -----------------------------------------------------------
void block_q4_k(const uint8_t* b, float* y) {
  dequantize_block_at<BlockQ4_K>(b, y);
}

// Q6_K: ql[128], qh[64], scales[16] int8, d (fp16); two halves of 128 values.
void block_q6_k(const uint8_t* b, float* y) {
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
  const float d = fp16_to_fp32(load_u16(b + 208));
  for (int n = 0; n < 256; n += 128) {
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int8_t q1 = static_cast<int8_t>((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int8_t q2 = static_cast<int8_t>((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int8_t q3 = static_cast<int8_t>((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int8_t q4 = static_cast<int8_t>((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      y[l + 0] = d * sc[is + 0] * q1;
      y[l + 32] = d * sc[is + 2] * q2;
      y[l + 64] = d * sc[is + 4] * q3;
      y[l + 96] = d * sc[is + 6] * q4;
    }
    y += 128;
    ql += 64;
    qh += 32;
    sc += 8;
  }
}

using BlockDecoder = void (*)(const uint8_t*, float*);

BlockDecoder block_decoder(GgmlType type) {
  switch (type) {
    case GgmlType::Q8_0:
      return block_q8_0;
    case GgmlType::Q4_0:
      return block_q4_0;
    case GgmlType::Q4_1:
      return block_q4_1;
    case GgmlType::Q5_0:
      return block_q5_0;
    case GgmlType::Q5_1:
      return block_q5_1;
    case GgmlType::Q4_K:
      return block_q4_k;
    case GgmlType::Q6_K:
      return block_q6_k;
    default:
      return nullptr;
  }
}

}  // namespace

float fp16_to_fp32(uint16_t h) {
  return half_bits_to_float(h);
}

float bf16_to_fp32(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t fp32_to_bf16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);
  bits += 0x7FFFu + ((bits >> 16) & 1);  // round to nearest, ties to even
  return static_cast<uint16_t>(bits >> 16);
}

uint16_t fp32_to_fp16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000);
  const uint32_t abs_bits = bits & 0x7FFFFFFFu;
  if (abs_bits > 0x7F800000u) return sign | 0x7E00;   // NaN
  if (abs_bits >= 0x477FF000u) return sign | 0x7C00;  // rounds to ≥ 65520 → inf
  float magnitude;
  std::memcpy(&magnitude, &abs_bits, 4);
  if (abs_bits < 0x38800000u) {
    // Subnormal (or zero) half: round magnitude / 2^-24 to nearest even integer.
    const float scaled = std::nearbyint(magnitude * 16777216.0f);
    return sign | static_cast<uint16_t>(scaled);
  }
  // Normal: drop 13 mantissa bits with round-to-nearest-even, rebias 127 → 15.
  uint32_t rounded = abs_bits + 0xFFFu + ((abs_bits >> 13) & 1);
  return sign | static_cast<uint16_t>((rounded - (112u << 23)) >> 13);
}

bool ggml_type_dequantizable(GgmlType type) {
  return type == GgmlType::F32 || type == GgmlType::F16 || type == GgmlType::BF16 ||
         block_decoder(type) != nullptr;
}

void dequantize_row(GgmlType type, const uint8_t* src, float* dst, int64_t n) {
  switch (type) {
    case GgmlType::F32:
      std::memcpy(dst, src, n * sizeof(float));
      return;
    case GgmlType::F16:
      for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(load_u16(src + 2 * i));
      return;
    case GgmlType::BF16:
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_fp32(load_u16(src + 2 * i));
      return;
    default:
      break;
  }
  const BlockDecoder decode = block_decoder(type);
  if (decode == nullptr)
    throw_error("cannot dequantise ggml type ", ggml_type_name(type),
                " (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q6_K)");
  const GgmlTypeTraits traits = ggml_type_traits(static_cast<uint32_t>(type));
  SMOL_CHECK(n % traits.block_elems == 0, "dequantize_row: ", n,
             " elements is not a multiple of the ", traits.name, " block size ",
             traits.block_elems);
  for (int64_t block = 0; block < n / traits.block_elems; ++block)
    decode(src + block * traits.block_bytes, dst + block * traits.block_elems);
}

void dequantize_rows(GgmlType type, const uint8_t* src, float* dst, int64_t rows,
                     int64_t row_elems) {
  const GgmlTypeTraits traits = ggml_type_traits(static_cast<uint32_t>(type));
  SMOL_CHECK(traits.name != nullptr && ggml_type_dequantizable(type),
             "cannot dequantise ggml type id ", static_cast<uint32_t>(type));
  SMOL_CHECK(row_elems % traits.block_elems == 0, "dequantize_rows: row of ", row_elems,
             " elements is not a multiple of the ", traits.name, " block size ",
             traits.block_elems);
  const int64_t row_bytes = row_elems / traits.block_elems * traits.block_bytes;
#pragma omp parallel for schedule(static) if (rows * row_elems > (1 << 16))
  for (int64_t r = 0; r < rows; ++r)
    dequantize_row(type, src + r * row_bytes, dst + r * row_elems, row_elems);
}

std::vector<float> dequantize_tensor(const GgufTensorInfo& info, const std::string& path) {
  if (!ggml_type_dequantizable(info.type))
    throw_error(path, ": tensor '", info.name, "' has ggml type ", ggml_type_name(info.type),
                ", which this engine cannot dequantise (supported: F32, F16, BF16, Q8_0, Q4_0, "
                "Q4_1, Q5_0, Q5_1, Q4_K, Q6_K)");
  const int64_t row_elems = info.ne.empty() ? 1 : info.ne[0];
  const int64_t rows = row_elems == 0 ? 0 : info.numel() / row_elems;
  std::vector<float> out(static_cast<size_t>(info.numel()));
  dequantize_rows(info.type, info.data, out.data(), rows, row_elems);
  return out;
}

}  // namespace smol
