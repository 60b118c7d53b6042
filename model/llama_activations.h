// LlamaActivations: the buffers a forward (and backward) over T packed tokens works in, carved
// from one arena and reused across steps; re-planned only when a batch is longer than any
// before (llm.c style, docs/design.md §2).
//
// Training keeps every layer's activations for the backward (per layer: input residual,
// rmsnorm rstd and outputs, q, k, v after RoPE, attention out + lse, residual after attention,
// second norm, gate, up, swiglu out, LoRA u = drop(x)·Aᵀ). Inference keeps one layer's worth,
// reused by every layer.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "io/llama_config.h"
#include "model/device_arena.h"
#include "model/lora_linear.h"

namespace smol {

struct LayerActivations {
  Tensor ln1, rstd1;     // input_layernorm output [T, C], 1/rms F32 [T]
  Tensor q, k, v;        // after RoPE: [T, Hq·D], [T, Hkv·D], [T, Hkv·D]
  Tensor att, lse;       // attention out (o_proj input) [T, Hq·D], lse F32 [T, Hq]
  Tensor resid_mid;      // residual after attention [T, C] (post_attention_layernorm input)
  Tensor ln2, rstd2;     // post_attention_layernorm output [T, C], rstd F32 [T]
  Tensor gate, up, act;  // [T, F]; act = silu(gate) ⊙ up (down_proj input)
  // u [T, r] per projection with an adapter, or (grouped LoRA, docs/design.md §2.7) the stacked
  // uᵀ [ΣR, T] of a group spread over its projections' buffers, which are planned back to back.
  std::array<Tensor, 7> lora_low;
};

// Gradients flowing backwards through one layer at a time (training only).
struct BackwardScratch {
  Tensor dresid;            // ∂L/∂residual stream [T, C]
  Tensor dln;               // ∂L/∂(norm output) [T, C]
  Tensor dq, dk, dv;        // [T, Hq·D], [T, Hkv·D] x2
  Tensor datt;              // [T, Hq·D]
  Tensor dact, dgate, dup;  // [T, F]; dup planned right after dgate
  Tensor dgate_up;          // [T, 2F] over dgate and dup: the concatenated SwiGLU backward
  Tensor dnorm_unused;      // F32 [C]: sink for norm-weight grads of frozen norms
};

struct LlamaActivations {
  // What the model needs planned beyond the defaults; set before ensure() (a change re-plans).
  struct Options {
    // proj_out [T, C]: the o_proj / down_proj output of the unfused path
    // (LlamaModel::set_fusion(false), the tests' reference; docs/design.md §2.9).
    bool unfused = false;
    // Training keeps the SwiGLU output act [T, F] of every layer only when down_proj's backward
    // reads it (W_down trains, or down_proj has an adapter); otherwise one buffer serves every
    // layer (docs/design.md §2.9: nothing reads act after the down-projection's forward).
    bool keep_mlp_act = true;
    // Likewise post_attention_layernorm's output ln2 [T, C], the input of gate and up: kept per
    // layer only when their backward reads it (W trains, or gate / up have an adapter).
    bool keep_mlp_input = true;
    // The LM head's weight trains (full fine-tuning): its chunk may be larger, so the fp32
    // weight gradient is read and written fewer times (Backend::lm_head_chunk_rows).
    bool lm_head_trains = false;
    bool operator==(const Options&) const = default;
  };
  Options options;

  int64_t capacity = 0;  // tokens the buffers hold
  bool training = false;
  // The least capacity of a training plan (LlamaModel::plan_activations): a run that planned for
  // its largest micro-batch keeps that plan whatever order the batches come in, and returns to
  // it after an evaluation batch too large for it (which plans inference buffers meanwhile).
  int64_t reserved_tokens = 0;
  int64_t plans = 0;  // how many times ensure() planned the buffers (tests, docs/design.md §2.9)
  int64_t lm_chunk = 0;  // rows of the LM-head chunk

  std::vector<Tensor> resid;             // residual stream entering each layer (+ final): n+1 or 1
  std::vector<LayerActivations> layers;  // n (training) or 1 (inference)
  Tensor ids, positions, targets;        // I32 [T]
  Tensor proj_out;                       // [T, C] with options.unfused, else empty
  Tensor lnf, rstdf;                     // final norm output [T, C], rstd F32 [T]
  Tensor logits;                         // LM-head chunk [lm_chunk, V] (dlogits in place)
  Tensor losses;                         // F32 [T]
  Tensor argmax;                         // I32 [T]: per-token argmax of the logits (eval)
  Tensor last_rows;                      // [lm_chunk, C]: gathered last-token rows for decoding
  LoraScratch lora;
  BackwardScratch grad;

  // The residual entering layer `l` (l = n: the final one).
  Tensor& resid_at(size_t l) { return training ? resid[l] : resid[0]; }
  LayerActivations& layer(size_t l) { return training ? layers[l] : layers[0]; }

  // Makes sure buffers exist for T tokens in the given regime (training or not) and options.
  void ensure(Backend& backend, const LlamaConfig& config, int64_t lora_rank, int64_t T,
              bool for_training);

 private:
  DeviceArena arena_;
  Options planned_;  // the options the buffers were planned with
};

// A view of the first rows of `t` with shape `shape` (numel must fit): buffers are planned for
// the capacity, ops see the current T.
Tensor leading(const Tensor& t, Shape shape);

}  // namespace smol
