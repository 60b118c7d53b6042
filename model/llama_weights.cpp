// LlamaWeights: plans and allocates the parameter and gradient arenas, and names every tensor.
#include "model/llama_weights.h"

#include <algorithm>
#include <optional>

namespace smol {

namespace {

std::string layer_prefix(size_t layer) {
  return "model.layers." + std::to_string(layer) + ".";
}

std::string projection_module(Projection p) {
  const bool attention =
      p == Projection::Q || p == Projection::K || p == Projection::V || p == Projection::O;
  return std::string(attention ? "self_attn." : "mlp.") + projection_name(p);
}

// The group a projection belongs to, if any (o_proj and down_proj have their own inputs).
std::optional<LoraGroupId> group_of(Projection p) {
  if (p == Projection::Q || p == Projection::K || p == Projection::V) return LoraGroupId::Qkv;
  if (p == Projection::Gate || p == Projection::Up) return LoraGroupId::GateUp;
  return std::nullopt;
}

}  // namespace

std::vector<Projection> lora_group_projections(LoraGroupId group) {
  if (group == LoraGroupId::Qkv) return {Projection::Q, Projection::K, Projection::V};
  return {Projection::Gate, Projection::Up};
}

DType base_weight_dtype(const Backend& backend, bool trains, bool is_matrix, FrozenWeights frozen) {
  if (trains) return DType::F32;  // the fp32 master
  if (is_matrix && frozen == FrozenWeights::BF16) {
    SMOL_CHECK(backend.accepts_bf16_weights(), "bf16 frozen weights: the ", backend.name(),
               " backend does not accept BF16 weights");
    return DType::BF16;
  }
  return backend.activation_dtype();
}

LlamaWeights::LlamaWeights(Backend& backend, const LlamaConfig& config, TrainMode mode,
                           const std::optional<LoraSettings>& lora, FrozenWeights frozen,
                           const std::set<std::string>& held_quantized) {
  const bool full = mode == TrainMode::Full;
  const bool lora_trains = mode != TrainMode::Frozen;
  const int64_t C = config.hidden_size, F = config.intermediate_size, V = config.vocab_size;
  const int64_t Q = config.q_dim(), KV = config.kv_dim();
  layers.resize(static_cast<size_t>(config.num_hidden_layers));

  // Base weights, in HF named_parameters order (the order PyTorch's optimizer sees them).
  // packed: directly after the previously planned tensor (no alignment gap), see below.
  auto base = [&](const std::string& name, Tensor* value, Tensor* grad, Shape shape,
                  bool packed = false) {
    const bool is_matrix = shape.rank == 2;  // norms are [C]
    const DType dtype = base_weight_dtype(backend, full, is_matrix, frozen);
    if (held_quantized.count(name)) {  // no dense copy: shape only (see the header)
      *value = Tensor{nullptr, dtype, shape};
      named_.push_back({name, value, nullptr, false});
      return;
    }
    if (packed) {
      values_.plan_packed(value, dtype, shape);
      if (full) grads_.plan_packed(grad, DType::F32, shape);
    } else {
      values_.plan(value, dtype, shape);
      if (full) grads_.plan(grad, DType::F32, shape);
    }
    named_.push_back({name, value, full ? grad : nullptr, false});
  };
  base("model.embed_tokens.weight", &embed, &embed_grad, Shape{V, C});
  const std::array<Shape, kNumProjections> shapes{
      Shape{Q, C}, Shape{KV, C}, Shape{KV, C}, Shape{C, Q}, Shape{F, C}, Shape{F, C}, Shape{C, F}};
  for (size_t l = 0; l < layers.size(); ++l) {
    LlamaLayerWeights& layer = layers[l];
    for (int p = 0; p < kNumProjections; ++p) {
      LoraLinear& linear = layer.proj[p];
      const std::string name =
          layer_prefix(l) + projection_module(static_cast<Projection>(p)) + ".weight";
      // W_up right after W_gate, no gap (docs/design.md §2.9): [W_gate; W_up] is one dense
      // [2F, C] block in both arenas, the weights of one strided-batched GEMM at stride F·C.
      // Only when W_gate was planned (not held quantised) and its bytes keep W_up on the arena's
      // alignment (F·C·2 a multiple of 256 for bf16: SmolLM2's 1536·576 is); else W_up is
      // planned as usual and the batch runs at whatever stride the arena gives it.
      const Projection proj = static_cast<Projection>(p);
      const std::string gate_name =
          layer_prefix(l) + projection_module(Projection::Gate) + ".weight";
      const bool packed = proj == Projection::Up && !held_quantized.count(gate_name) &&
                          !held_quantized.count(name) &&
                          static_cast<size_t>(F * C) * 2 % DeviceArena::kAlignment == 0;
      base(name, &linear.weight, &linear.weight_grad, shapes[p], packed);
    }
    base(layer_prefix(l) + "input_layernorm.weight", &layer.input_norm, &layer.input_norm_grad,
         Shape{C});
    base(layer_prefix(l) + "post_attention_layernorm.weight", &layer.post_norm,
         &layer.post_norm_grad, Shape{C});
  }
  base("model.norm.weight", &final_norm, &final_norm_grad, Shape{C});
  if (!config.tie_word_embeddings) base("lm_head.weight", &lm_head, &lm_head_grad, Shape{V, C});

  // LoRA adapters (docs/formats.md §4 names, without PEFT's base_model.model. prefix).
  if (lora) {
    SMOL_CHECK(lora->r > 0 && lora->r <= 4096, "LoRA rank r = ", lora->r, " is not in [1, 4096]");
    SMOL_CHECK(lora->dropout >= 0.0 && lora->dropout < 1.0, "LoRA dropout ", lora->dropout,
               " is not in [0, 1)");
    auto targeted = [&](Projection p) {
      return std::find(lora->targets.begin(), lora->targets.end(), p) != lora->targets.end();
    };
    for (size_t l = 0; l < layers.size(); ++l) {
      // A factors first: an adapted projection whose predecessor in the same group is adapted too
      // is packed right after it, so the group's A factors form one dense [ΣR, in] block (the
      // groups are runs of consecutive projections, so an adapter between them cannot intervene).
      // Only when the predecessor's bytes keep the next factor on the arena's alignment (r·in·4
      // a multiple of 256: every in that is a multiple of 64, SmolLM2's included); otherwise the
      // group stays unpacked and runs per projection.
      std::optional<LoraGroupId> previous_group;
      size_t previous_bytes = 0;
      for (int p = 0; p < kNumProjections; ++p) {
        const Projection proj = static_cast<Projection>(p);
        if (!targeted(proj)) continue;
        LoraLinear& linear = layers[l].proj[p];
        const Shape a_shape{lora->r, shapes[p][1]};
        const std::optional<LoraGroupId> group = group_of(proj);
        if (group && group == previous_group && previous_bytes % DeviceArena::kAlignment == 0) {
          values_.plan_packed(&linear.lora_A, DType::F32, a_shape);
          grads_.plan_packed(&linear.lora_A_grad, DType::F32, a_shape);
        } else {
          values_.plan(&linear.lora_A, DType::F32, a_shape);
          grads_.plan(&linear.lora_A_grad, DType::F32, a_shape);
        }
        previous_group = group;
        previous_bytes = static_cast<size_t>(a_shape.numel()) * sizeof(float);
        if (group) layers[l].lora_groups[static_cast<int>(*group)].members.push_back(proj);
      }
      for (int p = 0; p < kNumProjections; ++p) {
        const Projection proj = static_cast<Projection>(p);
        if (!targeted(proj)) continue;
        LoraLinear& linear = layers[l].proj[p];
        linear.scaling = static_cast<float>(lora->scaling());
        linear.dropout = static_cast<float>(lora->dropout);
        const std::string stem = layer_prefix(l) + projection_module(proj);
        const Shape b_shape{shapes[p][0], lora->r};
        values_.plan(&linear.lora_B, DType::F32, b_shape);
        grads_.plan(&linear.lora_B_grad, DType::F32, b_shape);
        named_.push_back({stem + ".lora_A.weight", &linear.lora_A,
                          lora_trains ? &linear.lora_A_grad : nullptr, true});
        named_.push_back({stem + ".lora_B.weight", &linear.lora_B,
                          lora_trains ? &linear.lora_B_grad : nullptr, true});
      }
    }
  }
  values_.allocate(backend);
  grads_.allocate(backend);
  // The stacked A of each group: views over its members' packed lora_A (lora_A_grad).
  for (LlamaLayerWeights& layer : layers) {
    for (LoraGroup& group : layer.lora_groups) {
      if (group.members.empty()) continue;
      const LoraLinear& first = layer[group.members.front()];
      const int64_t in = first.in_features();
      int64_t rows = 0;
      bool packed = true;
      for (Projection p : group.members) {
        packed = packed && layer[p].lora_A.data == first.lora_A.as<float>() + rows * in &&
                 layer[p].lora_A_grad.data == first.lora_A_grad.as<float>() + rows * in;
        rows += layer[p].rank();
      }
      if (!packed) continue;  // unaligned sizes: the group runs per projection (A stays empty)
      group.A = Tensor{first.lora_A.data, DType::F32, Shape{rows, in}};
      group.A_grad = Tensor{first.lora_A_grad.data, DType::F32, Shape{rows, in}};
    }
  }
  // [W_gate; W_up] as one view where W_up was packed right after W_gate.
  for (LlamaLayerWeights& layer : layers) {
    const LoraLinear &gate = layer[Projection::Gate], &up = layer[Projection::Up];
    const size_t bytes = static_cast<size_t>(gate.weight.numel()) * dtype_size(gate.weight.dtype);
    if (!gate.weight.data || up.weight.data != static_cast<char*>(gate.weight.data) + bytes)
      continue;
    const Shape stacked{2 * gate.weight.shape[0], gate.weight.shape[1]};
    layer.gate_up = Tensor{gate.weight.data, gate.weight.dtype, stacked};
    if (full && up.weight_grad.data == gate.weight_grad.as<float>() + gate.weight_grad.numel())
      layer.gate_up_grad = Tensor{gate.weight_grad.data, DType::F32, stacked};
  }
  // A frozen W must not receive a gradient even if a grad view was planned (it was not).
  if (!full)
    for (LlamaLayerWeights& layer : layers)
      for (LoraLinear& linear : layer.proj) linear.weight_grad = Tensor{};
}

const NamedTensor& LlamaWeights::find(const std::string& name) const {
  for (const NamedTensor& t : named_)
    if (t.name == name) return t;
  throw_error("no tensor named '", name, "' in this model (", named_.size(), " tensors, e.g. '",
              named_.front().name, "')");
}

void LlamaWeights::zero_grads(Backend& backend) {
  for (const NamedTensor& t : named_)
    if (t.grad) backend.fill_zero(*t.grad);
}

}  // namespace smol
