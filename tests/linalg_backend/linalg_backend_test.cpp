// LinalgBackend on every backend of this build (cpu; cuda-emu and cuda when built and present)
// against double-precision LAPACKE references (linalg_reference.h): orthogonality,
// reconstruction, descending singular values, the sign rules, rank-deficient and
// ill-conditioned inputs, batched = one at a time, triangular solves, and bad inputs → Error.
//
// Tolerances. u = 2⁻²⁴ is the fp32 unit roundoff. Householder QR and the SVD algorithms used
// (LAPACK / cuSOLVER) are backward stable: the computed factors are the exact ones of a + Δa
// with ‖Δa‖ ≤ c(m, n)·u·‖a‖ and factors orthonormal to c(m, n)·u (Higham, Accuracy and
// Stability, Thm 19.4; Demmel & Kahan for the SVD). The worst-case c is a low-degree polynomial;
// we take c = m·n + 32 (backward_tolerance below: pessimistic for these sizes, where observed
// errors are ~√n·u, and the constant covers the dozen roundings of even a 2×2 rotation), so
//  - orthogonality max|QᵀQ − I| and reconstruction ‖Q·R − a‖_F / ‖a‖_F ≤ c·u;
//  - singular values (Weyl: |s_j − ŝ_j| ≤ ‖Δa‖₂) ≤ c·u·s_max, whatever the conditioning;
//  - factors themselves move by ‖Δa‖ / (what separates them): for QR the condition number
//    κ(a) = s_max / s_min multiplies the bound; for singular vector j, s_max / gap_j with gap_j
//    the distance to the nearest other singular value (Wedin).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "kernels/linalg_backend.h"
#include "linalg_reference.h"

namespace smol {
namespace {

using linalg_test::Mat;

constexpr double kUnitRoundoff = 5.9604644775390625e-08;  // 2^-24

// c(m, n)·u, the backward-error bound of the header comment.
double backward_tolerance(int64_t m, int64_t n) {
  return static_cast<double>(m * n + 32) * kUnitRoundoff;
}

// A backend and its linear algebra, with host ↔ device helpers.
struct Device {
  std::unique_ptr<Backend> backend;
  std::unique_ptr<LinalgBackend> linalg;
  std::vector<Buffer> buffers;

  Tensor tensor(Shape shape, DType dtype = DType::F32) {
    buffers.push_back(backend->allocate(static_cast<size_t>(shape.numel()) * dtype_size(dtype)));
    return buffers.back().view(dtype, shape);
  }
  Tensor upload(const std::vector<float>& host, Shape shape) {
    Tensor t = tensor(shape);
    backend->upload(t, host.data());
    return t;
  }
  std::vector<float> download(const Tensor& t) {
    std::vector<float> host(static_cast<size_t>(t.numel()));
    backend->download(host.data(), t);
    return host;
  }
  // Matrix b of a [B, rows, cols] download, widened to double.
  static Mat matrix(const std::vector<float>& host, int64_t b, int64_t rows, int64_t cols) {
    return linalg_test::from_float(host.data() + b * rows * cols, rows, cols);
  }
};

std::vector<std::string> devices() {
  std::vector<std::string> out;
  for (const std::string& d : available_devices())
    if (d != "auto") out.push_back(d);
  return out;
}

class Linalg : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    try {
      dev.backend = make_backend(GetParam());
    } catch (const Error& e) {
      GTEST_SKIP() << "device '" << GetParam() << "' is not available here: " << e.what();
    }
    dev.linalg = make_linalg(*dev.backend);
  }
  Device dev;
};

// Concatenates the fp32 roundings of `mats` (each [rows, cols]) into one batch.
std::vector<float> batch_of(const std::vector<Mat>& mats) {
  std::vector<float> out;
  for (const Mat& m : mats)
    for (double x : m.v) out.push_back(static_cast<float>(x));
  return out;
}
// The fp32 input as the backend sees it, widened back to double (the references factorise
// exactly what the backend factorised).
Mat rounded(const Mat& m) {
  Mat r = m;
  for (double& x : r.v) x = static_cast<float>(x);
  return r;
}

// Runs qr_thin on `mats` (one batch) and checks every matrix: q orthonormal, r upper triangular
// with r_ii >= 0, q·r = a, and q, r against the double reference to cond·c(m, n)·u (skipped when
// cond is 0: a rank-deficient input, whose trailing q columns are not unique).
void check_qr(Device& dev, const std::vector<Mat>& mats, double cond, const std::string& what) {
  const int64_t batch = static_cast<int64_t>(mats.size()), m = mats[0].rows, n = mats[0].cols;
  const Tensor a = dev.upload(batch_of(mats), {batch, m, n});
  Tensor q = dev.tensor({batch, m, n}), r = dev.tensor({batch, n, n});
  dev.linalg->qr_thin(q, r, a);
  const std::vector<float> qh = dev.download(q), rh = dev.download(r);
  const double tol = backward_tolerance(m, n);
  for (int64_t b = 0; b < batch; ++b) {
    const std::string where = what + " matrix " + std::to_string(b);
    const Mat ab = rounded(mats[b]), qb = Device::matrix(qh, b, m, n),
              rb = Device::matrix(rh, b, n, n);
    EXPECT_LE(linalg_test::orthogonality_error(qb), tol) << where;
    for (int64_t i = 0; i < n; ++i) {
      EXPECT_GE(rb(i, i), 0.0) << where << " r_" << i << i;
      for (int64_t j = 0; j < i; ++j) EXPECT_EQ(rb(i, j), 0.0) << where << " r below diagonal";
    }
    const Mat qr = linalg_test::product(qb, rb);
    Mat diff = qr;
    for (size_t i = 0; i < diff.v.size(); ++i) diff.v[i] -= ab.v[i];
    EXPECT_LE(linalg_test::frobenius(diff), tol * linalg_test::frobenius(ab)) << where;
    if (cond > 0) {
      const linalg_test::QrRef ref = linalg_test::reference_qr(ab);
      EXPECT_LE(linalg_test::max_abs_diff(qb, ref.q), cond * tol) << where << " q vs reference";
      EXPECT_LE(linalg_test::max_abs_diff(rb, ref.r), cond * tol * linalg_test::frobenius(ab))
          << where << " r vs reference";
    }
  }
}

TEST_P(Linalg, QrThinRandomBatch) {
  std::vector<Mat> mats;
  for (int b = 0; b < 3; ++b) mats.push_back(linalg_test::gaussian(40, 8, 100 + b));
  // A Gaussian 40×8 matrix has κ below ~3 (Marchenko–Pastur: (√40+√8)/(√40−√8) ≈ 2.6); 10 is safe.
  check_qr(dev, mats, 10.0, "gaussian 40x8");
}

TEST_P(Linalg, QrThinSquareAndSingleColumn) {
  check_qr(dev, {linalg_test::with_spectrum(16, 16, linalg_test::geometric_spectrum(16, 10), 7)},
           10.0, "square 16x16");
  check_qr(dev, {linalg_test::gaussian(9, 1, 8)}, 1.0, "single column");
}

TEST_P(Linalg, QrThinIllConditioned) {
  // κ = 1e4: orthogonality and reconstruction stay at u (backward stability); q, r vs the
  // reference lose up to κ.
  check_qr(dev,
           {linalg_test::with_spectrum(48, 12, linalg_test::geometric_spectrum(12, 1e4), 11),
            linalg_test::with_spectrum(48, 12, linalg_test::geometric_spectrum(12, 1e4), 12)},
           1e4, "kappa 1e4");
}

TEST_P(Linalg, QrThinRankDeficient) {
  // Rank 3 of 8 columns (and one exactly zero column): q stays orthonormal, q·r = a, r_ii >= 0.
  std::vector<double> sigma{3.0, 2.0, 1.0};
  Mat a = linalg_test::with_spectrum(30, 8, sigma, 21);
  for (int64_t i = 0; i < a.rows; ++i) a(i, 5) = 0.0;
  check_qr(dev, {a}, 0.0, "rank 3");
}

TEST_P(Linalg, QrThinInPlaceAndBatchedEqualsSingle) {
  const int64_t m = 24, n = 6;
  std::vector<Mat> mats{linalg_test::gaussian(m, n, 31), linalg_test::gaussian(m, n, 32)};
  const std::vector<float> host = batch_of(mats);
  Tensor a = dev.upload(host, {2, m, n});
  Tensor r = dev.tensor({2, n, n});
  dev.linalg->qr_thin(a, r, a);  // q aliases a
  const std::vector<float> q_batched = dev.download(a), r_batched = dev.download(r);
  for (int64_t b = 0; b < 2; ++b) {
    const Tensor one = dev.upload(batch_of({mats[b]}), {m, n});
    Tensor q1 = dev.tensor({m, n}), r1 = dev.tensor({n, n});
    dev.linalg->qr_thin(q1, r1, one);
    const std::vector<float> qh = dev.download(q1), rh = dev.download(r1);
    // Both agree with the reference to κ·c(m, n)·u (check_qr; κ < 3 for a Gaussian 24×6, 10
    // taken), so they differ by at most twice that; r's entries scale with ‖a‖_F.
    const double tol = 2 * 10 * backward_tolerance(m, n);
    const double r_tol = tol * linalg_test::frobenius(mats[b]);
    for (int64_t i = 0; i < m * n; ++i)
      ASSERT_NEAR(qh[i], q_batched[b * m * n + i], tol) << "q matrix " << b << " entry " << i;
    for (int64_t i = 0; i < n * n; ++i)
      ASSERT_NEAR(rh[i], r_batched[b * n * n + i], r_tol) << "r matrix " << b << " entry " << i;
  }
}

// Runs svd_small on `mats` and checks: s descending >= 0 and equal to the reference to
// c(r, r)·u·s_max; u, v orthonormal; u·diag(s)·vᵀ = a; the sign rule; and singular vectors with a
// relative gap above 1e-2 against the reference to c(r, r)·u·s_max / gap.
void check_svd_small(Device& dev, const std::vector<Mat>& mats, const std::string& what) {
  const int64_t batch = static_cast<int64_t>(mats.size()), r = mats[0].rows;
  const Tensor a = dev.upload(batch_of(mats), {batch, r, r});
  Tensor u = dev.tensor({batch, r, r}), s = dev.tensor({batch, r}), vt = dev.tensor({batch, r, r});
  dev.linalg->svd_small(u, s, vt, a);
  const std::vector<float> uh = dev.download(u), sh = dev.download(s), vh = dev.download(vt);
  const double tol = backward_tolerance(r, r);
  for (int64_t b = 0; b < batch; ++b) {
    const std::string where = what + " matrix " + std::to_string(b);
    const Mat ab = rounded(mats[b]), ub = Device::matrix(uh, b, r, r),
              vtb = Device::matrix(vh, b, r, r);
    const linalg_test::SvdRef ref = linalg_test::reference_svd(ab);
    const double smax = std::max(ref.s[0], 1e-30);
    for (int64_t j = 0; j < r; ++j) {
      const double sj = sh[b * r + j];
      EXPECT_GE(sj, 0.0) << where;
      if (j > 0) {
        EXPECT_LE(sj, sh[b * r + j - 1]) << where << " s not descending at " << j;
      }
      EXPECT_NEAR(sj, ref.s[j], tol * smax) << where << " s_" << j;
      // Sign rule: the largest-|.| entry of column j of u is positive.
      int64_t best = 0;
      for (int64_t i = 1; i < r; ++i)
        if (std::fabs(ub(i, j)) > std::fabs(ub(best, j))) best = i;
      EXPECT_GT(ub(best, j), 0.0) << where << " sign of column " << j;
    }
    EXPECT_LE(linalg_test::orthogonality_error(ub), tol) << where << " u";
    EXPECT_LE(linalg_test::orthogonality_error(linalg_test::transpose(vtb)), tol) << where << " v";
    Mat us = ub;
    for (int64_t i = 0; i < r; ++i)
      for (int64_t j = 0; j < r; ++j) us(i, j) *= sh[b * r + j];
    Mat diff = linalg_test::product(us, vtb);
    for (size_t i = 0; i < diff.v.size(); ++i) diff.v[i] -= ab.v[i];
    EXPECT_LE(linalg_test::frobenius(diff), tol * std::max(linalg_test::frobenius(ab), 1e-30))
        << where << " reconstruction";
    for (int64_t j = 0; j < r; ++j) {
      double gap = INFINITY;
      if (j > 0) gap = std::min(gap, ref.s[j - 1] - ref.s[j]);
      if (j + 1 < r) gap = std::min(gap, ref.s[j] - ref.s[j + 1]);
      if (gap < 1e-2 * smax) continue;  // nearly degenerate: the vector is ill-determined
      double du = 0, dv = 0;
      for (int64_t i = 0; i < r; ++i) {
        du = std::max(du, std::fabs(ub(i, j) - ref.u(i, j)));
        dv = std::max(dv, std::fabs(vtb(j, i) - ref.vt(j, i)));
      }
      EXPECT_LE(du, tol * smax / gap) << where << " u column " << j << " vs reference";
      EXPECT_LE(dv, tol * smax / gap) << where << " vt row " << j << " vs reference";
    }
  }
}

TEST_P(Linalg, SvdSmallRandomBatches) {
  for (int64_t r : {1, 2, 8, 16, 32, 33, 64}) {
    std::vector<Mat> mats;
    for (int b = 0; b < 3; ++b) mats.push_back(linalg_test::gaussian(r, r, 200 + 7 * r + b));
    check_svd_small(dev, mats, "gaussian r=" + std::to_string(r));
  }
}

TEST_P(Linalg, SvdSmallIllConditioned) {
  // κ = 1e6: s stays within c(r, r)·u·s_max of the reference in absolute terms (Weyl), so the
  // smallest values are known only to that absolute accuracy — which is what is checked.
  for (int64_t r : {8, 40})
    check_svd_small(
        dev, {linalg_test::with_spectrum(r, r, linalg_test::geometric_spectrum(r, 1e6), 300 + r)},
        "kappa 1e6 r=" + std::to_string(r));
}

TEST_P(Linalg, SvdSmallRankDeficientAndZero) {
  std::vector<double> sigma{4.0, 3.0, 2.0, 1.0, 0.5};
  check_svd_small(dev, {linalg_test::with_spectrum(16, 16, sigma, 41)}, "rank 5 of 16");
  check_svd_small(dev, {Mat(8, 8)}, "zero 8x8");
}

TEST_P(Linalg, SvdSmallBatchedEqualsSingle) {
  const int64_t r = 12;
  std::vector<Mat> mats{linalg_test::gaussian(r, r, 51), linalg_test::gaussian(r, r, 52)};
  const Tensor a = dev.upload(batch_of(mats), {2, r, r});
  Tensor u = dev.tensor({2, r, r}), s = dev.tensor({2, r}), vt = dev.tensor({2, r, r});
  dev.linalg->svd_small(u, s, vt, a);
  const std::vector<float> ub = dev.download(u), sb = dev.download(s);
  for (int64_t b = 0; b < 2; ++b) {
    const Tensor one = dev.upload(batch_of({mats[b]}), {r, r});
    Tensor u1 = dev.tensor({r, r}), s1 = dev.tensor({r}), vt1 = dev.tensor({r, r});
    dev.linalg->svd_small(u1, s1, vt1, one);
    const std::vector<float> uh = dev.download(u1), sh = dev.download(s1);
    // Both agree with the reference to c(r, r)·u·s_max / gap (check_svd_small), so they differ
    // by at most twice that; for these seeds s_max / gap < 100 (a Gaussian 12×12 has no
    // nearly repeated singular values; SvdSmallRandomBatches checks the gaps it relies on).
    const double tol = 2 * 100 * backward_tolerance(r, r);
    for (int64_t j = 0; j < r; ++j) ASSERT_NEAR(sh[j], sb[b * r + j], tol) << "s " << b;
    for (int64_t i = 0; i < r * r; ++i) ASSERT_NEAR(uh[i], ub[b * r * r + i], tol) << "u " << b;
  }
}

// svd_truncated of a [m, n] with k values: s = the reference's top k; u, v orthonormal; sign
// rule; u·diag(s)·vt = the reference's best rank-k approximation to c(m, n)·u·s_max·κ_k, where
// κ_k = s_max / (s_k − s_{k+1}) (Wedin: the rank-k subspaces move by ‖Δa‖ / that gap).
void check_svd_truncated(Device& dev, const Mat& a_in, int64_t k, const std::string& what) {
  const int64_t m = a_in.rows, n = a_in.cols;
  const Mat ab = rounded(a_in);
  const Tensor a = dev.upload(batch_of({a_in}), {m, n});
  Tensor u = dev.tensor({m, k}), s = dev.tensor({k}), vt = dev.tensor({k, n});
  dev.linalg->svd_truncated(u, s, vt, a);
  const Mat ub = linalg_test::from_float(dev.download(u).data(), m, k),
            vtb = linalg_test::from_float(dev.download(vt).data(), k, n);
  const std::vector<float> sh = dev.download(s);
  const linalg_test::SvdRef ref = linalg_test::reference_svd(ab);
  const double tol = backward_tolerance(m, n), smax = ref.s[0];
  for (int64_t j = 0; j < k; ++j) {
    EXPECT_NEAR(sh[j], ref.s[j], tol * smax) << what << " s_" << j;
    if (j > 0) {
      EXPECT_LE(sh[j], sh[j - 1]) << what << " s not descending";
    }
    int64_t best = 0;
    for (int64_t i = 1; i < m; ++i)
      if (std::fabs(ub(i, j)) > std::fabs(ub(best, j))) best = i;
    EXPECT_GT(ub(best, j), 0.0) << what << " sign of column " << j;
  }
  EXPECT_LE(linalg_test::orthogonality_error(ub), tol) << what << " u";
  EXPECT_LE(linalg_test::orthogonality_error(linalg_test::transpose(vtb)), tol) << what << " v";
  Mat approx(m, n), want(m, n);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j)
      for (int64_t l = 0; l < k; ++l) {
        approx(i, j) += ub(i, l) * sh[l] * vtb(l, j);
        want(i, j) += ref.u(i, l) * ref.s[l] * ref.vt(l, j);
      }
  const double gap = k < static_cast<int64_t>(ref.s.size()) ? ref.s[k - 1] - ref.s[k] : smax;
  EXPECT_LE(linalg_test::max_abs_diff(approx, want), tol * smax * smax / gap)
      << what << " rank-k approximation";
}

TEST_P(Linalg, SvdTruncatedTallAndWide) {
  std::vector<double> sigma = linalg_test::geometric_spectrum(30, 100);
  check_svd_truncated(dev, linalg_test::with_spectrum(96, 40, sigma, 61), 8, "tall 96x40 k=8");
  check_svd_truncated(dev, linalg_test::with_spectrum(30, 70, sigma, 62), 5, "wide 30x70 k=5");
  check_svd_truncated(dev, linalg_test::gaussian(50, 20, 63), 20, "gaussian 50x20 k=min");
}

// b := op(t)⁻¹ b: checks the residual ‖op(t)·x − b‖ ≤ m·u·‖t‖·‖x‖ (triangular solves are
// backward stable componentwise, Higham Thm 8.5) on every matrix of a batch of 3.
TEST_P(Linalg, TriangularSolve) {
  const int64_t m = 20, n = 5, batch = 3;
  for (bool upper : {true, false})
    for (bool transpose : {false, true}) {
      std::vector<Mat> ts, bs;
      for (int64_t b = 0; b < batch; ++b) {
        Mat t = linalg_test::gaussian(m, m, 70 + b);
        for (int64_t i = 0; i < m; ++i) {
          for (int64_t j = 0; j < m; ++j) t(i, j) *= 0.2;
          t(i, i) = 1.0 + 0.05 * static_cast<double>(i);  // well away from singular
        }
        ts.push_back(t);  // the other triangle is garbage: the op must not read it
        bs.push_back(linalg_test::gaussian(m, n, 80 + b));
      }
      const Tensor t = dev.upload(batch_of(ts), {batch, m, m});
      Tensor x = dev.upload(batch_of(bs), {batch, m, n});
      dev.linalg->triangular_solve(x, t, upper, transpose);
      const std::vector<float> xh = dev.download(x);
      for (int64_t b = 0; b < batch; ++b) {
        Mat tri(m, m);
        for (int64_t i = 0; i < m; ++i)
          for (int64_t j = 0; j < m; ++j)
            if (upper ? j >= i : j <= i) tri(i, j) = static_cast<float>(ts[b](i, j));
        if (transpose) tri = linalg_test::transpose(tri);
        const Mat xb = Device::matrix(xh, b, m, n), got = linalg_test::product(tri, xb);
        const double tol = static_cast<double>(m) * kUnitRoundoff * 10 *
                           linalg_test::frobenius(tri) * linalg_test::frobenius(xb);
        EXPECT_LE(linalg_test::max_abs_diff(got, rounded(bs[b])), tol)
            << "upper " << upper << " transpose " << transpose << " matrix " << b;
      }
    }
}

TEST_P(Linalg, TriangularSolveSingularIsAnErrorNamingTheMatrix) {
  dev.backend->set_device_checks(true);
  std::vector<Mat> ts{Mat(4, 4), Mat(4, 4)};
  for (int b = 0; b < 2; ++b)
    for (int i = 0; i < 4; ++i) ts[b](i, i) = 1.0;
  ts[1](2, 2) = 0.0;
  const Tensor t = dev.upload(batch_of(ts), {2, 4, 4});
  Tensor x = dev.upload(std::vector<float>(16, 1.0f), {2, 4, 2});
  try {
    dev.linalg->triangular_solve(x, t, true, false);
    dev.backend->synchronize();
    FAIL() << "a singular t was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("t[1]"), std::string::npos) << e.what();
  }
}

// Every malformed call is one Error naming the op.
TEST_P(Linalg, BadShapesAreErrors) {
  LinalgBackend& la = *dev.linalg;
  const auto expect_error = [](auto&& call, const char* op) {
    try {
      call();
      ADD_FAILURE() << op << ": no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(op), std::string::npos) << e.what();
    }
  };
  Tensor wide = dev.tensor({4, 6}), q46 = dev.tensor({4, 6}), r66 = dev.tensor({6, 6});
  expect_error([&] { la.qr_thin(q46, r66, wide); }, "qr_thin");  // m < n
  Tensor a86 = dev.tensor({8, 6}), q86 = dev.tensor({8, 6}), r55 = dev.tensor({5, 5});
  expect_error([&] { la.qr_thin(q86, r55, a86); }, "qr_thin");  // r wrong shape
  Tensor r66b = dev.tensor({2, 6, 6});
  expect_error([&] { la.qr_thin(q86, r66b, a86); }, "qr_thin");  // batch mismatch
  expect_error([&] { la.qr_thin(q86, q86, a86); }, "qr_thin");   // r overlaps q
  Tensor i86 = dev.tensor({8, 6}, DType::I32);
  expect_error([&] { la.qr_thin(q86, r66, i86); }, "qr_thin");  // dtype

  Tensor a65 = dev.tensor({65, 65}), u65 = dev.tensor({65, 65}), s65 = dev.tensor({65}),
         v65 = dev.tensor({65, 65});
  expect_error([&] { la.svd_small(u65, s65, v65, a65); }, "svd_small");  // r > 64
  Tensor a43 = dev.tensor({4, 3}), u4 = dev.tensor({4, 4}), s4 = dev.tensor({4}),
         v4 = dev.tensor({4, 4}), s3 = dev.tensor({3});
  expect_error([&] { la.svd_small(u4, s4, v4, a43); }, "svd_small");  // not square
  Tensor a44 = dev.tensor({4, 4});
  expect_error([&] { la.svd_small(u4, s3, v4, a44); }, "svd_small");  // s wrong length
  expect_error([&] { la.svd_small(u4, s4, u4, a44); }, "svd_small");  // u and vt alias

  Tensor a97 = dev.tensor({9, 7}), u98 = dev.tensor({9, 8}), s8 = dev.tensor({8}),
         v87 = dev.tensor({8, 7});
  expect_error([&] { la.svd_truncated(u98, s8, v87, a97); }, "svd_truncated");  // k > min
  Tensor u93 = dev.tensor({9, 3}), v37 = dev.tensor({3, 7}), s3b = dev.tensor({3}),
         v36 = dev.tensor({3, 6});
  expect_error([&] { la.svd_truncated(u93, s3b, v36, a97); }, "svd_truncated");  // vt shape
  Tensor batch97 = dev.tensor({2, 9, 7});
  expect_error([&] { la.svd_truncated(u93, s3b, v37, batch97); }, "svd_truncated");  // batch

  Tensor b45 = dev.tensor({4, 5}), t55 = dev.tensor({5, 5});
  expect_error([&] { la.triangular_solve(b45, t55, true, false); }, "triangular_solve");
}

INSTANTIATE_TEST_SUITE_P(Devices, Linalg, ::testing::ValuesIn(devices()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param;
                           for (char& c : name)
                             if (c == '-' || c == ':') c = '_';
                           return name;
                         });

}  // namespace
}  // namespace smol
