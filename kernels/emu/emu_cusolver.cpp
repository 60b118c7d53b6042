// cuda-emu cuSOLVER: the dense entry points kernels/cuda/linalg.cu calls, answered by LAPACKE
// in fp32 — as emu_cublaslt.cpp answers cuBLASLt with OpenBLAS.
//
// Semantics follow cusolverDn exactly, so a wrong leading dimension, workspace or batch layout
// fails here too: matrices are column-major with a leading dimension ld ≥ max(1, rows); every
// array an entry point touches must lie inside one device allocation (a, tau, s, u, v, work of
// lwork floats, dev_info); lwork must be at least what the matching _bufferSize reported;
// violations return CUSOLVER_STATUS_INVALID_VALUE like the real library. dev_info gets LAPACK's
// info (0: success; > 0: no convergence). Like the real routines, gesvdj and gesvdjBatched
// destroy a: the emu fills it with NaN, so a caller that reads it afterwards fails visibly.
//  - geqrf / orgqr: LAPACKE_sgeqrf / sorgqr (both Householder, LAPACK's conventions, which
//    cuSOLVER shares: r_ii of either sign).
//  - gesvdj (econ 0 or 1) and gesvdjBatched (m, n ≤ 32, matrices packed: a + b·lda·n,
//    s + b·min(m,n), u + b·ldu·m, v + b·ldv·n): LAPACKE_sgesdd, singular values descending
//    (gesvdj's default sort), and V — not Vᵀ — written to v. One-sided Jacobi and divide and
//    conquer agree to rounding on singular values and, up to sign, on vectors of distinct
//    values; the caller fixes signs.
#include <lapacke.h>

#include <algorithm>
#include <limits>
#include <vector>

// This file defines the entry points the header redirects to.
#define SMOL_EMU_IMPLEMENTATION
#include "kernels/emu/emu_cusolver.h"

namespace smol::emu {
namespace {

struct EmuSolverHandle {
  cudaStream_t stream = nullptr;
};
struct EmuGesvdjInfo {
  int unused = 0;
};

// The workspace (floats) each routine asks for: enough to exercise the caller's workspace
// handling (LAPACKE allocates LAPACK's own internally).
int geqrf_lwork(int n) {
  return std::max(1, 32 * n);
}
int svd_lwork(int m, int n) {
  return std::max(1, 4 * std::max(m, n) + 16);
}

bool device_floats(const void* p, int64_t count) {
  return count <= 0 || (p != nullptr && is_device_range(p, static_cast<size_t>(count) * 4));
}
// The floats a column-major rows×cols matrix with leading dimension ld spans.
int64_t stored(int rows, int cols, int ld) {
  return rows == 0 || cols == 0 ? 0 : int64_t{ld} * (cols - 1) + rows;
}
bool valid_matrix(const void* p, int rows, int cols, int ld) {
  return rows >= 0 && cols >= 0 && ld >= std::max(1, rows) &&
         device_floats(p, stored(rows, cols, ld));
}
bool valid_info(const int* dev_info, int count) {
  return dev_info != nullptr && is_device_range(dev_info, sizeof(int) * std::max(count, 1));
}

// One SVD, a = u · diag(s) · vᵀ, writing v (not vᵀ); a is destroyed (NaN).
int svd_one(int econ, int m, int n, float* a, int lda, float* s, float* u, int ldu, float* v,
            int ldv) {
  const int p = std::min(m, n);
  const int ucols = econ ? p : m, vrows = econ ? p : n;
  std::vector<float> dense(static_cast<size_t>(m) * n), tu(static_cast<size_t>(m) * ucols),
      tvt(static_cast<size_t>(vrows) * n);
  for (int col = 0; col < n; ++col)
    for (int row = 0; row < m; ++row) dense[size_t(col) * m + row] = a[int64_t{col} * lda + row];
  int info = 0;
  if (m > 0 && n > 0)
    info = LAPACKE_sgesdd(LAPACK_COL_MAJOR, econ ? 'S' : 'A', m, n, dense.data(), m, s, tu.data(),
                          m, tvt.data(), vrows);
  for (int col = 0; col < n; ++col)
    for (int row = 0; row < m; ++row)
      a[int64_t{col} * lda + row] = std::numeric_limits<float>::quiet_NaN();
  if (info != 0) return info;
  for (int col = 0; col < ucols; ++col)
    for (int row = 0; row < m; ++row) u[int64_t{col} * ldu + row] = tu[size_t(col) * m + row];
  // v [n, vrows] column-major: v(i, j) = vt(j, i).
  for (int j = 0; j < vrows; ++j)
    for (int i = 0; i < n; ++i) v[int64_t{j} * ldv + i] = tvt[size_t(i) * vrows + j];
  return 0;
}

bool valid_svd_arrays(cusolverEigMode_t jobz, int econ, int m, int n, const float* a, int lda,
                      const float* s, const float* u, int ldu, const float* v, int ldv) {
  const int p = std::min(m, n);
  return jobz == CUSOLVER_EIG_MODE_VECTOR && (econ == 0 || econ == 1) &&
         valid_matrix(a, m, n, lda) && device_floats(s, p) &&
         valid_matrix(u, m, econ ? p : m, ldu) && valid_matrix(v, n, econ ? p : n, ldv);
}

}  // namespace

cusolverStatus_t cusolverDnCreate(cusolverDnHandle_t* handle) {
  if (!handle) return CUSOLVER_STATUS_INVALID_VALUE;
  *handle = reinterpret_cast<cusolverDnHandle_t>(new EmuSolverHandle);
  return CUSOLVER_STATUS_SUCCESS;
}
cusolverStatus_t cusolverDnDestroy(cusolverDnHandle_t handle) {
  delete reinterpret_cast<EmuSolverHandle*>(handle);
  return CUSOLVER_STATUS_SUCCESS;
}
cusolverStatus_t cusolverDnSetStream(cusolverDnHandle_t handle, cudaStream_t stream) {
  if (!handle) return CUSOLVER_STATUS_NOT_INITIALIZED;
  reinterpret_cast<EmuSolverHandle*>(handle)->stream = stream;
  return CUSOLVER_STATUS_SUCCESS;
}

cusolverStatus_t cusolverDnSgeqrf_bufferSize(cusolverDnHandle_t handle, int m, int n, float* a,
                                             int lda, int* lwork) {
  if (!handle) return CUSOLVER_STATUS_NOT_INITIALIZED;
  if (!lwork || m < 0 || n < 0 || lda < std::max(1, m)) return CUSOLVER_STATUS_INVALID_VALUE;
  (void)a;
  *lwork = geqrf_lwork(n);
  return CUSOLVER_STATUS_SUCCESS;
}
cusolverStatus_t cusolverDnSgeqrf(cusolverDnHandle_t handle, int m, int n, float* a, int lda,
                                  float* tau, float* work, int lwork, int* dev_info) {
  if (!handle) return CUSOLVER_STATUS_NOT_INITIALIZED;
  if (!valid_matrix(a, m, n, lda) || !device_floats(tau, std::min(m, n)) ||
      lwork < geqrf_lwork(n) || !device_floats(work, lwork) || !valid_info(dev_info, 1))
    return CUSOLVER_STATUS_INVALID_VALUE;
  *dev_info = m == 0 || n == 0 ? 0 : LAPACKE_sgeqrf(LAPACK_COL_MAJOR, m, n, a, lda, tau);
  return CUSOLVER_STATUS_SUCCESS;
}
cusolverStatus_t cusolverDnSorgqr_bufferSize(cusolverDnHandle_t handle, int m, int n, int k,
                                             const float* a, int lda, const float* tau,
                                             int* lwork) {
  if (!handle) return CUSOLVER_STATUS_NOT_INITIALIZED;
  if (!lwork || m < 0 || n < 0 || n > m || k < 0 || k > n || lda < std::max(1, m))
    return CUSOLVER_STATUS_INVALID_VALUE;
  (void)a;
  (void)tau;
  *lwork = geqrf_lwork(n);
  return CUSOLVER_STATUS_SUCCESS;
}
cusolverStatus_t cusolverDnSorgqr(cusolverDnHandle_t handle, int m, int n, int k, float* a, int lda,
                                  const float* tau, float* work, int lwork, int* dev_info) {
  if (!handle) return CUSOLVER_STATUS_NOT_INITIALIZED;
  if (n > m || k < 0 || k > n || !valid_matrix(a, m, n, lda) || !device_floats(tau, k) ||
      lwork < geqrf_lwork(n) || !device_floats(work, lwork) || !valid_info(dev_info, 1))
    return CUSOLVER_STATUS_INVALID_VALUE;
  *dev_info = m == 0 || n == 0 ? 0 : LAPACKE_sorgqr(LAPACK_COL_MAJOR, m, n, k, a, lda, tau);
  return CUSOLVER_STATUS_SUCCESS;
}

cusolverStatus_t cusolverDnCreateGesvdjInfo(gesvdjInfo_t* info) {
  if (!info) return CUSOLVER_STATUS_INVALID_VALUE;
  *info = reinterpret_cast<gesvdjInfo_t>(new EmuGesvdjInfo);
  return CUSOLVER_STATUS_SUCCESS;
}
cusolverStatus_t cusolverDnDestroyGesvdjInfo(gesvdjInfo_t info) {
  delete reinterpret_cast<EmuGesvdjInfo*>(info);
  return CUSOLVER_STATUS_SUCCESS;
}

cusolverStatus_t cusolverDnSgesvdj_bufferSize(cusolverDnHandle_t handle, cusolverEigMode_t jobz,
                                              int econ, int m, int n, const float* a, int lda,
                                              const float* s, const float* u, int ldu,
                                              const float* v, int ldv, int* lwork,
                                              gesvdjInfo_t params) {
  if (!handle || !params) return CUSOLVER_STATUS_NOT_INITIALIZED;
  if (!lwork || jobz != CUSOLVER_EIG_MODE_VECTOR || m < 0 || n < 0 || lda < std::max(1, m) ||
      ldu < std::max(1, m) || ldv < std::max(1, n))
    return CUSOLVER_STATUS_INVALID_VALUE;
  (void)econ, (void)a, (void)s, (void)u, (void)v;
  *lwork = svd_lwork(m, n);
  return CUSOLVER_STATUS_SUCCESS;
}
cusolverStatus_t cusolverDnSgesvdj(cusolverDnHandle_t handle, cusolverEigMode_t jobz, int econ,
                                   int m, int n, float* a, int lda, float* s, float* u, int ldu,
                                   float* v, int ldv, float* work, int lwork, int* dev_info,
                                   gesvdjInfo_t params) {
  if (!handle || !params) return CUSOLVER_STATUS_NOT_INITIALIZED;
  if (!valid_svd_arrays(jobz, econ, m, n, a, lda, s, u, ldu, v, ldv) || lwork < svd_lwork(m, n) ||
      !device_floats(work, lwork) || !valid_info(dev_info, 1))
    return CUSOLVER_STATUS_INVALID_VALUE;
  *dev_info = svd_one(econ, m, n, a, lda, s, u, ldu, v, ldv);
  return CUSOLVER_STATUS_SUCCESS;
}

cusolverStatus_t cusolverDnSgesvdjBatched_bufferSize(cusolverDnHandle_t handle,
                                                     cusolverEigMode_t jobz, int m, int n,
                                                     const float* a, int lda, const float* s,
                                                     const float* u, int ldu, const float* v,
                                                     int ldv, int* lwork, gesvdjInfo_t params,
                                                     int batch) {
  if (!handle || !params) return CUSOLVER_STATUS_NOT_INITIALIZED;
  if (!lwork || jobz != CUSOLVER_EIG_MODE_VECTOR || m < 0 || n < 0 || m > 32 || n > 32 ||
      batch < 0 || lda < std::max(1, m) || ldu < std::max(1, m) || ldv < std::max(1, n))
    return CUSOLVER_STATUS_INVALID_VALUE;
  (void)a, (void)s, (void)u, (void)v;
  *lwork = svd_lwork(m, n) * std::max(batch, 1);
  return CUSOLVER_STATUS_SUCCESS;
}
cusolverStatus_t cusolverDnSgesvdjBatched(cusolverDnHandle_t handle, cusolverEigMode_t jobz, int m,
                                          int n, float* a, int lda, float* s, float* u, int ldu,
                                          float* v, int ldv, float* work, int lwork, int* dev_info,
                                          gesvdjInfo_t params, int batch) {
  if (!handle || !params) return CUSOLVER_STATUS_NOT_INITIALIZED;
  if (m > 32 || n > 32 || batch < 0) return CUSOLVER_STATUS_INVALID_VALUE;
  const int p = std::min(m, n);
  const int64_t a_stride = int64_t{lda} * n, u_stride = int64_t{ldu} * m,
                v_stride = int64_t{ldv} * n;
  // The whole packed batch must be device memory (the last matrix's span covers the others).
  if (batch > 0 &&
      (!valid_svd_arrays(jobz, 0, m, n, a + (batch - 1) * a_stride, lda, s + int64_t{batch - 1} * p,
                         u + (batch - 1) * u_stride, ldu, v + (batch - 1) * v_stride, ldv) ||
       !valid_svd_arrays(jobz, 0, m, n, a, lda, s, u, ldu, v, ldv)))
    return CUSOLVER_STATUS_INVALID_VALUE;
  if (lwork < svd_lwork(m, n) * std::max(batch, 1) || !device_floats(work, lwork) ||
      !valid_info(dev_info, batch))
    return CUSOLVER_STATUS_INVALID_VALUE;
  for (int b = 0; b < batch; ++b)
    dev_info[b] = svd_one(0, m, n, a + b * a_stride, lda, s + int64_t{b} * p, u + b * u_stride, ldu,
                          v + b * v_stride, ldv);
  return CUSOLVER_STATUS_SUCCESS;
}

}  // namespace smol::emu
