// The spectral refactor of LoRA pairs (docs/seed-behaviour.md §5.1, docs/design.md §4): for
// every adapter, thin QR of B and Aᵀ, SVD of the r×r core, a new spectrum S̃ (exact or
// balanced, with damping and clipping), and the new factors built directly:
//
//   B = Q_b·R_b, Aᵀ = Q_a·R_a, C = R_b·R_aᵀ = U_c·diag(S)·V_cᵀ      (§5.1 step 1)
//   S ← S + eps (eps > 0); S ← max(S, clip) (clip > 0)              (§5.1 step 2)
//   exact: S̃ = S; balanced: S̃ = (1 − λ)·S + λ·mean(S); h = √max(S̃, 0)
//   B′ = Q_b·U_c·diag(h), A′ = diag(h)·V_cᵀ·Q_aᵀ                     (§5.1 step 3, the
//                                                                    "built directly" form)
//   preserve_momentum: mB ← mB·R_aᵀ·V_c·diag(1/(h + 1e-12)),
//                      mA ← diag(1/(h + 1e-12))·U_cᵀ·R_b·mA          (§5.1 step 4)
//   clear_momentum: m and v zeroed after the remap (Adam's step count is kept).
//
// A zero singular value (B = 0, as PEFT initialises it, or a rank-deficient pair) gives h = 0:
// that direction of B′ and A′ is zero, and the remap multiplies by 1/(0 + 1e-12) = 1e12, as the
// seed's formula does; so with preserve_momentum the first refactor belongs after B has moved
// (refactor_every >= 1 completed step with lr > 0, or a warmup).
//
// Adam's second moments v are NEVER remapped (the seed leaves exp_avg_sq in the old
// coordinates; §5.1 step 4): after a refactor v describes the old factors' elements.
//
// Everything runs in fp32 on the run's device through Backend and LinalgBackend ops. Pairs of
// the same (out, in, r) shape form a group whose QRs and SVDs run as one batched call; the
// r×r products are per-layer matmuls queued on the stream. The one host round-trip per
// refactor is the download of every layer's singular values (one buffer for all groups) and
// the upload of the diagonal factors diag(h), diag(1/(h + 1e-12)) built from them: the
// interface has no elementwise sqrt / division op, and the spectra are logged anyway.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "kernels/linalg_backend.h"
#include "model/llama_model.h"

namespace smol {

class AdamW;

// One adapter: B [out, r] and A [r, in] (F32, on the backend), and Adam's moments of each
// (data == nullptr when there is no optimizer state).
struct LoraPair {
  std::string name;  // the adapted projection, e.g. "model.layers.0.self_attn.q_proj"
  Tensor a, b;
  Tensor first_a, first_b;    // m
  Tensor second_a, second_b;  // v
  int64_t out() const { return b.shape[0]; }
  int64_t in() const { return a.shape[1]; }
  int64_t rank() const { return a.shape[0]; }
};

// The LoRA pairs of `params` (the model's trainable tensors, in its order: layer, projection,
// A then B), with the moments of `optimizer` when given (its params must be `params`).
// Error when a lora_A has no matching lora_B or a tensor is not a LoRA factor.
std::vector<LoraPair> lora_pairs_of(const std::vector<TrainableParam>& params,
                                    const AdamW* optimizer);

struct RefactorSettings {
  bool balanced = true;  // refactor_mode balanced (else exact)
  double lambda = 1.0;   // λ of this refactor (the schedule's λ_k)
  double damping_eps = 0;
  double clip_min_sigma = 0;
  bool preserve_momentum = false;
  bool clear_momentum = true;
};

// §5.1 step 2 on one layer's singular values S (descending): the S̃ the new factors carry.
std::vector<double> refactored_spectrum(const std::vector<double>& s,
                                        const RefactorSettings& settings);

// What one refactor did, per layer in module order.
struct RefactorReport {
  std::vector<std::string> layers;
  std::vector<std::vector<double>> spectra_before;  // S of B·A
  std::vector<std::vector<double>> spectra_after;   // h² = S̃, the singular values of B′·A′
  // ‖B′A′ − BA‖_F / ‖BA‖_F = ‖S̃ − S‖₂ / ‖S‖₂ (both products share Q_b·U_c and V_cᵀ·Q_aᵀ);
  // 0 when B·A = 0.
  std::vector<double> relative_change;
};

// Refactors a fixed set of pairs; the workspace (per shape group: the batched QR / SVD
// operands and the r×r products) is allocated once, at construction.
class SpectralRefactor {
 public:
  // Error when a pair has r > 64 (svd_small's bound), out < r or in < r (thin QR needs
  // m >= n), or a tensor that is not F32 of the pair's shape.
  SpectralRefactor(Backend& backend, LinalgBackend& linalg, std::vector<LoraPair> pairs);
  SpectralRefactor(const SpectralRefactor&) = delete;
  SpectralRefactor& operator=(const SpectralRefactor&) = delete;

  // Refactors every pair in place (B, A and, per the settings, their moments).
  RefactorReport apply(const RefactorSettings& settings);

  const std::vector<LoraPair>& pairs() const { return pairs_; }
  size_t group_count() const { return groups_.size(); }

 private:
  struct Group {
    int64_t out = 0, in = 0, r = 0;
    std::vector<size_t> members;  // indices into pairs_
    Buffer workspace;
    Tensor qb, rb, qa, ra, core, u, vt;  // [L, out, r], [L, r, r], [L, in, r], [L, r, r] ...
    Tensor identity, x1, x2;             // [r, r]
    size_t spectrum_offset = 0;          // into spectra_ (floats)
    size_t diagonal_offset = 0;          // into diagonals_ (floats): L·r·r diag(h), then 1/h
  };
  Backend& backend_;
  LinalgBackend& linalg_;
  std::vector<LoraPair> pairs_;
  std::vector<Group> groups_;
  Buffer spectra_buffer_, diagonals_buffer_;
  Tensor spectra_, diagonals_;  // every group's S [Σ L·r]; diag factors [Σ 2·L·r·r]
};

}  // namespace smol
