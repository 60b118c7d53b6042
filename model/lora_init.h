// LoRA adapter initialisation of a whole model, exactly as docs/seed-behaviour.md §4 (PEFT and the
// seed's my_peft fork):
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
#include <string>
#include <vector>

#include "io/host_tensor.h"
#include "linalg/dense_matrix.h"
#include "model/llama_model.h"
#include "model/lora_factors.h"
#include "model/lora_init_spec.h"
#include "model/lora_names.h"
#include "model/weight_gradients.h"

namespace smol {

// Host tensor <-> DenseMatrix (rank 2 only; host_from_dense is the one rounding to fp32).
DenseMatrix dense_from_host(const HostTensor& t, const std::string& name);
HostTensor host_from_dense(const DenseMatrix& m);

struct LoraInitLayerReport {
  std::string weight_name;
  double weight_norm = 0;  // ‖W‖_F before
  double moved_norm = 0;   // ‖W − W_res‖_F = ‖s·B·A‖_F (0 when W is unchanged)
};
struct LoraInitReport {
  std::string method;
  bool residualised = false;  // W was replaced by an fp32 residual
  std::vector<LoraInitLayerReport> layers;
};

// Initialises every adapter of a TrainMode::Lora model and, for pissa / lora_ga / lora_ns,
// replaces each targeted W by its fp32 residual. `gradients` must hold G for every targeted
// weight when the method needs one (throws naming the missing weight).
LoraInitReport initialize_lora(LlamaModel& model, const LoraInitSpec& spec,
                               const WeightGradients* gradients = nullptr);

}  // namespace smol
