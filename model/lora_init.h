// LoRA adapter initialisers, exactly as seed-spec.md §4 (PEFT and the seed's my_peft fork):
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
#include <map>
#include <string>
#include <vector>

#include "model/host_tensor.h"
#include "model/llama_model.h"
#include "model/random_init.h"

namespace smol {

enum class LoraInitKind : uint8_t { Gaussian, Kaiming, NonZero, Pissa, PissaNiter, LoraGa, LoraNs };
enum class LoraGaDirection : uint8_t { ArB2r, ArBr, A2rBr, Random };
enum class LoraGaScale : uint8_t { Stable, Gd, Unit, WeightS };

struct LoraInitSpec {
  LoraInitKind kind = LoraInitKind::Gaussian;
  int niter = 0;  // pissa_niter_K: K
  LoraGaDirection direction = LoraGaDirection::ArB2r;
  LoraGaScale scale = LoraGaScale::Stable;
  double stable_gamma = 16.0;  // γ of the "stable" scale (both lora_ga and lora_ns: d_out^¼/4)
  uint64_t seed = 42;          // every random draw (A, sketches, Ω) derives from it per tensor
  bool operator==(const LoraInitSpec&) const = default;
};

// init_lora_weights values: "gaussian", "true", "false", "pissa", "pissa_niter_K", "lora_ga",
// "lora_ns" (YAML true/false arrive as "true"/"false"). Throws naming `where`.
LoraInitSpec parse_lora_init(const std::string& value, const std::string& where);
LoraGaDirection parse_lora_ga_direction(const std::string& value, const std::string& where);
LoraGaScale parse_lora_ga_scale(const std::string& value, const std::string& where);
std::string lora_init_name(const LoraInitSpec& spec);
bool lora_init_needs_gradient(LoraInitKind kind);
bool lora_init_moves_base_weight(LoraInitKind kind);

// A dense row-major matrix in double: the initialisers' working type.
struct DenseMatrix {
  int64_t rows = 0, cols = 0;
  std::vector<double> data;

  DenseMatrix() = default;
  DenseMatrix(int64_t r, int64_t c) : rows(r), cols(c), data(static_cast<size_t>(r * c), 0.0) {}
  double& at(int64_t i, int64_t j) { return data[static_cast<size_t>(i * cols + j)]; }
  double at(int64_t i, int64_t j) const { return data[static_cast<size_t>(i * cols + j)]; }
  bool empty() const { return data.empty(); }
};

DenseMatrix dense_from_host(const HostTensor& t, const std::string& name);  // rank-2 only
HostTensor host_from_dense(const DenseMatrix& m);                           // fp32 rounding
DenseMatrix gaussian_matrix(int64_t rows, int64_t cols, SeededRng& rng);    // N(0, 1) entries

// ---- decompositions (double, LAPACKE) --------------------------------------------------------
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

// ---- the formulas on one layer (seed-spec.md §4) --------------------------------------------
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

// ---- on a model --------------------------------------------------------------------------
// HF name of the base weight of a targeted projection: "model.layers.3.mlp.up_proj.weight".
std::string projection_weight_name(int64_t layer, Projection projection);
// ".../q_proj.weight" -> ".../q_proj.lora_A.weight" (which = "A" or "B").
std::string lora_tensor_name(const std::string& weight_name, const char* which);

using WeightGradients = std::map<std::string, HostTensor>;  // HF weight name -> G (fp32)

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

// G for every targeted weight of `lora_model`: a TrainMode::Full copy of its base weights runs
// forward+backward on each batch with that batch's token-mean loss (loss_scale 1/N_batch);
// the gradients are summed in fp32 and divided by the number of batches that had a
// supervised token (seed-spec.md §4 "Gradient pass", with correct completion masking).
WeightGradients estimate_weight_gradients(LlamaModel& lora_model,
                                          const std::vector<std::vector<TokenRow>>& batches);

}  // namespace smol
