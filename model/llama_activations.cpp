// LlamaActivations: sizing and (re)allocation of the forward/backward buffers.
#include "model/llama_activations.h"

#include <algorithm>

namespace smol {

Tensor leading(const Tensor& t, Shape shape) {
  SMOL_CHECK(shape.numel() <= t.numel(), "internal: view ", shape.str(), " exceeds buffer ",
             t.shape.str());
  return Tensor{t.data, t.dtype, shape};
}

void LlamaActivations::ensure(Backend& backend, const LlamaConfig& config, int64_t lora_rank,
                              int64_t T, bool for_training) {
  // Reuse when big enough and of the right regime; grow geometrically to avoid re-planning at
  // every slightly longer batch.
  // Training buffers also serve inference (an eval between training steps reallocates nothing).
  if (capacity > 0 && T <= capacity && (for_training == training || training) &&
      options == planned_)
    return;
  if (options != planned_ && for_training == training && capacity > 0) {
    capacity = std::max(T, capacity);  // re-planned for new options at the same size
  } else if (for_training != training || capacity == 0) {
    capacity = T;
  } else {
    capacity = std::max<int64_t>(T, capacity + capacity / 2);
  }
  if (for_training) capacity = std::max(capacity, reserved_tokens);
  training = for_training;
  planned_ = options;
  ++plans;
  const DType act = backend.activation_dtype();
  const int64_t C = config.hidden_size, F = config.intermediate_size, V = config.vocab_size;
  const int64_t Q = config.q_dim(), KV = config.kv_dim(), Hq = config.num_attention_heads;
  const int64_t n = config.num_hidden_layers;
  const int64_t cap = capacity;
  lm_chunk = std::min<int64_t>(cap, backend.lm_head_chunk_rows(training && options.lm_head_trains));

  arena_.reset();
  resid.assign(static_cast<size_t>(training ? n + 1 : 1), Tensor{});
  layers.assign(static_cast<size_t>(training ? n : 1), LayerActivations{});
  grad = BackwardScratch{};
  for (Tensor& r : resid) arena_.plan(&r, act, Shape{cap, C});
  // act and ln2 of every layer in one buffer each when no backward reads them (Options).
  Tensor shared_act, shared_ln2;
  if (training && !options.keep_mlp_act) arena_.plan(&shared_act, act, Shape{cap, F});
  if (training && !options.keep_mlp_input) arena_.plan(&shared_ln2, act, Shape{cap, C});
  for (LayerActivations& a : layers) {
    arena_.plan(&a.ln1, act, Shape{cap, C});
    arena_.plan(&a.rstd1, DType::F32, Shape{cap});
    arena_.plan(&a.q, act, Shape{cap, Q});
    arena_.plan(&a.k, act, Shape{cap, KV});
    arena_.plan(&a.v, act, Shape{cap, KV});
    arena_.plan(&a.att, act, Shape{cap, Q});
    arena_.plan(&a.lse, DType::F32, Shape{cap, Hq});
    arena_.plan(&a.resid_mid, act, Shape{cap, C});
    if (!training || options.keep_mlp_input) arena_.plan(&a.ln2, act, Shape{cap, C});
    arena_.plan(&a.rstd2, DType::F32, Shape{cap});
    arena_.plan(&a.gate, act, Shape{cap, F});
    arena_.plan(&a.up, act, Shape{cap, F});
    if (!training || options.keep_mlp_act) arena_.plan(&a.act, act, Shape{cap, F});
    // Back to back: a LoRA group's stacked uᵀ [ΣR, T] spans the buffers of its projections
    // (model/llama_model.cpp, group_low).
    if (lora_rank > 0) {
      arena_.plan(&a.lora_low[0], act, Shape{cap, lora_rank});
      for (size_t p = 1; p < a.lora_low.size(); ++p)
        arena_.plan_packed(&a.lora_low[p], act, Shape{cap, lora_rank});
    }
  }
  arena_.plan(&ids, DType::I32, Shape{cap});
  arena_.plan(&positions, DType::I32, Shape{cap});
  arena_.plan(&targets, DType::I32, Shape{cap});
  arena_.plan(&lnf, act, Shape{cap, C});
  arena_.plan(&rstdf, DType::F32, Shape{cap});
  arena_.plan(&logits, act, Shape{lm_chunk, V});
  arena_.plan(&losses, DType::F32, Shape{cap});
  arena_.plan(&argmax, DType::I32, Shape{cap});
  arena_.plan(&last_rows, act, Shape{lm_chunk, C});
  if (lora_rank > 0) {
    arena_.plan(&lora.dropped, act, Shape{cap, std::max(C, F)});
    // A group's stacked gᵀ [ΣR, T] in the grouped backward: at most 3 members (q, k, v).
    arena_.plan(&lora.low, act, Shape{cap, 3 * lora_rank});
  }
  if (training) {
    arena_.plan(&grad.dresid, act, Shape{cap, C});
    arena_.plan(&grad.dln, act, Shape{cap, C});
    arena_.plan(&grad.dq, act, Shape{cap, Q});
    arena_.plan(&grad.dk, act, Shape{cap, KV});
    arena_.plan(&grad.dv, act, Shape{cap, KV});
    arena_.plan(&grad.datt, act, Shape{cap, Q});
    arena_.plan(&grad.dact, act, Shape{cap, F});
    arena_.plan(&grad.dgate, act, Shape{cap, F});
    arena_.plan_packed(&grad.dup, act, Shape{cap, F});  // dgate_up spans both
    arena_.plan(&grad.dnorm_unused, DType::F32, Shape{C});
  }
  if (options.unfused) arena_.plan(&proj_out, act, Shape{cap, C});
  arena_.allocate(backend);
  if (training) grad.dgate_up = Tensor{grad.dgate.data, act, Shape{cap, 2 * F}};
  for (LayerActivations& a : layers) {
    if (training && !options.keep_mlp_act) a.act = shared_act;
    if (training && !options.keep_mlp_input) a.ln2 = shared_ln2;
  }
}

}  // namespace smol
