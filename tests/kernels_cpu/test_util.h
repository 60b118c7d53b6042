// Helpers shared by the cpu kernel tests: a backend with buffers kept alive for the test,
// host <-> device copies, seeded random data, and comparison against double references.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "kernels/cpu/cpu_backend.h"

namespace smol::test {

// Owns the backend and every buffer a test allocates through it.
class Device {
 public:
  Device() : backend_(make_cpu_backend()) {}
  Backend& backend() { return *backend_; }
  Backend* operator->() { return backend_.get(); }

  Tensor zeros(Shape shape, DType dtype = DType::F32) {
    buffers_.push_back(backend_->allocate(static_cast<size_t>(shape.numel()) * dtype_size(dtype)));
    return buffers_.back().view(dtype, shape);
  }
  Tensor f32(Shape shape, const std::vector<float>& host) {
    EXPECT_EQ(static_cast<int64_t>(host.size()), shape.numel());
    Tensor t = zeros(shape);
    backend_->upload(t, host.data());
    return t;
  }
  Tensor i32(Shape shape, const std::vector<int32_t>& host) {
    EXPECT_EQ(static_cast<int64_t>(host.size()), shape.numel());
    Tensor t = zeros(shape, DType::I32);
    backend_->upload(t, host.data());
    return t;
  }
  std::vector<float> get(const Tensor& t) {
    std::vector<float> host(static_cast<size_t>(t.numel()));
    backend_->download(host.data(), t);
    return host;
  }
  std::vector<int32_t> get_i32(const Tensor& t) {
    std::vector<int32_t> host(static_cast<size_t>(t.numel()));
    backend_->download(host.data(), t);
    return host;
  }

 private:
  std::unique_ptr<Backend> backend_;
  std::vector<Buffer> buffers_;
};

inline std::vector<float> random_floats(size_t n, uint64_t seed, float lo = -1.0f,
                                        float hi = 1.0f) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> out(n);
  for (float& x : out) x = dist(rng);
  return out;
}

inline std::vector<double> to_double(const std::vector<float>& x) {
  return std::vector<double>(x.begin(), x.end());
}

// Expects |actual − expected| ≤ atol + rtol·|expected| element-wise; reports the worst one.
inline void expect_near_all(const std::vector<float>& actual, const std::vector<double>& expected,
                            double atol, double rtol, const std::string& what) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  size_t worst = 0, failures = 0;
  double worst_excess = -1e300;
  for (size_t i = 0; i < actual.size(); ++i) {
    const double err = std::abs(static_cast<double>(actual[i]) - expected[i]);
    const double bound = atol + rtol * std::abs(expected[i]);
    if (!(err <= bound)) ++failures;  // also counts NaN
    const double excess = std::isnan(err) ? 1e300 : err - bound;
    if (excess > worst_excess) worst_excess = excess, worst = i;
  }
  EXPECT_EQ(failures, 0u) << what << ": " << failures << " of " << actual.size()
                          << " elements out of tolerance; worst at " << worst << ": got "
                          << actual[worst] << ", want " << expected[worst] << " (atol " << atol
                          << ", rtol " << rtol << ")";
}

// Central finite differences of the scalar L(inputs) = Σ weights ⊙ f(inputs) with respect to
// inputs[which], on a double-precision reference f. With h = 1e-4 on O(1) values the
// truncation error is O(h²·f''') ≈ 1e-8 and the rounding error ≈ 1e-16/h ≈ 1e-12, so the
// result is the exact gradient to ~1e-8 relative: all the error budget goes to the fp32 op.
using RefFn = std::function<std::vector<double>(const std::vector<std::vector<double>>&)>;
inline std::vector<double> finite_difference(const RefFn& f,
                                             std::vector<std::vector<double>> inputs,
                                             const std::vector<double>& weights, size_t which,
                                             double h = 1e-4) {
  auto loss = [&](const std::vector<std::vector<double>>& in) {
    const std::vector<double> out = f(in);
    double l = 0.0;
    for (size_t i = 0; i < out.size(); ++i) l += weights[i] * out[i];
    return l;
  };
  std::vector<double> grad(inputs[which].size());
  for (size_t i = 0; i < grad.size(); ++i) {
    const double saved = inputs[which][i];
    inputs[which][i] = saved + h;
    const double plus = loss(inputs);
    inputs[which][i] = saved - h;
    const double minus = loss(inputs);
    inputs[which][i] = saved;
    grad[i] = (plus - minus) / (2 * h);
  }
  return grad;
}

}  // namespace smol::test
