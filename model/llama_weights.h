// LlamaWeights: every parameter of the Llama network (and its gradient when it trains) as views
// into two arenas on the backend, plus the HF/PEFT name of each (docs/formats.md §2, §4).
//
// dtypes (docs/design.md §2): a frozen base weight is stored in the backend's activation dtype,
// or a frozen matrix in BF16 with FrozenWeights::BF16 (base_weight_dtype decides, in one place);
// a trainable base weight (TrainMode::Full) is the fp32 master; LoRA A/B and every gradient are
// F32. Adapters start at zero (A = B = 0): their initialisers live outside the model.
#pragma once

#include <array>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "io/llama_config.h"
#include "model/device_arena.h"
#include "model/llama_model.h"
#include "model/lora_linear.h"

namespace smol {

constexpr int kNumProjections = 7;  // q k v o gate up down, in Projection order

// Projections that read the same input: q, k, v read input_layernorm's output, gate and up read
// post_attention_layernorm's. The LoRA A factors of a group's adapted projections are planned back
// to back in both arenas, so the stacked A [ΣR, in] (and its gradient) is one dense view and the
// model runs one down-projection matmul for the whole group (docs/design.md §2.7). Each member's
// lora_A stays its own [r, in] view with its own PEFT name.
enum class LoraGroupId : uint8_t { Qkv, GateUp };
constexpr int kNumLoraGroups = 2;
struct LoraGroup {
  std::vector<Projection> members;  // the group's projections that have an adapter, in order
  // F32 [ΣR, in]: the members' lora_A (lora_A_grad) stacked; empty when the members' factors
  // could not be packed without breaking the arena's alignment (then the group runs per
  // projection).
  Tensor A, A_grad;
};
// The projections of a group, adapted or not, in Projection order.
std::vector<Projection> lora_group_projections(LoraGroupId group);

struct LlamaLayerWeights {
  Tensor input_norm, input_norm_grad;  // [C]
  Tensor post_norm, post_norm_grad;    // [C]
  std::array<LoraLinear, kNumProjections> proj;
  std::array<LoraGroup, kNumLoraGroups> lora_groups;
  // [W_gate; W_up] [2F, C] (and their stacked gradient when they train) as one view, when the two
  // were planned back to back (docs/design.md §2.9); empty otherwise.
  Tensor gate_up, gate_up_grad;
  const LoraGroup& group(LoraGroupId g) const { return lora_groups[static_cast<int>(g)]; }
  LoraLinear& operator[](Projection p) { return proj[static_cast<int>(p)]; }
  const LoraLinear& operator[](Projection p) const { return proj[static_cast<int>(p)]; }
};

// The dtype of a base tensor: F32 when it trains; else a matrix (projection, embedding, LM head)
// is BF16 under FrozenWeights::BF16 (the backend must accept bf16 weights) and everything else
// takes the backend's activation dtype.
DType base_weight_dtype(const Backend& backend, bool trains, bool is_matrix, FrozenWeights frozen);

// One named tensor: where its value lives and, when it trains, its gradient.
struct NamedTensor {
  std::string name;
  Tensor* value;
  Tensor* grad;  // nullptr when frozen
  bool is_lora;
};

class LlamaWeights {
 public:
  // held_quantized: base weights the model holds block-quantised instead (docs/cpu-speed.md
  // "Quantised inference"): their Tensor gets its shape but no memory here; the model fills
  // the QuantMatrix of the LoraLinear (embed_quant, lm_head_quant).
  LlamaWeights(Backend& backend, const LlamaConfig& config, TrainMode mode,
               const std::optional<LoraSettings>& lora,
               FrozenWeights frozen = FrozenWeights::ActivationDtype,
               const std::set<std::string>& held_quantized = {});
  LlamaWeights(const LlamaWeights&) = delete;
  LlamaWeights& operator=(const LlamaWeights&) = delete;

  Tensor embed, embed_grad;            // model.embed_tokens.weight [V, C]
  Tensor final_norm, final_norm_grad;  // model.norm.weight [C]
  Tensor lm_head, lm_head_grad;        // lm_head.weight [V, C]; empty when tied
  std::vector<LlamaLayerWeights> layers;

  // The matrix the LM head multiplies by (E when tied) and its gradient (may be empty).
  const Tensor& output_weight() const { return lm_head.data ? lm_head : embed; }
  const Tensor& output_weight_grad() const { return lm_head.data ? lm_head_grad : embed_grad; }
  // Held quantised (else empty): the embedding (E), lm_head, and the LM head's matrix.
  QuantMatrix embed_quant, lm_head_quant;
  const QuantMatrix& output_weight_quant() const {
    return lm_head.shape.rank > 0 ? lm_head_quant : embed_quant;
  }

  // Base weights in HF named_parameters order, then LoRA tensors (layer, projection, A, B).
  const std::vector<NamedTensor>& named() const { return named_; }
  const NamedTensor& find(const std::string& name) const;  // throws naming `name`
  void zero_grads(Backend& backend);
  // The whole gradient arena as one flat F32 tensor (every gradient is F32).
  Tensor gradient_arena() const { return grads_.whole(DType::F32); }

 private:
  std::vector<NamedTensor> named_;
  DeviceArena values_, grads_;
};

}  // namespace smol
