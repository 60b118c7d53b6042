// The cuda implementation (kernels/cuda/linalg.cu, run on cuda-emu over emu_cusolver.cpp, or
// on a GPU) against the cpu one, output by output, and the cuda path's promise of no host
// waits outside the device-checks debug mode (counted by the emulator).
//
// Tolerances: each backend is within the backward-stability bounds of linalg_backend_test.cpp
// of the exact factors (unique under the sign rules for these full-rank, well-separated
// inputs), so two backends differ by at most twice that bound: 2·κ·c(m, n)·u for QR
// (c = m·n + 32, κ the condition number) and 2·c(r, r)·u·s_max / gap for singular vectors.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "kernels/linalg_backend.h"
#include "linalg_reference.h"
#if SMOL_HAVE_EMU
#include "kernels/emu/emu_host_waits.h"
#endif

namespace smol {
namespace {

using linalg_test::Mat;

constexpr double kUnitRoundoff = 5.9604644775390625e-08;  // 2^-24
double backward_tolerance(int64_t m, int64_t n) {
  return static_cast<double>(m * n + 32) * kUnitRoundoff;
}

std::vector<float> as_floats(const std::vector<Mat>& mats) {
  std::vector<float> out;
  for (const Mat& m : mats)
    for (double x : m.v) out.push_back(static_cast<float>(x));
  return out;
}

// Runs `op` on one backend: uploads inputs, allocates outputs, returns the outputs' host copies.
struct Session {
  std::unique_ptr<Backend> backend;
  std::unique_ptr<LinalgBackend> linalg;
  std::vector<Buffer> buffers;
  explicit Session(const std::string& device) : backend(make_backend(device)) {
    linalg = make_linalg(*backend);
  }
  Tensor tensor(Shape shape, const std::vector<float>* host = nullptr) {
    buffers.push_back(backend->allocate(static_cast<size_t>(shape.numel()) * sizeof(float)));
    Tensor t = buffers.back().view(DType::F32, shape);
    if (host) backend->upload(t, host->data());
    return t;
  }
  std::vector<float> get(const Tensor& t) {
    std::vector<float> host(static_cast<size_t>(t.numel()));
    backend->download(host.data(), t);
    return host;
  }
};

void expect_close(const std::vector<float>& got, const std::vector<float>& want, double tol,
                  const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  double worst = 0;
  for (size_t i = 0; i < got.size(); ++i)
    worst = std::max(worst, std::fabs(static_cast<double>(got[i]) - want[i]));
  EXPECT_LE(worst, tol) << what;
}

std::vector<std::string> gpu_devices() {
  std::vector<std::string> out;
  for (const std::string& d : available_devices())
    if (d != "auto" && d != "cpu") out.push_back(d);
  return out;
}

class CrossBackend : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    try {
      make_backend(GetParam());
    } catch (const Error& e) {
      GTEST_SKIP() << "device '" << GetParam() << "' is not available here: " << e.what();
    }
  }
};

TEST_P(CrossBackend, QrThinMatchesCpu) {
  const int64_t batch = 3, m = 40, n = 8;
  std::vector<Mat> mats;
  for (int b = 0; b < batch; ++b) mats.push_back(linalg_test::gaussian(m, n, 500 + b));
  const std::vector<float> host = as_floats(mats);
  std::vector<std::vector<float>> q, r;
  for (const std::string& device : {std::string("cpu"), GetParam()}) {
    Session run(device);
    const Tensor a = run.tensor({batch, m, n}, &host);
    Tensor qt = run.tensor({batch, m, n}), rt = run.tensor({batch, n, n});
    run.linalg->qr_thin(qt, rt, a);
    q.push_back(run.get(qt));
    r.push_back(run.get(rt));
  }
  // κ < 3 for a Gaussian 40×8 (Marchenko–Pastur), 10 taken; r's entries are up to ‖a‖_F ≈ 18.
  const double tol = 2 * 10 * backward_tolerance(m, n);
  expect_close(q[1], q[0], tol, GetParam() + " q");
  expect_close(r[1], r[0], tol * 20, GetParam() + " r");
}

TEST_P(CrossBackend, SvdSmallMatchesCpu) {
  for (int64_t rank : {16, 48}) {  // gesvdjBatched and per-matrix gesvdj on cuda
    const int64_t batch = 2;
    // Singular values 1 … 0.1 geometric: neighbours differ by >= 1 − 10^(−1/(r−1)) of the
    // larger, so s_max / gap <= 1 / (0.1·(1 − 10^(−1/47))) < 210 for r <= 48.
    std::vector<Mat> mats;
    for (int b = 0; b < batch; ++b)
      mats.push_back(linalg_test::with_spectrum(
          rank, rank, linalg_test::geometric_spectrum(rank, 10), 600 + 10 * rank + b));
    const std::vector<float> host = as_floats(mats);
    std::vector<std::vector<float>> u, s, vt;
    for (const std::string& device : {std::string("cpu"), GetParam()}) {
      Session run(device);
      const Tensor a = run.tensor({batch, rank, rank}, &host);
      Tensor ut = run.tensor({batch, rank, rank}), st = run.tensor({batch, rank}),
             vtt = run.tensor({batch, rank, rank});
      run.linalg->svd_small(ut, st, vtt, a);
      u.push_back(run.get(ut));
      s.push_back(run.get(st));
      vt.push_back(run.get(vtt));
    }
    const std::string what = GetParam() + " r=" + std::to_string(rank);
    const double tol = 2 * backward_tolerance(rank, rank);
    expect_close(s[1], s[0], tol, what + " s");
    expect_close(u[1], u[0], tol * 210, what + " u");
    expect_close(vt[1], vt[0], tol * 210, what + " vt");
  }
}

TEST_P(CrossBackend, SvdTruncatedAndTriangularSolveMatchCpu) {
  const int64_t m = 64, n = 24, k = 6;
  // Spectrum 1 … 0.01 over 24 values: the gap after the 6th is 0.18·s_6 > 0.05 s_max.
  const std::vector<float> host =
      as_floats({linalg_test::with_spectrum(m, n, linalg_test::geometric_spectrum(n, 100), 77)});
  Mat tri = linalg_test::gaussian(k, k, 78);
  for (int64_t i = 0; i < k; ++i) tri(i, i) = 2.0 + static_cast<double>(i);
  const std::vector<float> t_host = as_floats({tri}),
                           b_host = as_floats({linalg_test::gaussian(k, 5, 79)});
  std::vector<std::vector<float>> u, s, vt, x;
  for (const std::string& device : {std::string("cpu"), GetParam()}) {
    Session run(device);
    const Tensor a = run.tensor({m, n}, &host);
    Tensor ut = run.tensor({m, k}), st = run.tensor({k}), vtt = run.tensor({k, n});
    run.linalg->svd_truncated(ut, st, vtt, a);
    u.push_back(run.get(ut));
    s.push_back(run.get(st));
    vt.push_back(run.get(vtt));
    const Tensor t = run.tensor({k, k}, &t_host);
    Tensor b = run.tensor({k, 5}, &b_host);
    run.linalg->triangular_solve(b, t, /*upper=*/false, /*transpose=*/true);
    x.push_back(run.get(b));
  }
  const double tol = 2 * backward_tolerance(m, n);
  expect_close(s[1], s[0], tol, GetParam() + " s");
  expect_close(u[1], u[0], tol * 20, GetParam() + " u");
  expect_close(vt[1], vt[0], tol * 20, GetParam() + " vt");
  // Diagonal >= 2, off-diagonal Gaussian: κ(t) stays small; substitution order differs from
  // strsm's only in rounding (k·u per entry, times ‖x‖ ≈ 1).
  expect_close(x[1], x[0], 2 * backward_tolerance(k, k) * 10, GetParam() + " triangular solve");
}

INSTANTIATE_TEST_SUITE_P(Devices, CrossBackend, ::testing::ValuesIn(gpu_devices()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param;
                           for (char& c : name)
                             if (c == '-' || c == ':') c = '_';
                           return name;
                         });

#if SMOL_HAVE_EMU
// Without device checks the cuda path never waits for the host once its workspaces exist: a
// second round of every op at the same shapes adds no host wait. With them on, each op's
// dev_info check is one.
TEST(CudaEmuLinalg, NoHostWaitsOutsideDeviceChecks) {
  Session run("cuda-emu");
  const auto input = [&](Shape shape, uint64_t seed) {
    const std::vector<float> host =
        as_floats({linalg_test::gaussian(shape.rows(), shape.cols(), seed)});
    return run.tensor(shape, &host);
  };
  const Tensor a = input({3, 48, 8}, 91), core8 = input({3, 8, 8}, 92),
               core40 = input({2, 40, 40}, 93), weight = input({40, 48}, 94);
  Tensor q = run.tensor({3, 48, 8}), r = run.tensor({3, 8, 8});
  Tensor u8 = run.tensor({3, 8, 8}), s8 = run.tensor({3, 8}), v8 = run.tensor({3, 8, 8});
  Tensor u40 = run.tensor({2, 40, 40}), s40 = run.tensor({2, 40}), v40 = run.tensor({2, 40, 40});
  Tensor ut = run.tensor({40, 5}), st = run.tensor({5}), vtt = run.tensor({5, 48});
  Tensor b = input({3, 8, 4}, 95);
  const auto every_op = [&] {
    run.linalg->qr_thin(q, r, a);
    run.linalg->svd_small(u8, s8, v8, core8);
    run.linalg->svd_small(u40, s40, v40, core40);
    run.linalg->svd_truncated(ut, st, vtt, weight);
    run.linalg->triangular_solve(b, r, /*upper=*/true, /*transpose=*/false);  // r_ii > 0
  };
  run.backend->set_device_checks(false);
  every_op();  // grows the workspaces (host waits allowed once)
  const uint64_t before = emu::host_wait_counts().total();
  every_op();
  EXPECT_EQ(emu::host_wait_counts().total(), before) << "a linalg op waited for the host";
  run.backend->set_device_checks(true);
  const uint64_t checked = emu::host_wait_counts().total();
  every_op();
  // qr_thin checks geqrf and orgqr, each svd its gesvdj, the solve its diagonal: 6 downloads.
  EXPECT_EQ(emu::host_wait_counts().total() - checked, 6u);
}
#endif

}  // namespace
}  // namespace smol
