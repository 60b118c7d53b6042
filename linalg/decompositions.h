// Decompositions of DenseMatrix in double through LAPACKE (docs/design.md §2: the cpu side of
// dense linear algebra): thin SVD (dgesdd), the orthonormal factor of a reduced QR (dgeqrf +
// dorgqr, LAPACK's Householder sign convention, as torch), and torch.svd_lowrank's randomized
// SVD. Used by the LoRA initialisers (docs/seed-behaviour.md §4).
#pragma once

#include <cstdint>
#include <vector>

#include "linalg/dense_matrix.h"

namespace smol {

struct SvdResult {
  DenseMatrix U;          // [m, k]
  std::vector<double> S;  // k, descending
  DenseMatrix V;          // [n, k] (V, not Vᵀ)
};
// Thin SVD, k = min(m, n).
SvdResult thin_svd(const DenseMatrix& a);
// torch.svd_lowrank (Halko et al. Alg. 5.1, torch/_lowrank.py): if m < n work on aᵀ; Q from
// the Gaussian sketch [min(m,n), q] and niter power iterations with QR re-orthonormalisation;
// SVD of Qᵀa. Returns U [m, q], S (q), V [n, q].
SvdResult svd_lowrank(const DenseMatrix& a, int64_t q, int niter, const DenseMatrix& sketch);
// Q of the reduced QR of x [m, k] (m ≥ k), LAPACK's Householder sign convention (as torch).
DenseMatrix qr_orthonormal(const DenseMatrix& x);

}  // namespace smol
