// cuda vs cpu: rope_append_kv, decode's RoPE and KV-cache append as one launch (kernels/cuda/
// rope.cu, docs/design.md §2.7 "Fused RoPE"). Its contract is the composition rope_qk_forward
// then scatter_rows, bit for bit: the kernel rotates each pair with rope's own code
// (kernels/cuda/rope_math.h) and copies rows as they are, so on the device the two paths must
// agree exactly; against cpu the rotation has rope_forward's tolerance and the copies none.
#include <algorithm>
#include <array>

#include "cuda_ops_test_util.h"

namespace smol::test {
namespace {

constexpr int64_t kTokens = 5, kQHeads = 9, kKvHeads = 3, kDim = 64, kCacheRows = 40;
constexpr float kTheta = 10000.0f;
// Distinct cache rows of the 5 new tokens (slots of 8 rows: tokens land mid-slot and at the
// last row of the cache) and their positions (not starting at 0, as in decoding).
const std::vector<float> kIndex{3, 17, 18, 30, 39};
const std::vector<float> kPositions{3, 7, 8, 0, 1999};

struct AppendState {
  Owned q, k, v, k_cache, v_cache, index, positions;
};

struct AppendInputs {
  std::vector<float> q, k, v, k_cache, v_cache;
};

AppendInputs append_inputs() {
  AppendInputs in;
  in.q = rounded_bf16(random_vector(kTokens * kQHeads * kDim, 61));
  in.k = rounded_bf16(random_vector(kTokens * kKvHeads * kDim, 62));
  in.v = rounded_bf16(random_vector(kTokens * kKvHeads * kDim, 63));
  // Rows nobody appends to keep their values: random ones, checked after the op.
  in.k_cache = rounded_bf16(random_vector(kCacheRows * kKvHeads * kDim, 64, -3.0f, 3.0f));
  in.v_cache = rounded_bf16(random_vector(kCacheRows * kKvHeads * kDim, 65, -3.0f, 3.0f));
  return in;
}

AppendState upload_state(Backend& b, DType dt, const AppendInputs& in,
                         const std::vector<float>& index = kIndex) {
  const Shape qs{kTokens, kQHeads, kDim}, ks{kTokens, kKvHeads, kDim},
      cs{kCacheRows, kKvHeads, kDim};
  return {make_tensor(b, in.q, qs, dt),
          make_tensor(b, in.k, ks, dt),
          make_tensor(b, in.v, ks, dt),
          make_tensor(b, in.k_cache, cs, dt),
          make_tensor(b, in.v_cache, cs, dt),
          make_tensor(b, index, {kTokens}, DType::I32),
          make_tensor(b, kPositions, {kTokens}, DType::I32)};
}

void fused_append(Backend& b, AppendState& s) {
  b.rope_append_kv(s.q.tensor, s.k.tensor, s.v.tensor, s.k_cache.tensor, s.v_cache.tensor,
                   s.index.tensor, Backend::Rotary{s.positions.tensor, kTheta});
}

void composed_append(Backend& b, AppendState& s) {
  b.rope_qk_forward(s.q.tensor, s.k.tensor, s.positions.tensor, kTheta);
  const int64_t width = kKvHeads * kDim;
  const std::array<Backend::RowScatter, 2> pairs{
      Backend::RowScatter{s.k_cache.tensor.reshaped(Shape{kCacheRows, width}),
                          s.k.tensor.reshaped(Shape{kTokens, width})},
      Backend::RowScatter{s.v_cache.tensor.reshaped(Shape{kCacheRows, width}),
                          s.v.tensor.reshaped(Shape{kTokens, width})}};
  b.scatter_rows(pairs, s.index.tensor);
}

TEST_F(CudaOpsTest, RopeAppendKvEqualsRopeQkThenScatterBitForBit) {
  const AppendInputs in = append_inputs();
  for (DType dt : {DType::BF16, DType::F32}) {
    AppendState fused = upload_state(*dev_, dt, in), composed = upload_state(*dev_, dt, in);
    fused_append(*dev_, fused);
    composed_append(*dev_, composed);
    const std::string label = dt == DType::BF16 ? "bf16" : "f32";
    EXPECT_EQ(read(*dev_, fused.q.tensor), read(*dev_, composed.q.tensor)) << label;
    EXPECT_EQ(read(*dev_, fused.k.tensor), read(*dev_, composed.k.tensor)) << label;
    EXPECT_EQ(read(*dev_, fused.k_cache.tensor), read(*dev_, composed.k_cache.tensor)) << label;
    EXPECT_EQ(read(*dev_, fused.v_cache.tensor), read(*dev_, composed.v_cache.tensor)) << label;
  }
}

TEST_F(CudaOpsTest, RopeAppendKvMatchesCpu) {
  const AppendInputs in = append_inputs();
  AppendState dev = upload_state(*dev_, DType::BF16, in);
  AppendState cpu = upload_state(*cpu_, DType::F32, in);
  fused_append(*dev_, dev);
  fused_append(*cpu_, cpu);  // cpu: the default body, rope_qk_forward then scatter_rows
  // Rotation: rope_forward's bound (tests/cuda_ops/norm_rope_ops_test.cpp): identical fp32
  // angles, sincosf vs cpu's cos/sin within 2 ulps (2^-22 of |x0| + |x1| ≤ 2, so 2^-21
  // absolute), then one bf16 rounding (kBf16Rounding relative).
  expect_close(read(*dev_, dev.q.tensor), read(*cpu_, cpu.q.tensor), kBf16Rounding, 0x1p-21,
               "rope_append_kv q");
  expect_close(read(*dev_, dev.k.tensor), read(*cpu_, cpu.k.tensor), kBf16Rounding, 0x1p-21,
               "rope_append_kv k");
  // The cache: appended k rows as rotated (same bound; the other rows untouched, exactly), v
  // rows copied bit for bit (inputs are bf16-exact): exact.
  expect_close(read(*dev_, dev.k_cache.tensor), read(*cpu_, cpu.k_cache.tensor), kBf16Rounding,
               0x1p-21, "rope_append_kv k_cache");
  const std::vector<float> k_cache = read(*dev_, dev.k_cache.tensor);
  const int64_t row = kKvHeads * kDim;
  int64_t changed_elsewhere = 0;
  for (int64_t r = 0; r < kCacheRows; ++r) {
    if (std::find(kIndex.begin(), kIndex.end(), static_cast<float>(r)) != kIndex.end()) continue;
    for (int64_t e = 0; e < row; ++e)
      changed_elsewhere += k_cache[r * row + e] != in.k_cache[r * row + e];
  }
  EXPECT_EQ(changed_elsewhere, 0) << "cache rows outside the index were written";
  EXPECT_EQ(read(*dev_, dev.v_cache.tensor), read(*cpu_, cpu.v_cache.tensor));
}

TEST_F(CudaOpsTest, RopeAppendKvNamesAnIndexOutsideTheCache) {
  // scatter_rows' rule: with device checks (cuda-emu's default; the test turns them on for a
  // GPU too) an index outside [0, R) is one Error naming the op, the position and the value.
  dev_->set_device_checks(true);
  AppendState s = upload_state(*dev_, DType::BF16, append_inputs(), {3, 17, 40, 30, 39});
  try {
    fused_append(*dev_, s);
    FAIL() << "an index outside the cache was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("rope_append_kv: index[2] = 40 is outside [0, 40)"),
              std::string::npos)
        << e.what();
  }
}

TEST_F(CudaOpsTest, RopeAppendKvRefusesACacheOfOtherHeads) {
  AppendState s = upload_state(*dev_, DType::BF16, append_inputs());
  Owned narrow = make_tensor(*dev_, std::vector<float>(kCacheRows * 2 * kDim, 0.0f),
                             {kCacheRows, 2, kDim}, DType::BF16);
  try {
    dev_->rope_append_kv(s.q.tensor, s.k.tensor, s.v.tensor, narrow.tensor, narrow.tensor,
                         s.index.tensor, Backend::Rotary{s.positions.tensor, kTheta});
    FAIL() << "a cache of 2 heads was accepted for keys of 3";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("rope_append_kv: k_cache"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace smol::test
