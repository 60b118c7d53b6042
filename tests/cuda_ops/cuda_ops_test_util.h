// Shared helpers of the cuda op tests: the device under test (SMOL_TEST_DEVICE, default
// cuda-emu), the cpu reference backend, host<->device transfers in fp32 whatever the tensor's
// dtype, bf16 rounding on the host, and a tolerance check that reports the worst element.
//
// Tolerances: bf16 keeps 8 significant bits, so one round-to-nearest costs at most 2^-9
// relative; each check allows 2^-8 relative per rounding the device performs (a factor two of
// margin) plus an absolute term for fp32 arithmetic differences, derived next to each check.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "kernels/backend.h"

namespace smol::test {

inline constexpr double kBf16Rounding = 0x1p-8;  // allowance per bf16 rounding (2^-9 actual)

inline std::string device_under_test() {
  const char* env = std::getenv("SMOL_TEST_DEVICE");
  return env && *env ? env : "cuda-emu";
}

inline float round_bf16(float x) {
  // Round to nearest even on the top 16 bits (what __float2bfloat16 does), NaN-free inputs.
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  bits += 0x7fff + ((bits >> 16) & 1);
  bits &= 0xffff0000u;
  float out;
  std::memcpy(&out, &bits, 4);
  return out;
}
inline std::vector<float> rounded_bf16(std::vector<float> v) {
  for (float& x : v) x = round_bf16(x);
  return v;
}

inline std::vector<float> random_vector(size_t n, uint32_t seed, float lo = -1.0f,
                                        float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// A device tensor together with the buffer that owns it.
struct Owned {
  Buffer buffer;
  Tensor tensor;
};

// Uploads fp32 host values as a tensor of `dtype` (F32, BF16 via a device cast, or I32 from
// the values' integer parts).
inline Owned make_tensor(Backend& b, const std::vector<float>& host, Shape shape, DType dtype) {
  EXPECT_EQ(static_cast<int64_t>(host.size()), shape.numel());
  Owned out;
  out.buffer = b.allocate(static_cast<size_t>(shape.numel()) * dtype_size(dtype));
  out.tensor = out.buffer.view(dtype, shape);
  if (dtype == DType::I32) {
    std::vector<int32_t> ints(host.begin(), host.end());
    b.upload(out.tensor, ints.data());
  } else if (dtype == DType::F32) {
    b.upload(out.tensor, host.data());
  } else {
    Buffer staging = b.allocate(host.size() * sizeof(float));
    const Tensor f32 = staging.view(DType::F32, shape);
    b.upload(f32, host.data());
    b.copy(out.tensor, f32);
    b.synchronize();
  }
  return out;
}

inline std::vector<float> read(Backend& b, const Tensor& t) {
  std::vector<float> host(static_cast<size_t>(t.numel()));
  if (t.dtype == DType::F32) {
    b.download(host.data(), t);
  } else if (t.dtype == DType::I32) {
    std::vector<int32_t> ints(host.size());
    b.download(ints.data(), t);
    for (size_t i = 0; i < ints.size(); ++i) host[i] = static_cast<float>(ints[i]);
  } else {
    Buffer staging = b.allocate(host.size() * sizeof(float));
    const Tensor f32 = staging.view(DType::F32, t.shape);
    b.copy(f32, t);
    b.download(host.data(), f32);
  }
  return host;
}

inline double max_abs(const std::vector<float>& v) {
  double m = 0;
  for (float x : v) m = std::max(m, static_cast<double>(std::fabs(x)));
  return m;
}

// Checks |got − want| ≤ rel·|want| + abs elementwise; returns the max absolute error seen (for
// the report) and fails naming the worst element.
inline double expect_close(const std::vector<float>& got, const std::vector<float>& want,
                           double rel, double abs, const std::string& what) {
  EXPECT_EQ(got.size(), want.size()) << what;
  double worst_excess = -1, max_err = 0;
  size_t worst = 0;
  for (size_t i = 0; i < std::min(got.size(), want.size()); ++i) {
    const double err = std::fabs(static_cast<double>(got[i]) - want[i]);
    max_err = std::max(max_err, err);
    const double excess = err - (rel * std::fabs(want[i]) + abs);
    if (excess > worst_excess || std::isnan(err)) {
      worst_excess = std::isnan(err) ? INFINITY : excess;
      worst = i;
    }
  }
  EXPECT_LE(worst_excess, 0.0) << what << ": element " << worst << " got " << got[worst] << " want "
                               << want[worst] << " (rel " << rel << ", abs " << abs << ")";
  std::printf("[ max-err  ] %-48s %.3e\n", what.c_str(), max_err);
  return max_err;
}

class CudaOpsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string name = device_under_test();
    try {
      dev_ = make_backend(name);
    } catch (const Error& e) {
      GTEST_SKIP() << "device '" << name << "' unavailable in this build/machine: " << e.what();
    }
    cpu_ = make_backend("cpu");
  }
  std::unique_ptr<Backend> dev_, cpu_;
};

}  // namespace smol::test
