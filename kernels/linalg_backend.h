// LinalgBackend: dense linear algebra a backend offers beyond matmul — declared here with its
// contracts, implemented by the spectral-refactor issue (docs/design.md §4, seed-behaviour §5:
// QR of B and Aᵀ, SVD of the r×r core; PiSSA / LoRA-GA initialisers: SVD of tall matrices).
// cpu: LAPACKE (sgeqrf/sorgqr, sgesdd, strsm); cuda: cuSOLVER (geqrf/orgqr batched, gesvdj
// batched for small r×r, gesvd for tall) and cuBLAS trsm. Work is stream-ordered like every op:
// results are on the device when later ops run; nothing here waits for the host.
//
// Conventions: row-major F32 tensors (factorisations run in fp32 on every backend; callers
// keep fp32 copies of what they factorise), a batch is a leading dimension [B, m, n]
// (rank 2 means B = 1), and outputs are overwritten. Workspace is the backend's own.
#pragma once

#include "kernels/backend.h"

namespace smol {

class LinalgBackend {
 public:
  virtual ~LinalgBackend() = default;

  // Thin QR of each a[b] [m, n], m >= n: a = q · r with q [B, m, n] having orthonormal columns
  // and r [B, n, n] upper triangular with r_ii >= 0 (signs fixed so the factorisation is
  // unique and identical across backends). q may alias a.
  virtual void qr_thin(Tensor q, Tensor r, const Tensor& a) = 0;

  // SVD of small square matrices a[b] [r, r] (r <= 64; the LoRA core): a = u · diag(s) · vᵀ,
  // s [B, r] descending and >= 0, u, vt [B, r, r] (vt holds vᵀ). Each singular pair's sign is
  // fixed so that the largest-magnitude entry of each column of u is positive.
  virtual void svd_small(Tensor u, Tensor s, Tensor vt, const Tensor& a) = 0;

  // Truncated SVD of one tall or wide matrix a [m, n] (base weights for PiSSA / LoRA-GA):
  // the top k = s.numel() singular values descending, u [m, k], vt [k, n]; same sign rule.
  // k <= min(m, n). Exact (not randomised); the randomised niter variant is the caller's
  // composition of qr_thin and svd_small.
  virtual void svd_truncated(Tensor u, Tensor s, Tensor vt, const Tensor& a) = 0;

  // Triangular solve in place, b[b] [m, n] := op(t[b])⁻¹ · b[b] (left) with t [B, m, m]
  // upper triangular when `upper`, op = transpose when `transpose`. Singular t (a zero on
  // the diagonal) is an Error naming the batch index, found on the host only in the device
  // checks debug mode (Backend::set_device_checks) on cuda.
  virtual void triangular_solve(Tensor b, const Tensor& t, bool upper, bool transpose) = 0;
};

// The linear algebra of `backend` (same device, same stream); Error when this build has none
// for it. Declared for the spectral-refactor issue, which defines it.
std::unique_ptr<LinalgBackend> make_linalg(Backend& backend);

}  // namespace smol
