// RoPE (rotate-half, HF's float32 inv_freq) and SwiGLU: forward against double references,
// backward against finite differences.
#include "tests/kernels_cpu/test_util.h"

namespace smol::test {
namespace {

// HF's float32 frequencies and angle, then the rotation in double.
std::vector<double> rope_ref(const std::vector<double>& x, const std::vector<int32_t>& pos,
                             int64_t heads, int64_t dim, float theta) {
  std::vector<double> out(x.size());
  const int64_t half = dim / 2;
  for (size_t t = 0; t < pos.size(); ++t)
    for (int64_t i = 0; i < half; ++i) {
      const float inv_freq =
          1.0f / std::pow(theta, static_cast<float>(2 * i) / static_cast<float>(dim));
      const float angle = static_cast<float>(pos[t]) * inv_freq;
      const double c = std::cos(double(angle)), s = std::sin(double(angle));
      for (int64_t h = 0; h < heads; ++h) {
        const int64_t base = (int64_t(t) * heads + h) * dim;
        out[base + i] = x[base + i] * c - x[base + i + half] * s;
        out[base + i + half] = x[base + i + half] * c + x[base + i] * s;
      }
    }
  return out;
}

TEST(CpuRope, ForwardMatchesHfFloat32Angles) {
  Device dev;
  const int64_t heads = 3, dim = 64;
  const float theta = 100000.0f;
  const std::vector<int32_t> pos{0, 1, 5, 77, 511, 2047, 8191};  // large angles too
  const int64_t tokens = pos.size();
  const auto x = random_floats(tokens * heads * dim, 1);
  Tensor tx = dev.f32({tokens, heads, dim}, x);
  dev->rope_forward(tx, dev.i32({tokens}, pos), theta);
  // Same float32 angle as the reference; cos/sin rounded to float (½ ulp) and 2 products +
  // a sum in fp32: ≤ ~4 ulp of O(1) values ≈ 5e-7.
  expect_near_all(dev.get(tx), rope_ref(to_double(x), pos, heads, dim, theta), 5e-7, 1e-6,
                  "rope_forward");
  // A rotation preserves each pair's norm: position 0 is the identity.
  const auto y = dev.get(tx);
  for (int64_t e = 0; e < heads * dim; ++e) EXPECT_EQ(y[e], x[e]);
}

TEST(CpuRope, BackwardIsTransposeOfForward) {
  Device dev;
  const int64_t heads = 2, dim = 10;  // D/2 = 5: odd half
  const std::vector<int32_t> pos{3, 0, 1};
  const int64_t tokens = pos.size();
  const auto x = random_floats(tokens * heads * dim, 2), w = random_floats(x.size(), 3);
  Tensor dy = dev.f32({tokens, heads, dim}, w);
  dev->rope_backward(dy, dev.i32({tokens}, pos), 10000.0f);
  RefFn f = [&](const std::vector<std::vector<double>>& in) {
    return rope_ref(in[0], pos, heads, dim, 10000.0f);
  };
  // Linear op: the FD gradient is exact to ~1e-10; fp32 rotation error ≈ 2 ulp.
  expect_near_all(dev.get(dy), finite_difference(f, {to_double(x)}, to_double(w), 0), 1e-6, 1e-6,
                  "rope_backward");
}

// The backend keeps the angles' cos/sin by position (kernels/cpu/cpu_rope_table.h). Whatever the
// table's history — grown by later calls, rebuilt for another theta or head_dim — a rotation
// equals, bit for bit, the one computed on the spot (the path a position beyond the table takes).
TEST(CpuRope, PositionTableEqualsAnglesComputedOnTheSpot) {
  Device dev;
  const int64_t heads = 2;
  const int32_t beyond_table = 1 << 17;  // RopeTable::kMaxPositions: computed on the spot
  for (const auto& [theta, dim] :
       {std::pair{10000.0f, int64_t{64}}, std::pair{100000.0f, int64_t{64}},
        std::pair{100000.0f, int64_t{16}}}) {
    for (const std::vector<int32_t>& pos : {std::vector<int32_t>{5, 2}, {300, 7, 5}, {8191, 0}}) {
      const int64_t tokens = static_cast<int64_t>(pos.size());
      const auto x = random_floats(tokens * heads * dim, 7);
      Tensor from_table = dev.f32({tokens, heads, dim}, x);
      dev->rope_forward(from_table, dev.i32({tokens}, pos), theta);
      // The same tokens with one more position past the table: the whole call computes on the spot.
      std::vector<int32_t> with_far = pos;
      with_far.push_back(beyond_table);
      auto x_far = x;
      x_far.resize(static_cast<size_t>((tokens + 1) * heads * dim), 0.5f);
      Tensor on_the_spot = dev.f32({tokens + 1, heads, dim}, x_far);
      dev->rope_forward(on_the_spot, dev.i32({tokens + 1}, with_far), theta);
      const auto a = dev.get(from_table), b = dev.get(on_the_spot);
      for (size_t e = 0; e < a.size(); ++e)
        ASSERT_EQ(a[e], b[e]) << "theta " << theta << " dim " << dim << " element " << e;
    }
  }
}

TEST(CpuRope, RejectsOddHeadDimAndWrongRank) {
  Device dev;
  EXPECT_THROW(dev->rope_forward(dev.zeros({2, 1, 7}), dev.i32({2}, {0, 1}), 1e4f), Error);
  EXPECT_THROW(dev->rope_forward(dev.zeros({2, 8}), dev.i32({2}, {0, 1}), 1e4f), Error);
  EXPECT_THROW(dev->rope_forward(dev.zeros({2, 1, 8}), dev.i32({3}, {0, 1, 2}), 1e4f), Error);
}

std::vector<double> swiglu_ref(const std::vector<double>& g, const std::vector<double>& u) {
  std::vector<double> out(g.size());
  for (size_t i = 0; i < g.size(); ++i) out[i] = g[i] / (1 + std::exp(-g[i])) * u[i];
  return out;
}

TEST(CpuSwiglu, ForwardAndBackward) {
  for (int64_t rows : {1, 3, 17}) {
    Device dev;
    const int64_t cols = 19;
    const auto g = random_floats(rows * cols, 4, -6, 6), u = random_floats(rows * cols, 5, -2, 2);
    const auto w = random_floats(rows * cols, 6);
    Tensor tg = dev.f32({rows, cols}, g), tu = dev.f32({rows, cols}, u);
    Tensor out = dev.zeros({rows, cols});
    dev->swiglu_forward(out, tg, tu);
    const std::string tag = " T=" + std::to_string(rows);
    // expf (≤ 1 ulp) + 3 fp32 ops: ≤ ~5 ulp relative of |out| ≤ 12.
    expect_near_all(dev.get(out), swiglu_ref(to_double(g), to_double(u)), 1e-6, 1e-6,
                    "swiglu_forward" + tag);
    Tensor dg = dev.f32({rows, cols}, std::vector<float>(rows * cols, 5.0f));  // overwritten
    Tensor du = dev.zeros({rows, cols});
    dev->swiglu_backward(dg, du, dev.f32({rows, cols}, w), tg, tu);
    RefFn f = [](const std::vector<std::vector<double>>& in) { return swiglu_ref(in[0], in[1]); };
    const std::vector<std::vector<double>> inputs{to_double(g), to_double(u)};
    expect_near_all(dev.get(dg), finite_difference(f, inputs, to_double(w), 0), 1e-6, 1e-5,
                    "swiglu dgate" + tag);
    expect_near_all(dev.get(du), finite_difference(f, inputs, to_double(w), 1), 1e-6, 1e-5,
                    "swiglu dup" + tag);
  }
}

}  // namespace
}  // namespace smol::test
