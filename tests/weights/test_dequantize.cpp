// Dequantisation tests (docs/formats.md §3 "Blocks"): hand-built blocks of every supported type
// with values written out from the spec's prose, GGUF files of every type loaded exactly, and
// a golden check against the PyPI gguf package's dequantize (tests/golden/weights/
// make_quant_fixtures.py). Dequantisation is exact arithmetic on the same fp32 operations as
// ggml, so every comparison here is bit-exact (tolerance 0).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "common/error.h"
#include "io/dequantize.h"
#include "io/gguf_reader.h"
#include "tests/weights/test_files.h"

namespace smol {
namespace {

using namespace smol::test;

void put_f16(Bytes& out, float v) {
  put<uint16_t>(out, fp32_to_fp16(v));
}

std::vector<float> decode(GgmlType type, const Bytes& block, int64_t n) {
  std::vector<float> out(n);
  dequantize_row(type, block.data(), out.data(), n);
  return out;
}

TEST(HalfFloats, Fp16AndBf16Conversions) {
  EXPECT_EQ(fp16_to_fp32(0x3C00), 1.0f);
  EXPECT_EQ(fp16_to_fp32(0xC000), -2.0f);
  EXPECT_EQ(fp16_to_fp32(0x7BFF), 65504.0f);
  EXPECT_EQ(fp16_to_fp32(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(fp16_to_fp32(0x03FF), std::ldexp(1023.0f, -24));
  EXPECT_TRUE(std::isinf(fp16_to_fp32(0x7C00)));
  EXPECT_TRUE(std::isnan(fp16_to_fp32(0x7E00)));
  EXPECT_TRUE(std::signbit(fp16_to_fp32(0x8000)));
  EXPECT_EQ(bf16_to_fp32(0x3F80), 1.0f);
  EXPECT_EQ(bf16_to_fp32(0xC040), -3.0f);
  // Round trips of every finite half value.
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7C00) == 0x7C00) continue;
    ASSERT_EQ(fp32_to_fp16(fp16_to_fp32(static_cast<uint16_t>(h))), h) << h;
  }
  EXPECT_EQ(fp32_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3F80);   // tie → even
  EXPECT_EQ(fp32_to_bf16(1.0f + std::ldexp(3.0f, -8)), 0x3F82);   // tie → even (up)
  EXPECT_EQ(fp32_to_fp16(1.0f + std::ldexp(1.0f, -11)), 0x3C00);  // tie → even
}

TEST(Dequantize, Q8_0Block) {
  Bytes b;
  put_f16(b, 0.25f);
  for (int j = 0; j < 32; ++j) put<int8_t>(b, static_cast<int8_t>(j - 16));
  const std::vector<float> y = decode(GgmlType::Q8_0, b, 32);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], (j - 16) * 0.25f) << j;
}

TEST(Dequantize, Q4_0Block) {
  // Low nibble of byte j = element j, high nibble = element j+16; value (q − 8)·d.
  Bytes b;
  put_f16(b, 2.0f);
  for (int j = 0; j < 16; ++j) put<uint8_t>(b, static_cast<uint8_t>(j | ((15 - j) << 4)));
  const std::vector<float> y = decode(GgmlType::Q4_0, b, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], (j - 8) * 2.0f) << j;
    EXPECT_EQ(y[j + 16], (15 - j - 8) * 2.0f) << j;
  }
}

TEST(Dequantize, Q4_1Block) {
  Bytes b;
  put_f16(b, 0.5f);
  put_f16(b, -1.0f);
  for (int j = 0; j < 16; ++j) put<uint8_t>(b, static_cast<uint8_t>(j | ((15 - j) << 4)));
  const std::vector<float> y = decode(GgmlType::Q4_1, b, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], j * 0.5f - 1.0f) << j;
    EXPECT_EQ(y[j + 16], (15 - j) * 0.5f - 1.0f) << j;
  }
}

// 5-bit q = nibble + 16·(qh bit j for element j; bit j+16 for element j+16).
int q5(const Bytes& qs, uint32_t qh, int element) {
  const int j = element % 16;
  const int nibble = element < 16 ? (qs[j] & 0xF) : (qs[j] >> 4);
  return nibble + 16 * ((qh >> element) & 1);
}

TEST(Dequantize, Q5_0AndQ5_1Blocks) {
  const uint32_t qh = 0xA5C3F00Fu;
  Bytes qs;
  for (int j = 0; j < 16; ++j) qs.push_back(static_cast<uint8_t>((j * 7 + 3) & 0xFF));
  Bytes b0;
  put_f16(b0, 1.5f);
  put<uint32_t>(b0, qh);
  b0.insert(b0.end(), qs.begin(), qs.end());
  Bytes b1;
  put_f16(b1, 0.25f);
  put_f16(b1, 0.5f);
  put<uint32_t>(b1, qh);
  b1.insert(b1.end(), qs.begin(), qs.end());
  const std::vector<float> y0 = decode(GgmlType::Q5_0, b0, 32);
  const std::vector<float> y1 = decode(GgmlType::Q5_1, b1, 32);
  for (int e = 0; e < 32; ++e) {
    EXPECT_EQ(y0[e], (q5(qs, qh, e) - 16) * 1.5f) << e;
    EXPECT_EQ(y1[e], q5(qs, qh, e) * 0.25f + 0.5f) << e;
  }
}

TEST(Dequantize, Q4_KBlock) {
  // scales[12] chosen so the s≥4 path uses the high 2 bits of scales[0..7].
  const uint8_t scales[12] = {0xC1, 0x42, 0x83, 0x04, 0xC5, 0x06,
                              0x47, 0x88, 0x9A, 0x3B, 0xFC, 0x1D};
  Bytes b;
  put_f16(b, 0.5f);
  put_f16(b, 0.25f);
  b.insert(b.end(), scales, scales + 12);
  for (int i = 0; i < 128; ++i) b.push_back(static_cast<uint8_t>((i * 37 + 11) & 0xFF));
  const std::vector<float> y = decode(GgmlType::Q4_K, b, 256);
  const uint8_t* qs = b.data() + 16;
  for (int s = 0; s < 8; ++s) {
    // docs/formats.md §3: s<4: sc = scales[s]&63, mn = scales[s+4]&63; s≥4: sc = (scales[s+4]&0xF)
    // | ((scales[s−4]>>6)<<4), mn = (scales[s+4]>>4) | ((scales[s]>>6)<<4).
    const int sc = s < 4 ? scales[s] & 63 : (scales[s + 4] & 0xF) | ((scales[s - 4] >> 6) << 4);
    const int mn = s < 4 ? scales[s + 4] & 63 : (scales[s + 4] >> 4) | ((scales[s] >> 6) << 4);
    const int group = s / 2;  // 64 outputs per group: sub-block 2g low nibbles, 2g+1 high
    for (int l = 0; l < 32; ++l) {
      const uint8_t byte = qs[32 * group + l];
      const int q = s % 2 == 0 ? byte & 0xF : byte >> 4;
      const float expected = (0.5f * sc) * q - (0.25f * mn);
      EXPECT_EQ(y[32 * s + l], expected) << "sub-block " << s << " l " << l;
    }
  }
}

TEST(Dequantize, Q6_KBlock) {
  Bytes b;
  for (int i = 0; i < 128; ++i) b.push_back(static_cast<uint8_t>((i * 29 + 5) & 0xFF));  // ql
  for (int i = 0; i < 64; ++i) b.push_back(static_cast<uint8_t>((i * 53 + 17) & 0xFF));  // qh
  for (int i = 0; i < 16; ++i) b.push_back(static_cast<uint8_t>(static_cast<int8_t>(i * 9 - 70)));
  put_f16(b, 0.125f);
  const std::vector<float> y = decode(GgmlType::Q6_K, b, 256);
  const uint8_t* ql_all = b.data();
  const uint8_t* qh_all = b.data() + 128;
  const int8_t* sc_all = reinterpret_cast<const int8_t*>(b.data() + 192);
  for (int half = 0; half < 2; ++half) {
    const uint8_t* ql = ql_all + 64 * half;
    const uint8_t* qh = qh_all + 32 * half;
    const int8_t* sc = sc_all + 8 * half;
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q[4] = {
          (ql[l] & 0xF) | ((qh[l] & 3) << 4), (ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4),
          (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4), (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)};
      for (int k = 0; k < 4; ++k)
        EXPECT_EQ(y[128 * half + l + 32 * k], 0.125f * sc[is + 2 * k] * (q[k] - 32))
            << "half " << half << " l " << l << " k " << k;
    }
  }
}

// One GGUF holding a tensor of every supported type, built by hand, loaded through the
// reader: exercises type ids, block-size arithmetic and offsets together.
TEST(Dequantize, GgufOfEveryTypeLoadsExactly) {
  TempDir dir;
  GgufBuilder g;
  g.tensor({"f32", {2, 2}, 0, f32_bytes({1.5f, -2, 0.25f, 8}), {}});
  Bytes f16;
  for (float v : {1.0f, -0.5f, 65504.0f, 0.0f}) put_f16(f16, v);
  g.tensor({"f16", {4}, 1, f16, {}});
  Bytes bf16;
  for (uint16_t v : {0x3F80, 0xC040, 0x4000, 0x0000}) put<uint16_t>(bf16, v);
  g.tensor({"bf16", {4}, 30, bf16, {}});
  // Quantized: each block type with d = 1 (m = 0) and qs chosen so the value is the index
  // pattern the spec gives.
  Bytes q8;
  put_f16(q8, 1.0f);
  for (int j = 0; j < 32; ++j) put<int8_t>(q8, static_cast<int8_t>(j));
  g.tensor({"q8_0", {32}, 8, q8, {}});
  Bytes q40;
  put_f16(q40, 1.0f);
  for (int j = 0; j < 16; ++j) put<uint8_t>(q40, static_cast<uint8_t>(j | (j << 4)));
  g.tensor({"q4_0", {32}, 2, q40, {}});
  Bytes q41;
  put_f16(q41, 1.0f);
  put_f16(q41, 0.0f);
  for (int j = 0; j < 16; ++j) put<uint8_t>(q41, static_cast<uint8_t>(j | (j << 4)));
  g.tensor({"q4_1", {32}, 3, q41, {}});
  Bytes q50;
  put_f16(q50, 1.0f);
  put<uint32_t>(q50, 0xFFFF0000u);  // 5th bit set for elements 16..31 only
  for (int j = 0; j < 16; ++j) put<uint8_t>(q50, static_cast<uint8_t>(j | (j << 4)));
  g.tensor({"q5_0", {32}, 6, q50, {}});
  Bytes q51;
  put_f16(q51, 1.0f);
  put_f16(q51, 0.0f);
  put<uint32_t>(q51, 0xFFFF0000u);
  for (int j = 0; j < 16; ++j) put<uint8_t>(q51, static_cast<uint8_t>(j | (j << 4)));
  g.tensor({"q5_1", {32}, 7, q51, {}});
  Bytes q4k;
  put_f16(q4k, 1.0f);
  put_f16(q4k, 0.0f);
  const uint8_t unit_scales[12] = {1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1};  // sc = 1, mn = 0
  q4k.insert(q4k.end(), unit_scales, unit_scales + 12);
  for (int i = 0; i < 128; ++i)
    q4k.push_back(static_cast<uint8_t>((i % 16) | ((15 - i % 16) << 4)));
  g.tensor({"q4_k", {256}, 12, q4k, {}});
  Bytes q6k(128 + 64, 0);
  for (int i = 0; i < 16; ++i) q6k.push_back(1);  // scales 1
  put_f16(q6k, 1.0f);                             // every q = 0 → value −32
  g.tensor({"q6_k", {256}, 14, q6k, {}});
  const std::string path = dir.write("types.gguf", g.build());
  const GgufFile f = GgufFile::open(path);
  auto load = [&](const char* name) { return dequantize_tensor(f.tensor(name), path); };

  EXPECT_EQ(load("f32"), (std::vector<float>{1.5f, -2, 0.25f, 8}));
  EXPECT_EQ(load("f16"), (std::vector<float>{1.0f, -0.5f, 65504.0f, 0.0f}));
  EXPECT_EQ(load("bf16"), (std::vector<float>{1.0f, -3.0f, 2.0f, 0.0f}));
  const std::vector<float> q8v = load("q8_0"), q40v = load("q4_0"), q41v = load("q4_1"),
                           q50v = load("q5_0"), q51v = load("q5_1");
  for (int j = 0; j < 32; ++j) {
    EXPECT_EQ(q8v[j], j);
    EXPECT_EQ(q40v[j], (j % 16) - 8);
    EXPECT_EQ(q41v[j], j % 16);
    EXPECT_EQ(q50v[j], (j % 16) + (j >= 16 ? 16 : 0) - 16);
    EXPECT_EQ(q51v[j], (j % 16) + (j >= 16 ? 16 : 0));
  }
  const std::vector<float> q4kv = load("q4_k"), q6kv = load("q6_k");
  for (int e = 0; e < 256; ++e) {
    const int group = e / 64, l = e % 32;
    const uint8_t byte = static_cast<uint8_t>((l % 16) | ((15 - l % 16) << 4));
    (void)group;
    EXPECT_EQ(q4kv[e], (e % 64) < 32 ? (byte & 0xF) : (byte >> 4)) << e;
    EXPECT_EQ(q6kv[e], -32.0f) << e;
  }
}

// Golden: bytes made and dequantised by the PyPI gguf package (gguf.quants). Bit-exact.
TEST(Dequantize, MatchesGgufPyGolden) {
  const std::string path =
      std::string(SMOL_SOURCE_DIR) + "/tests/golden/weights/quant_fixtures.gguf";
  const GgufFile f = GgufFile::open(path);
  int checked = 0;
  for (const GgufTensorInfo& t : f.tensors()) {
    if (t.name.size() > 9 && t.name.compare(t.name.size() - 9, 9, ".expected") == 0) continue;
    const GgufTensorInfo& expected_info = f.tensor(t.name + ".expected");
    ASSERT_EQ(expected_info.type, GgmlType::F32);
    ASSERT_EQ(expected_info.ne, t.ne) << t.name;
    const std::vector<float> got = dequantize_tensor(t, path);
    const std::vector<float> expected = dequantize_tensor(expected_info, path);
    ASSERT_EQ(got.size(), expected.size());
    int64_t mismatches = 0;
    for (size_t i = 0; i < got.size(); ++i)
      if (std::memcmp(&got[i], &expected[i], 4) != 0 && ++mismatches <= 3)
        ADD_FAILURE() << t.name << "[" << i << "]: " << got[i] << " vs gguf-py " << expected[i];
    EXPECT_EQ(mismatches, 0) << t.name;
    ++checked;
  }
  EXPECT_EQ(checked, 15);  // 10 types + 5 random-byte variants
}

}  // namespace
}  // namespace smol
