// LAPACKE-backed decompositions (see decompositions.h).
#include "linalg/decompositions.h"

#include <lapacke.h>

#include <algorithm>
#include <utility>

#include "common/error.h"

namespace smol {

SvdResult thin_svd(const DenseMatrix& a) {
  const int64_t m = a.rows, n = a.cols, k = std::min(m, n);
  SMOL_CHECK(k > 0, "SVD of an empty ", m, "x", n, " matrix");
  DenseMatrix work = a;
  SvdResult result;
  result.S.assign(static_cast<size_t>(k), 0.0);
  result.U = DenseMatrix(m, k);
  DenseMatrix vt(k, n);
  const lapack_int info = LAPACKE_dgesdd(
      LAPACK_ROW_MAJOR, 'S', static_cast<lapack_int>(m), static_cast<lapack_int>(n),
      work.data.data(), static_cast<lapack_int>(n), result.S.data(), result.U.data.data(),
      static_cast<lapack_int>(k), vt.data.data(), static_cast<lapack_int>(n));
  SMOL_CHECK(info == 0, "SVD (LAPACKE_dgesdd) of a ", m, "x", n, " matrix failed: info ", info);
  result.V = transposed(vt);
  return result;
}

DenseMatrix qr_orthonormal(const DenseMatrix& x) {
  const int64_t m = x.rows, k = x.cols;
  SMOL_CHECK(m >= k && k > 0, "QR: need a tall matrix, got ", m, "x", k);
  DenseMatrix q = x;
  std::vector<double> tau(static_cast<size_t>(k));
  lapack_int info =
      LAPACKE_dgeqrf(LAPACK_ROW_MAJOR, static_cast<lapack_int>(m), static_cast<lapack_int>(k),
                     q.data.data(), static_cast<lapack_int>(k), tau.data());
  SMOL_CHECK(info == 0, "QR (LAPACKE_dgeqrf) of a ", m, "x", k, " matrix failed: info ", info);
  info = LAPACKE_dorgqr(LAPACK_ROW_MAJOR, static_cast<lapack_int>(m), static_cast<lapack_int>(k),
                        static_cast<lapack_int>(k), q.data.data(), static_cast<lapack_int>(k),
                        tau.data());
  SMOL_CHECK(info == 0, "QR (LAPACKE_dorgqr) of a ", m, "x", k, " matrix failed: info ", info);
  return q;
}

SvdResult svd_lowrank(const DenseMatrix& a, int64_t q, int niter, const DenseMatrix& sketch) {
  const bool transpose = a.rows < a.cols;  // torch: "Assume that A is tall"
  const DenseMatrix tall = transpose ? transposed(a) : a;
  SMOL_CHECK(q > 0 && q <= tall.cols, "svd_lowrank: q = ", q, " must be in [1, ", tall.cols, "]");
  SMOL_CHECK(sketch.rows == tall.cols && sketch.cols == q, "svd_lowrank: the sketch is ",
             sketch.rows, "x", sketch.cols, " but must be ", tall.cols, "x", q);
  // get_approximate_basis: Q = qr(A R); niter × (Q = qr(Aᵀ Q); Q = qr(A Q)).
  DenseMatrix basis = qr_orthonormal(multiply(tall, false, sketch, false));
  for (int i = 0; i < niter; ++i) {
    basis = qr_orthonormal(multiply(tall, true, basis, false));
    basis = qr_orthonormal(multiply(tall, false, basis, false));
  }
  SvdResult small = thin_svd(multiply(basis, true, tall, false));  // Qᵀ A [q, N]
  SvdResult result;
  result.S = small.S;
  result.U = multiply(basis, false, small.U, false);
  result.V = small.V;
  if (transpose) std::swap(result.U, result.V);
  return result;
}

}  // namespace smol
