// CpuLinalg: the cpu backend's dense linear algebra (kernels/linalg_backend.h) through LAPACKE
// and cblas in fp32, one matrix of a batch at a time, all row-major (LAPACK_ROW_MAJOR /
// CblasRowMajor, so no transposition is derived here; kernels/cuda/linalg.cu derives the
// column-major one). After each factorisation the sign rules of the contract are enforced:
//  - thin QR (sgeqrf + sorgqr): where r_ii < 0, negate row i of r and column i of q
//    (q·r unchanged: diag(±1)² = I), so r_ii >= 0;
//  - SVD (sgesdd): where the largest-|.| entry of column j of u is negative (the first one
//    from the top on exact ties), negate column j of u and row j of vt (u·diag(s)·vᵀ unchanged).
// sgesdd (divide and conquer) rather than sgesvd: both are backward stable; sgesdd is the
// faster for the tall base-weight SVDs and is what torch.linalg.svd calls on the CPU.
#include <cblas.h>
#include <lapacke.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/cpu/cpu_linalg.h"

namespace smol {
namespace {

int64_t batch_of(const Tensor& t) {
  return t.shape.rank == 3 ? t.shape[0] : 1;
}

void check_lapack(lapack_int info, const char* routine, const char* op, int64_t index) {
  SMOL_CHECK(info == 0, op, ": LAPACKE ", routine, " failed on matrix ", index, " (info ", info,
             info > 0 ? ": did not converge" : ": illegal argument", ")");
}

// r_ii >= 0: flips row i of r [n, n] and column i of q [m, n] (row-major) where r_ii < 0.
void fix_qr_signs(float* q, float* r, int64_t m, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    float& diag = r[i * n + i];
    if (diag == 0.0f) diag = 0.0f;  // -0 → +0: the same bits on every backend
    if (!(diag < 0.0f)) continue;
    for (int64_t j = i; j < n; ++j) r[i * n + j] = -r[i * n + j];
    for (int64_t row = 0; row < m; ++row) q[row * n + i] = -q[row * n + i];
  }
}

// The largest-|.| entry of each column of u [m, k] positive (first on ties): flips column j of
// u and row j of vt [k, n] where it is negative.
void fix_svd_signs(float* u, float* vt, int64_t m, int64_t k, int64_t n) {
  for (int64_t j = 0; j < k; ++j) {
    int64_t best = 0;
    for (int64_t row = 1; row < m; ++row)
      if (std::fabs(u[row * k + j]) > std::fabs(u[best * k + j])) best = row;
    if (!(u[best * k + j] < 0.0f)) continue;
    for (int64_t row = 0; row < m; ++row) u[row * k + j] = -u[row * k + j];
    for (int64_t col = 0; col < n; ++col) vt[j * n + col] = -vt[j * n + col];
  }
}

class CpuLinalg final : public LinalgBackend {
 protected:
  void do_qr_thin(Tensor q, Tensor r, const Tensor& a) override {
    const int64_t batch = batch_of(a), m = a.shape[a.shape.rank - 2], n = a.shape.cols();
    std::vector<float> tau(static_cast<size_t>(n));
    for (int64_t b = 0; b < batch; ++b) {
      const float* ab = a.as<float>() + b * m * n;
      float* qb = q.as<float>() + b * m * n;
      float* rb = r.as<float>() + b * n * n;
      if (qb != ab) std::memcpy(qb, ab, sizeof(float) * m * n);
      const int im = static_cast<int>(m), in = static_cast<int>(n);
      check_lapack(LAPACKE_sgeqrf(LAPACK_ROW_MAJOR, im, in, qb, in, tau.data()), "sgeqrf",
                   "qr_thin", b);
      // r = the upper triangle of the first n rows (below it, sgeqrf's Householder vectors).
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < n; ++j) rb[i * n + j] = j >= i ? qb[i * n + j] : 0.0f;
      check_lapack(LAPACKE_sorgqr(LAPACK_ROW_MAJOR, im, in, in, qb, in, tau.data()), "sorgqr",
                   "qr_thin", b);
      fix_qr_signs(qb, rb, m, n);
    }
  }

  void do_svd_small(Tensor u, Tensor s, Tensor vt, const Tensor& a) override {
    const int64_t batch = batch_of(a), r = a.shape.cols();
    std::vector<float> work(static_cast<size_t>(r * r));  // sgesdd destroys its input
    const int ir = static_cast<int>(r);
    for (int64_t b = 0; b < batch; ++b) {
      std::memcpy(work.data(), a.as<float>() + b * r * r, sizeof(float) * r * r);
      float* ub = u.as<float>() + b * r * r;
      float* vb = vt.as<float>() + b * r * r;
      check_lapack(LAPACKE_sgesdd(LAPACK_ROW_MAJOR, 'A', ir, ir, work.data(), ir,
                                  s.as<float>() + b * r, ub, ir, vb, ir),
                   "sgesdd", "svd_small", b);
      fix_svd_signs(ub, vb, r, r, r);
    }
  }

  void do_svd_truncated(Tensor u, Tensor s, Tensor vt, const Tensor& a) override {
    const int64_t m = a.shape[0], n = a.shape[1], k = s.numel(), p = std::min(m, n);
    std::vector<float> work(a.as<float>(), a.as<float>() + m * n);
    std::vector<float> full_u(static_cast<size_t>(m * p)), full_s(static_cast<size_t>(p)),
        full_vt(static_cast<size_t>(p * n));
    const int im = static_cast<int>(m), in = static_cast<int>(n), ip = static_cast<int>(p);
    check_lapack(LAPACKE_sgesdd(LAPACK_ROW_MAJOR, 'S', im, in, work.data(), in, full_s.data(),
                                full_u.data(), ip, full_vt.data(), in),
                 "sgesdd", "svd_truncated", 0);
    float* uo = u.as<float>();
    for (int64_t row = 0; row < m; ++row)
      std::memcpy(uo + row * k, full_u.data() + row * p, sizeof(float) * k);
    std::memcpy(s.as<float>(), full_s.data(), sizeof(float) * k);
    std::memcpy(vt.as<float>(), full_vt.data(), sizeof(float) * k * n);
    fix_svd_signs(uo, vt.as<float>(), m, k, n);
  }

  void do_triangular_solve(Tensor b, const Tensor& t, bool upper, bool transpose) override {
    const int64_t batch = batch_of(b), m = b.shape[b.shape.rank - 2], n = b.shape.cols();
    for (int64_t i = 0; i < batch; ++i) {
      const float* tb = t.as<float>() + i * m * m;
      for (int64_t d = 0; d < m; ++d)
        SMOL_CHECK(tb[d * m + d] != 0.0f, "triangular_solve: t[", i, "] is singular (zero at (", d,
                   ", ", d, ") of its diagonal)");
      cblas_strsm(CblasRowMajor, CblasLeft, upper ? CblasUpper : CblasLower,
                  transpose ? CblasTrans : CblasNoTrans, CblasNonUnit, static_cast<int>(m),
                  static_cast<int>(n), 1.0f, tb, static_cast<int>(m), b.as<float>() + i * m * n,
                  static_cast<int>(n));
    }
  }
};

}  // namespace

std::unique_ptr<LinalgBackend> make_cpu_linalg() {
  return std::make_unique<CpuLinalg>();
}

}  // namespace smol
