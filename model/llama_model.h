// LlamaModel: the Llama network over backend ops (docs/design.md §3), with explicit forward and
// backward per layer (no autograd), LoRA inside each linear layer, and a KV cache for decoding.
//
// Layout is HF's: weights under HF names ("model.layers.0.self_attn.q_proj.weight"), rotate-half
// RoPE, LoRA A [r, in] and B [out, r] under PEFT names
// ("model.layers.0.self_attn.q_proj.lora_A.weight").
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/host_tensor.h"
#include "io/llama_config.h"
#include "kernels/backend.h"

namespace smol {

// The seven linear layers of a block, by their HF module names.
enum class Projection : uint8_t { Q, K, V, O, Gate, Up, Down };
const char* projection_name(Projection p);             // "q_proj", ..., "down_proj"
Projection parse_projection(const std::string& name);  // accepts "q_proj" or "q"; throws

struct LoraSettings {
  int64_t r = 8;
  double alpha = 16;
  double dropout = 0.0;  // on the LoRA input only, training only (docs/seed-behaviour.md §4)
  bool use_rslora = false;
  std::vector<Projection> targets{Projection::Q, Projection::V};
  double scaling() const;  // alpha / r, or alpha / sqrt(r) with rslora
  bool operator==(const LoraSettings&) const = default;
};

enum class TrainMode : uint8_t {
  Frozen,  // inference only: no gradients
  Lora,    // only LoRA A, B are trainable; input gradients flow through frozen W
  Full,    // every parameter is trainable
};

// How frozen base matrices (the projections, and the embedding / LM head when they do not train)
// are stored: in the backend's activation dtype (F32 on cpu, BF16 on cuda), or in BF16 on a
// backend that accepts bf16 weights (Backend::accepts_bf16_weights; training.cpu_precision: bf16,
// docs/cpu-speed.md "bf16 on cpu"). Norms, LoRA factors and everything that trains stay F32.
enum class FrozenWeights : uint8_t { ActivationDtype, BF16 };

// A trainable tensor with its gradient, under its HF/PEFT name. Both F32 on the backend.
struct TrainableParam {
  std::string name;
  Tensor value;
  Tensor grad;
};

// One micro-batch of rows, each row an independent sequence (docs/seed-behaviour.md §2 features).
// labels are HF-style, unshifted: the loss at position t predicts labels[t+1] from ids[..t];
// -100 = not supervised. Rows may have different lengths; the model packs them.
struct TokenRow {
  std::vector<int32_t> input_ids;
  std::vector<int32_t> labels;  // empty = no loss for this row
};

struct ForwardResult {
  double loss_sum = 0;     // Σ token cross-entropy over supervised positions
  int64_t supervised = 0;  // number of supervised positions
};

// What an evaluation forward returns (teacher-forced metrics, docs/design.md §6): the loss as
// ForwardResult, split per row too, and the model's greedy prediction at every input position.
struct EvalForward {
  double loss_sum = 0;     // Σ token cross-entropy over supervised positions, all rows
  int64_t supervised = 0;  // number of supervised positions, all rows
  // Per input position, rows back to back (row r's positions start at Σ len of earlier rows):
  // the argmax over the vocabulary of the logits at that position (first maximum wins).
  std::vector<int32_t> argmax;
  std::vector<double> row_loss_sum;     // per row: Σ CE over its supervised positions
  std::vector<int64_t> row_supervised;  // per row: its supervised positions
};

class LlamaModel {
 public:
  // quantized: base weights to hold block-quantised (LoadOptions::keep_quantized; the 7
  // projections, the embedding, lm_head), for inference on a backend whose supports_quantized()
  // accepts their formats (docs/cpu-speed.md "Quantised inference"). Their dense Tensors get no
  // memory; load_weights() then skips them; the backward (training) refuses to run.
  LlamaModel(Backend& backend, const LlamaConfig& config, TrainMode mode,
             std::optional<LoraSettings> lora = std::nullopt,
             FrozenWeights frozen = FrozenWeights::ActivationDtype,
             const QuantizedTensorMap* quantized = nullptr);
  ~LlamaModel();
  LlamaModel(const LlamaModel&) = delete;
  LlamaModel& operator=(const LlamaModel&) = delete;

  const LlamaConfig& config() const;
  TrainMode mode() const;
  const std::optional<LoraSettings>& lora() const;
  Backend& backend();

  // ---- parameters --------------------------------------------------------------------------
  // Loads every base weight from HF-named host tensors; throws naming the missing/misshapen one.
  // lm_head.weight is optional when embeddings are tied. Weights held quantised are skipped.
  void load_weights(const HostTensorMap& weights);
  // Random weights for tests and demos: normal(0, init_std) linear/embedding weights, norms 1.
  void init_random(uint64_t seed, float init_std = 0.02f);
  // Reads or replaces one tensor by name (base weights and LoRA A/B). Shapes must match.
  // A weight held quantised reads back dequantised; writing one throws.
  HostTensor read_tensor(const std::string& name) const;
  void write_tensor(const std::string& name, const HostTensor& value);
  std::vector<std::string> tensor_names() const;  // base weights, then LoRA tensors
  // Trainable tensors in a fixed order (layer by layer, q k v o gate up down, A before B).
  std::vector<TrainableParam> trainable_params();
  void zero_grads();
  // Every gradient as one flat F32 view of the gradient arena (the gaps between tensors stay
  // zero): what data parallelism all-reduces in one call (docs/design.md §8).
  Tensor gradient_arena();
  // Called during a backward right after layer l's parameter gradients are complete (layers run
  // last to first): data parallelism starts reducing that layer's bucket there. Empty to clear.
  void set_layer_backward_hook(std::function<void(size_t layer)> hook);

  // Grouped LoRA (docs/design.md §2.7, default on): projections that share an input and all
  // have adapters (q, k, v; gate, up) run one stacked down-projection matmul in the forward and
  // one matmul each for the stacked A gradient and the input gradient in the backward, instead
  // of one per projection. Equal to the per-projection path up to fp32 summation order. Training
  // with LoRA dropout > 0 always runs per projection (each draws its own mask, seed-behaviour.md
  // §4). Off: one adapter at a time, the reference the tests compare the grouped path with.
  void set_lora_grouping(bool on);
  bool lora_grouping() const;
  // The fusions of docs/design.md §2.9 (default on; the environment variable SMOL_FUSION=0 turns
  // them off at construction, for A/B timing): the residual adds inside the o_proj and down_proj
  // GEMMs (each writes h + x·Wᵀ (+ LoRA) into the residual stream, the old residual as the
  // matmul's addend, then a plain RMSNorm), and, where gate and up have no adapters, the SwiGLU
  // backward writing [dgate | dup] for one GEMM against [W_gate; W_up]. Off: each projection
  // writes a scratch tensor that add_rmsnorm_forward adds to the residual, and dx of gate/up
  // takes two GEMMs (each one more bf16 rounding on cuda): the tests' reference. The fused RoPE
  // ops of §2.7 follow the same switch: on, attention_rope_backward and (decoding)
  // rope_append_kv; off, attention_backward + rope_qk_backward and rope_qk_forward + scatter_rows.
  void set_fusion(bool on);
  bool fusion() const;

  // ---- training ----------------------------------------------------------------------------
  // Forward over the packed rows; if the mode trains, also the backward, accumulating
  // grads += loss_scale · ∂(Σ token CE)/∂θ (the caller passes 1/supervised tokens of the
  // whole optimizer step, docs/design.md §4). dropout_seed selects this micro-batch's LoRA dropout.
  ForwardResult forward_backward(const std::vector<TokenRow>& rows, float loss_scale,
                                 uint64_t dropout_seed, bool training = true);
  // forward_backward without a host wait: the micro-batch's Σ token CE is added to an
  // accumulator on the device instead of being downloaded, and only the supervised count
  // (known on the host) is returned. read_loss() returns the Σ accumulated since the previous
  // read_loss() — one host wait, once per optimizer step — and resets it. The accumulator is
  // fp32, each micro-batch's sum added in double then rounded: ≤ 2^-24 relative per add.
  int64_t forward_backward_accumulate(const std::vector<TokenRow>& rows, float loss_scale,
                                      uint64_t dropout_seed, bool training = true);
  double read_loss();
  // The accumulator read_loss() reads, F32 [1] on the device: for callers that keep the loss on
  // the device past the step (engine/train/step_losses.h) — they copy it and zero it themselves.
  Tensor loss_accumulator() const;
  // The CUDA graph a whole optimizer step is recorded into (engine/train_step.cpp `train_step`,
  // Backend::run_as_graph, docs/design.md §2.8), kept with the model between steps as the decode
  // step's graph is; empty until the first step that records one.
  std::unique_ptr<Backend::Graph>& step_graph();
  // Forward only; returns logits [Σ len, vocab] on the host (row by row, packed) and the loss.
  ForwardResult forward_logits(const std::vector<TokenRow>& rows, std::vector<float>* logits);
  // Evaluation forward: no dropout, no gradients, and the [T, vocab] logits never reach the
  // host (the LM head runs in chunks of rows as in training; argmax and per-token losses are
  // computed on the backend and downloaded once, 8 bytes per token).
  EvalForward forward_eval(const std::vector<TokenRow>& rows);

  // Allocates the activation buffers for a batch of `tokens` packed tokens, as the first forward
  // (with `training`: forward and backward) of that size would, without running it: a model's
  // memory plan is then readable from Backend::memory_stats() (docs/design.md §2.9; a step on
  // cuda-emu at SmolLM2's size would take far too long).
  // With `training`, `tokens` also raises the least capacity of every later training plan to
  // at least itself: the trainer plans once for its largest micro-batch
  // (engine/train/trainer.cpp), and each graph-recorded step makes sure of its own before the
  // capture (engine/train_step.cpp).
  void plan_activations(int64_t tokens, bool training);
  // How many times the activation buffers were planned (a re-plan frees and allocates them).
  int64_t activation_plans() const;

  // ---- inference ---------------------------------------------------------------------------
  // A KV cache for up to `slots` sequences of up to `max_len` tokens each.
  void reset_cache(int32_t slots, int32_t max_len);
  // Appends tokens to the given cache slots (one new-token list per slot) and returns the
  // logits of each slot's last new token, [slots.size(), vocab] on the host.
  std::vector<float> decode(const std::vector<int32_t>& slots,
                            const std::vector<std::vector<int32_t>>& new_tokens);
  // decode followed by a greedy pick on the device (argmax, first maximum wins, as
  // sample_token at temperature 0): only the chosen ids come back to the host.
  std::vector<int32_t> decode_greedy(const std::vector<int32_t>& slots,
                                     const std::vector<std::vector<int32_t>>& new_tokens);
  // decode followed by a sampled pick on the device (Backend::sample_tokens: the exact rule of
  // kernels/token_sampling.h at temperature > 0 and top_p, slot i drawing with uniforms[i]):
  // only the chosen ids come back. A slot whose logits are not finite gets −(i + 1), i the
  // first such token id.
  std::vector<int32_t> decode_sampled(const std::vector<int32_t>& slots,
                                      const std::vector<std::vector<int32_t>>& new_tokens,
                                      const std::vector<float>& uniforms, float temperature,
                                      float top_p);
  int32_t cache_length(int32_t slot) const;
  // Forgets a slot's tokens past `length` (0 = empty slot, reusable for a new sequence).
  void truncate_cache(int32_t slot, int32_t length);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace smol
