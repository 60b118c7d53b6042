// Double-precision references for linalg_backend_tests: LAPACKE dgeqrf/dorgqr and dgesdd on
// the fp32 inputs widened to double, with the sign rules of kernels/linalg_backend.h applied,
// plus the matrix helpers the checks need (products, norms, test matrices of chosen spectrum).
#pragma once

#include <lapacke.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace smol::linalg_test {

// A dense row-major double matrix.
struct Mat {
  int64_t rows = 0, cols = 0;
  std::vector<double> v;
  Mat() = default;
  Mat(int64_t r, int64_t c) : rows(r), cols(c), v(static_cast<size_t>(r * c), 0.0) {}
  double& operator()(int64_t i, int64_t j) { return v[i * cols + j]; }
  double operator()(int64_t i, int64_t j) const { return v[i * cols + j]; }
};

inline Mat from_float(const float* p, int64_t rows, int64_t cols) {
  Mat m(rows, cols);
  for (int64_t i = 0; i < rows * cols; ++i) m.v[i] = p[i];
  return m;
}
inline std::vector<float> to_float(const Mat& m) {
  return std::vector<float>(m.v.begin(), m.v.end());
}

inline Mat transpose(const Mat& a) {
  Mat t(a.cols, a.rows);
  for (int64_t i = 0; i < a.rows; ++i)
    for (int64_t j = 0; j < a.cols; ++j) t(j, i) = a(i, j);
  return t;
}
inline Mat product(const Mat& a, const Mat& b) {
  Mat c(a.rows, b.cols);
  for (int64_t i = 0; i < a.rows; ++i)
    for (int64_t k = 0; k < a.cols; ++k)
      for (int64_t j = 0; j < b.cols; ++j) c(i, j) += a(i, k) * b(k, j);
  return c;
}
inline double max_abs_diff(const Mat& a, const Mat& b) {
  double d = 0;
  for (size_t i = 0; i < a.v.size(); ++i) d = std::max(d, std::fabs(a.v[i] - b.v[i]));
  return d;
}
inline double frobenius(const Mat& a) {
  double s = 0;
  for (double x : a.v) s += x * x;
  return std::sqrt(s);
}
// max |aᵀa − I|: how far the columns of a are from orthonormal.
inline double orthogonality_error(const Mat& a) {
  const Mat g = product(transpose(a), a);
  double d = 0;
  for (int64_t i = 0; i < g.rows; ++i)
    for (int64_t j = 0; j < g.cols; ++j) d = std::max(d, std::fabs(g(i, j) - (i == j ? 1.0 : 0.0)));
  return d;
}

// Gaussian entries, seeded.
inline Mat gaussian(int64_t rows, int64_t cols, uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<double> normal;
  Mat m(rows, cols);
  for (double& x : m.v) x = normal(gen);
  return m;
}
// Q of a Gaussian [rows, cols] matrix (rows >= cols): orthonormal columns.
inline Mat orthonormal(int64_t rows, int64_t cols, uint64_t seed) {
  Mat q = gaussian(rows, cols, seed);
  std::vector<double> tau(static_cast<size_t>(cols));
  LAPACKE_dgeqrf(LAPACK_ROW_MAJOR, rows, cols, q.v.data(), cols, tau.data());
  LAPACKE_dorgqr(LAPACK_ROW_MAJOR, rows, cols, cols, q.v.data(), cols, tau.data());
  return q;
}
// U · diag(sigma) · Vᵀ with random orthonormal U [rows, k], V [cols, k], k = sigma.size():
// a matrix with exactly these singular values (rank = the nonzero ones).
inline Mat with_spectrum(int64_t rows, int64_t cols, const std::vector<double>& sigma,
                         uint64_t seed) {
  const int64_t k = static_cast<int64_t>(sigma.size());
  Mat u = orthonormal(rows, k, seed), v = orthonormal(cols, k, seed + 1);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < k; ++j) u(i, j) *= sigma[j];
  return product(u, transpose(v));
}
// sigma_j = cond^(−j/(k−1)), j < k: singular values from 1 down to 1/cond.
inline std::vector<double> geometric_spectrum(int64_t k, double cond) {
  std::vector<double> s(static_cast<size_t>(k));
  for (int64_t j = 0; j < k; ++j)
    s[j] = k == 1 ? 1.0 : std::pow(cond, -static_cast<double>(j) / static_cast<double>(k - 1));
  return s;
}

// Thin QR in double with r_ii >= 0.
struct QrRef {
  Mat q, r;
};
inline QrRef reference_qr(const Mat& a) {
  const int64_t m = a.rows, n = a.cols;
  QrRef out{a, Mat(n, n)};
  std::vector<double> tau(static_cast<size_t>(n));
  LAPACKE_dgeqrf(LAPACK_ROW_MAJOR, m, n, out.q.v.data(), n, tau.data());
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = i; j < n; ++j) out.r(i, j) = out.q(i, j);
  LAPACKE_dorgqr(LAPACK_ROW_MAJOR, m, n, n, out.q.v.data(), n, tau.data());
  for (int64_t i = 0; i < n; ++i) {
    if (out.r(i, i) >= 0) continue;
    for (int64_t j = 0; j < n; ++j) out.r(i, j) = -out.r(i, j);
    for (int64_t row = 0; row < m; ++row) out.q(row, i) = -out.q(row, i);
  }
  return out;
}

// Thin SVD in double, s descending, the largest-|.| entry of each u column positive.
struct SvdRef {
  Mat u;  // [m, p]
  std::vector<double> s;
  Mat vt;  // [p, n]
};
inline SvdRef reference_svd(const Mat& a) {
  const int64_t m = a.rows, n = a.cols, p = std::min(m, n);
  SvdRef out{Mat(m, p), std::vector<double>(static_cast<size_t>(p)), Mat(p, n)};
  Mat work = a;
  LAPACKE_dgesdd(LAPACK_ROW_MAJOR, 'S', m, n, work.v.data(), n, out.s.data(), out.u.v.data(), p,
                 out.vt.v.data(), n);
  for (int64_t j = 0; j < p; ++j) {
    int64_t best = 0;
    for (int64_t row = 1; row < m; ++row)
      if (std::fabs(out.u(row, j)) > std::fabs(out.u(best, j))) best = row;
    if (out.u(best, j) >= 0) continue;
    for (int64_t row = 0; row < m; ++row) out.u(row, j) = -out.u(row, j);
    for (int64_t col = 0; col < n; ++col) out.vt(j, col) = -out.vt(j, col);
  }
  return out;
}

}  // namespace smol::linalg_test
