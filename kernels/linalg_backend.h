// LinalgBackend: dense linear algebra a backend offers beyond matmul — thin QR, small and
// truncated SVD, triangular solves (docs/design.md §4, docs/seed-behaviour.md §5: QR of B and
// Aᵀ, SVD of the r×r core; PiSSA / LoRA-GA initialisers: SVD of tall matrices).
// cpu: LAPACKE (sgeqrf/sorgqr, sgesdd) and cblas_strsm (kernels/cpu/cpu_linalg.cpp); cuda:
// cuSOLVER (geqrf/orgqr, gesvdj batched for r <= 32, gesvdj per matrix above, gesvd for the
// truncated SVD) and cuBLAS trsm (kernels/cuda/linalg.cu), which cuda-emu answers with LAPACKE
// (kernels/emu/emu_cusolver.cpp). Work is stream-ordered like every op: results are on the
// device when later ops run; nothing here waits for the host (except the opt-in device checks).
//
// Conventions: row-major F32 tensors (factorisations run in fp32 on every backend; callers
// keep fp32 copies of what they factorise), a batch is a leading dimension [B, m, n]
// (rank 2 means B = 1; a vector of the batch, s, is [B, k] or [k] when B = 1), and outputs are
// overwritten. Workspace is the backend's own. Outputs must not alias each other or the input
// except where a contract says so.
//
// Uniqueness: the sign rules below make a factorisation unique, hence equal across backends up
// to rounding, whenever the factors themselves are unique: full column rank for QR, distinct
// nonzero singular values for SVD. Otherwise (rank deficiency, repeated singular values) every
// backend still returns a valid factorisation — orthonormal factors that reconstruct the input —
// but the basis of a degenerate subspace is whatever the backend's LAPACK / cuSOLVER gives.
//
// Like Backend, each public op is non-virtual: it checks the op's contract once, for every
// backend (kernels/linalg_backend.cpp), then calls the backend's do_<op>.
#pragma once

#include <memory>

#include "kernels/backend.h"

namespace smol {

class LinalgBackend {
 public:
  virtual ~LinalgBackend() = default;

  // Thin QR of each a[b] [m, n], m >= n: a = q · r with q [B, m, n] having orthonormal columns
  // and r [B, n, n] upper triangular with r_ii >= 0 (signs fixed so the factorisation is
  // unique and identical across backends). q may alias a.
  void qr_thin(Tensor q, Tensor r, const Tensor& a);

  // SVD of small square matrices a[b] [r, r] (r <= 64; the LoRA core): a = u · diag(s) · vᵀ,
  // s [B, r] descending and >= 0, u, vt [B, r, r] (vt holds vᵀ). Each singular pair's sign is
  // fixed so that the largest-magnitude entry of each column of u is positive (the first such
  // entry, scanning rows from the top, when two magnitudes tie exactly).
  static constexpr int64_t kSvdSmallMaxDim = 64;
  void svd_small(Tensor u, Tensor s, Tensor vt, const Tensor& a);

  // Truncated SVD of one tall or wide matrix a [m, n] (base weights for PiSSA / LoRA-GA):
  // the top k = s.numel() singular values descending, u [m, k], vt [k, n]; same sign rule.
  // 1 <= k <= min(m, n). Exact (not randomised); the randomised niter variant is the caller's
  // composition of qr_thin and svd_small.
  void svd_truncated(Tensor u, Tensor s, Tensor vt, const Tensor& a);

  // Triangular solve in place, b[b] [m, n] := op(t[b])⁻¹ · b[b] (left) with t [B, m, m]
  // upper triangular when `upper` (else lower; the other triangle is not read), op = transpose
  // when `transpose`. Singular t (a zero on the diagonal) is an Error naming the batch index:
  // always on cpu, on cuda only in the device checks debug mode (Backend::set_device_checks),
  // where it costs a host wait; without it a singular t leaves inf / nan in b.
  void triangular_solve(Tensor b, const Tensor& t, bool upper, bool transpose);

 protected:
  // Per-backend implementations, called after the public op checked its contract (shapes,
  // dtypes, aliasing). Empty problems (B, m, n or k zero) never reach them.
  virtual void do_qr_thin(Tensor q, Tensor r, const Tensor& a) = 0;
  virtual void do_svd_small(Tensor u, Tensor s, Tensor vt, const Tensor& a) = 0;
  virtual void do_svd_truncated(Tensor u, Tensor s, Tensor vt, const Tensor& a) = 0;
  virtual void do_triangular_solve(Tensor b, const Tensor& t, bool upper, bool transpose) = 0;
};

// The linear algebra of `backend` (same device, same stream); Error when this build has none
// for it. The LinalgBackend keeps a reference to `backend`, which must outlive it.
std::unique_ptr<LinalgBackend> make_linalg(Backend& backend);

}  // namespace smol
