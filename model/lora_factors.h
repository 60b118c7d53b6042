// The LoRA initialisers' formulas on one weight matrix, exactly as docs/seed-behaviour.md §4 (PEFT
// and the seed's my_peft fork):
//
//   gaussian       A ~ N(0, 1/r²), B = 0
//   true (kaiming) A ~ U(±1/√in) (kaiming-uniform a=√5), B = 0
//   false          A ~ U(±1/√in), B ~ U(±1/√r) (nn.Linear defaults: a non-identity adapter)
//   pissa          W = U S Vᵀ (full SVD), S' = S_r / s, B = U_r·diag(√S'), A = diag(√S')·V_rᵀ,
//                  W_res = W − s·B·A
//   pissa_niter_K  same with a randomized SVD (torch.svd_lowrank: q = r, K power iterations)
//   lora_ga        U,S,V = svd_lowrank(G, q = min(4r, min dims), niter = 4); direction picks B
//                  columns of U and A rows of Vᵀ (ArB2r: B = U[:, r:2r], A = Vᵀ[0:r]); scale
//                  (stable: both × d_out^¼/√γ); W ← W − s·B·A
//   lora_ns        X = G/(‖G‖_F + 1e-6) (transposed while iterating if d_out > d_in), five
//                  Newton–Schulz steps X ← ½X(3I − XᵀX) give Q; Ω ~ N(0,1) [d_out, k],
//                  k = min(r+4, min dims); V_r = first r columns of the QR factor of QᵀΩ;
//                  U_r = Q·V_r; B = U_r, A = V_rᵀ, scaled like lora_ga; W ← W − s·B·A
//
// The linear algebra runs in double (LAPACKE dgesdd / dgeqrf) and the results are rounded to
// fp32 once. Initialisers that move W keep the residual base in fp32 (not the seed's bf16, B26).
// G, the gradient of the loss w.r.t. W, comes from estimate_weight_gradients: the average over
// batches of each batch's token-mean-loss gradient with the completion-masked labels (not the
// seed's broken collator path, B16).
#pragma once

#include <cstdint>
#pragma once

#include <cstdint>

#include "linalg/decompositions.h"
#include "linalg/dense_matrix.h"
#include "model/lora_init_spec.h"
#include "model/random_init.h"

namespace smol {

DenseMatrix gaussian_matrix(int64_t rows, int64_t cols, SeededRng& rng);  // N(0, 1) entries

struct LoraFactors {
  DenseMatrix A;         // [r, in]
  DenseMatrix B;         // [out, r]
  DenseMatrix residual;  // W − s·B·A [out, in]; empty when the initialiser leaves W unchanged
};

LoraFactors pissa_factors(const DenseMatrix& w, int64_t r, double scaling);
// sketch: [min(out, in), r] standard normal.
LoraFactors pissa_niter_factors(const DenseMatrix& w, int64_t r, double scaling, int niter,
                                const DenseMatrix& sketch);
// sketch: [min(out, in), min(4r, min dims)] standard normal; rng only for the "random"
// direction and the "weightS" scale.
LoraFactors lora_ga_factors(const DenseMatrix& w, const DenseMatrix& g, int64_t r, double scaling,
                            const LoraInitSpec& spec, const DenseMatrix& sketch, SeededRng& rng);
// The Newton–Schulz polar factor of g [out, in] (five steps, Frobenius pre-scaling).
DenseMatrix newton_schulz_polar(const DenseMatrix& g, int steps = 5, double eps = 1e-6);
// omega: [out, min(r+4, min dims)] standard normal.
LoraFactors lora_ns_factors(const DenseMatrix& w, const DenseMatrix& g, int64_t r, double scaling,
                            const LoraInitSpec& spec, const DenseMatrix& omega, SeededRng& rng);

}  // namespace smol
