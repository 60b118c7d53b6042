// LlamaModel: the Llama forward and backward over backend ops (docs/design.md §3-4, docs/formats.md
// §2), llm.c style: parameters and activations live in arenas, every layer has an explicit forward
// and backward, no autograd.
//
// Forward over T packed tokens (rows back to back, positions restart per row):
//   h = E[ids]; per layer: a = rmsnorm(h); q,k,v = a·W{q,k,v}ᵀ (+LoRA); RoPE(q,k);
//   h += attention(q,k,v)·Woᵀ; b = rmsnorm(h); h += W_down(silu(W_gate b) ⊙ W_up b);
//   logits = rmsnorm(h)·Eᵀ. The residual adds run inside the o_proj and down_proj GEMMs (the
//   old residual as the matmul's addend, docs/design.md §2.9), each followed by a plain RMSNorm.
// The LM head and cross-entropy run in chunks of rows so the [T, V] logits never exist in
// training: the backend's lm_head_cross_entropy (per chunk, logits = h·Eᵀ, dlogits in place,
// dh = dlogits·E, dE += dlogitsᵀ·h).
#include "model/llama_model.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <map>
#include <set>
#include <span>
#include <string>

#include "common/splitmix64.h"
#include "model/host_transfer.h"
#include "model/kv_cache.h"
#include "model/llama_activations.h"
#include "model/llama_weights.h"
#include "model/packed_batch.h"

namespace smol {

namespace {

// A 1-D slice [begin, begin+count) of a 1-D tensor.
Tensor slice1d(const Tensor& t, int64_t begin, int64_t count) {
  SMOL_CHECK(begin >= 0 && begin + count <= t.numel(), "internal: slice [", begin, ", ",
             begin + count, ") of ", t.shape.str());
  return Tensor{static_cast<char*>(t.data) + begin * dtype_size(t.dtype), t.dtype, Shape{count}};
}

int64_t lora_rank_of(const std::optional<LoraSettings>& lora) {
  return lora ? lora->r : 0;
}

std::set<std::string> names_of(const QuantizedTensorMap* quantized) {
  std::set<std::string> names;
  if (quantized)
    for (const auto& [name, q] : *quantized) names.insert(name);
  return names;
}

}  // namespace

struct LlamaModel::Impl {
  Backend& backend;
  LlamaConfig config;
  TrainMode mode;
  std::optional<LoraSettings> lora;
  LlamaWeights weights;
  LlamaActivations acts;
  KvCache cache;
  // Σ token CE of micro-batches run with deferred loss, F32 [1] on the device (read_loss()).
  Buffer loss_acc_buffer;
  // decode's logits in F32 whatever the activation dtype: greedy decoding compares logits a
  // bf16 rounding apart (0.125 at 25), and on cuda cuBLASLt writes fp32 from bf16 inputs at no
  // cost. Grown on demand: [n, V] for decode (every slot's logits stay until the download after
  // the step's graph), [min(n, lm_chunk), V] for decode_greedy (argmax per chunk).
  Buffer decode_logits_buffer;
  // A decode step's row indices, I32 on the device (uploaded with the batch): [0, T) the cache
  // row each new token's key/value goes to (scatter_rows), [T, T + n) the row of each slot's
  // last new token (gather_rows before the LM head). decode_kv_rows views the first part while
  // forward_layers(use_cache) runs.
  Buffer decode_index_buffer;
  Tensor decode_kv_rows;
  // A sampled decode step's uniforms, F32 [n] on the device (uploaded with the batch).
  Buffer decode_uniform_buffer;
  // The decode step's graph (Backend::run_as_graph, docs/design.md §2.8), kept between steps.
  std::unique_ptr<Backend::Graph> decode_graph;
  // The optimizer step's graph (step_graph(), engine/train_step.cpp), kept between steps.
  std::unique_ptr<Backend::Graph> step_graph;
  Tensor loss_acc;
  std::function<void(size_t)> layer_backward_hook;  // data parallelism's bucket trigger
  bool lora_grouping = true;                        // set_lora_grouping
  // Weights held block-quantised (docs/cpu-speed.md "Quantised inference"): their blocks on the
  // device, the matrix each LoraLinear / the LM head reads, and the embedding's blocks on the
  // host too, so a lookup dequantises just the rows it reads (embedding_rows: their fp32 values).
  std::map<std::string, Buffer> quant_buffers;
  std::map<std::string, QuantMatrix> quant_by_name;
  std::vector<uint8_t> embed_host_blocks;
  std::vector<float> embedding_rows;

  Impl(Backend& b, const LlamaConfig& c, TrainMode m, std::optional<LoraSettings> l,
       FrozenWeights frozen, const QuantizedTensorMap* quantized)
      : backend(b),
        config(c),
        mode(m),
        lora(std::move(l)),
        weights(b, c, m, lora, frozen, names_of(quantized)) {
    loss_acc_buffer = backend.allocate(sizeof(float));  // zero-filled
    loss_acc = loss_acc_buffer.view(DType::F32, Shape{1});
    if (quantized) hold_quantized(*quantized);
    // A projection's backward reads its input only for dW or its adapter (docs/design.md §2.9):
    // down_proj's input act, and gate / up's input ln2.
    auto adapted = [&](Projection p) {
      return lora &&
             std::find(lora->targets.begin(), lora->targets.end(), p) != lora->targets.end();
    };
    const bool full = mode == TrainMode::Full;
    acts.options.keep_mlp_act = full || adapted(Projection::Down);
    acts.options.keep_mlp_input = full || adapted(Projection::Gate) || adapted(Projection::Up);
    acts.options.lm_head_trains = full;
    const char* fusion = std::getenv("SMOL_FUSION");  // A/B switch (scripts/gpu-check.sh)
    acts.options.unfused = fusion && std::string(fusion) == "0";
  }

  bool any_quantized() const { return !quant_by_name.empty(); }

  // Uploads each quantised tensor and points its consumer at it.
  void hold_quantized(const QuantizedTensorMap& quantized) {
    SMOL_CHECK(mode != TrainMode::Full || quantized.empty(),
               "full fine-tuning trains the base weights: they cannot be held quantised (set "
               "model.weights_in_memory: fp32)");
    std::map<std::string, QuantMatrix*> slots{{"model.embed_tokens.weight", &weights.embed_quant},
                                              {"lm_head.weight", &weights.lm_head_quant}};
    for (size_t l = 0; l < weights.layers.size(); ++l)
      for (int p = 0; p < kNumProjections; ++p) {
        const Projection proj = static_cast<Projection>(p);
        const bool attention = p <= static_cast<int>(Projection::O);
        slots["model.layers." + std::to_string(l) + (attention ? ".self_attn." : ".mlp.") +
              projection_name(proj) + ".weight"] = &weights.layers[l][proj].quant;
      }
    for (const auto& [name, q] : quantized) {
      const auto slot = slots.find(name);
      SMOL_CHECK(slot != slots.end(), "tensor '", name,
                 "' cannot be held quantised (only the projections, the embedding and lm_head)");
      const NamedTensor& dense = weights.find(name);
      SMOL_CHECK(q.shape == dense.value->shape, "tensor '", name, "': shape ", q.shape.str(),
                 " does not match the model's ", dense.value->shape.str());
      SMOL_CHECK(backend.supports_quantized(q.format), "the ", backend.name(),
                 " backend has no quantised kernel for ", quant_format_traits(q.format).name,
                 " (tensor '", name,
                 "'); load the weights dequantised (model.weights_in_memory: ", "fp32)");
      // In the layout the backend's kernels prefer (cpu: Q4_1 rows in block pairs), uploaded as
      // I32 words: the blob padded to a multiple of 4 bytes.
      const QuantFormat layout = backend.preferred_quant_layout(q.format, q.shape[1]);
      std::vector<uint8_t> padded;
      if (layout == QuantFormat::Q4_1_R2 && q.format == QuantFormat::Q4_1) {
        padded.resize(q.blocks.size());
        repack_q4_1_pairs(q.blocks.data(), q.shape[0], q.shape[1], padded.data());
      } else {
        SMOL_CHECK(layout == q.format, "internal: no repacking from ",
                   quant_format_traits(q.format).name, " to ", quant_format_traits(layout).name);
        padded = q.blocks;
      }
      padded.resize((padded.size() + 3) / 4 * 4);
      Buffer buffer = backend.allocate(padded.size());
      backend.upload(buffer.view(DType::I32, Shape{static_cast<int64_t>(padded.size() / 4)}),
                     padded.data());
      *slot->second = QuantMatrix{layout, q.shape[0], q.shape[1], buffer.data()};
      quant_by_name[name] = *slot->second;
      quant_buffers.emplace(name, std::move(buffer));
      if (name == "model.embed_tokens.weight") embed_host_blocks = padded;  // in `layout`
    }
  }

  // h = E[ids] for the T tokens of b, into resid 0.
  void embed_tokens(const PackedBatch& b, const Tensor& out) {
    if (weights.embed_quant.empty()) {
      backend.embedding_forward(out, slice1d(acts.ids, 0, b.tokens()), weights.embed);
      return;
    }
    const QuantMatrix& e = weights.embed_quant;
    embedding_rows.resize(static_cast<size_t>(b.tokens() * e.cols));
    for (int64_t t = 0; t < b.tokens(); ++t)  // ids were checked against the vocabulary
      dequantize_quant_row(e.format, embed_host_blocks.data() + b.ids[t] * e.row_bytes(),
                           embedding_rows.data() + t * e.cols, e.cols);
    backend.upload(out, embedding_rows.data());
  }

  int64_t C() const { return config.hidden_size; }
  float eps() const { return static_cast<float>(config.rms_norm_eps); }
  float theta() const { return static_cast<float>(config.rope_theta); }
  float attention_scale() const { return 1.0f / std::sqrt(static_cast<float>(config.head_dim)); }
  bool embed_trains() const { return mode == TrainMode::Full; }

  uint64_t dropout_seed(uint64_t step_seed, size_t layer, Projection p) const {
    return splitmix64_at(step_seed, layer * kNumProjections + static_cast<uint64_t>(p));
  }

  void upload_batch(const PackedBatch& b) {
    const int64_t T = b.tokens();
    backend.upload(slice1d(acts.ids, 0, T), b.ids.data());
    backend.upload(slice1d(acts.positions, 0, T), b.positions.data());
    backend.upload(slice1d(acts.targets, 0, T), b.targets.data());
  }

  // ---- forward ------------------------------------------------------------------------------
  // base_done: y already holds x·Wᵀ (a group's quantised base matmuls ran together).
  // addend: y = addend + x·Wᵀ (+ LoRA), the residual add inside the GEMM (docs/design.md §2.9).
  void project(size_t l, Projection p, Tensor y, const Tensor& x, bool dropout, uint64_t seed,
               bool base_done = false, const Tensor& addend = {}) {
    const LoraLinear& linear = weights.layers[l][p];
    if (fused_dropout(dropout, linear) || fused_single(dropout, linear)) {
      if (!base_done) linear_base_forward(backend, linear, y, x, addend);
      const Projection ps[1] = {p};
      const Tensor ys[1] = {y};
      fused_adapters_forward(l, ps, ys, x, dropout, seed);
      return;
    }
    Tensor u;
    if (linear.has_lora())
      u = leading(acts.layer(l).lora_low[static_cast<int>(p)], Shape{x.shape[0], linear.rank()});
    if (base_done)
      lora_adapter_forward(backend, linear, y, x, u, acts.lora, dropout, dropout_seed(seed, l, p));
    else
      lora_linear_forward(backend, linear, y, x, u, acts.lora, dropout, dropout_seed(seed, l, p),
                          addend);
  }

  // When every projection of a group is held quantised: their base matmuls as one
  // matmul_quantized call (x quantised once, one parallel pass). Returns whether it ran.
  bool quantized_group_base(size_t l, const std::vector<Projection>& projections,
                            std::span<const Tensor> ys, const Tensor& x) {
    std::array<QuantMatrix, 3> ws;
    for (size_t i = 0; i < projections.size(); ++i) {
      ws[i] = weights.layers[l][projections[i]].quant;
      if (ws[i].empty()) return false;
    }
    backend.matmul_quantized(ys.first(projections.size()), x,
                             std::span<const QuantMatrix>(ws.data(), projections.size()));
    return true;
  }

  // When every projection of a group has a dense base weight of one shape and dtype (gate and up;
  // q, k, v only where k and v are as wide as q): their base matmuls as one matmul_batched call,
  // x shared (docs/design.md §2.9: one strided-batched GEMM on cuda, the weights and the outputs
  // planned back to back). Returns whether it ran.
  bool batched_group_base(size_t l, const std::vector<Projection>& projections,
                          std::span<const Tensor> ys, const Tensor& x) {
    std::array<Tensor, 3> ws;
    for (size_t i = 0; i < projections.size(); ++i) {
      const LoraLinear& linear = weights.layers[l][projections[i]];
      if (linear.quantized() || !linear.weight.data) return false;
      ws[i] = linear.weight;
      if (ws[i].shape != ws[0].shape || ws[i].dtype != ws[0].dtype) return false;
    }
    const Tensor xs[1] = {x};
    backend.matmul_batched(ys.first(projections.size()), xs,
                           std::span<const Tensor>(ws.data(), projections.size()), Transpose::No,
                           Transpose::Yes);
    return true;
  }

  // The backward twin of batched_group_base for full fine-tuning: the group's dWᵢ += dyᵢᵀ·x as one
  // matmul_batched (x shared). Returns whether it ran (every member's W trains, equal shapes).
  bool batched_group_weight_grads(size_t l, const std::vector<Projection>& projections,
                                  std::span<const Tensor> dys, const Tensor& x) {
    std::array<Tensor, 3> dws;
    for (size_t i = 0; i < projections.size(); ++i) {
      dws[i] = weights.layers[l][projections[i]].weight_grad;
      if (!dws[i].data || dws[i].shape != dws[0].shape || dys[i].shape != dys[0].shape)
        return false;
    }
    const Tensor xs[1] = {x};
    backend.matmul_batched(std::span<const Tensor>(dws.data(), projections.size()),
                           dys.first(projections.size()), xs, Transpose::Yes, Transpose::No, 1.0f,
                           1.0f);
    return true;
  }

  // ---- LoRA dropout on the fly (docs/design.md §2.7) -------------------------------------------
  // Whether projection `linear`'s adapter (and its group's) runs through lora_down_forward /
  // _backward: a training pass that draws dropout, on a backend that applies the masks inside its
  // kernels (cuda), with grouping on (set_lora_grouping(false) keeps the per-projection
  // reference). Each member keeps its own mask (its own seed), as on the per-projection path.
  bool fused_dropout(bool dropout, const LoraLinear& linear) const {
    return dropout && lora_grouping && linear.has_lora() && linear.dropout > 0.0f &&
           backend.fuses_lora_dropout();
  }

  // Whether a projection that runs alone (o, down, or a group's only adapted member) without
  // dropout runs its adapter through the fused ops at p = 0 (docs/design.md §2.7 "LoRA
  // up-projections fused"): lora_down_forward + lora_up_forward, one launch each on cuda, instead
  // of a cast and a matmul for each factor. The per-projection reference and cpu keep matmuls.
  bool fused_single(bool dropout, const LoraLinear& linear) const {
    return lora_grouping && linear.has_lora() && !(dropout && linear.dropout > 0.0f) &&
           backend.fuses_lora_up() && backend.fuses_lora_dropout();
  }

  // Whether group g of layer l runs its adapters through the fused ops (fused_dropout of its
  // first adapted member: one LoraSettings for all).
  bool group_fused(size_t l, LoraGroupId g, bool dropout) const {
    const LoraGroup& group = weights.layers[l].group(g);
    return !group.members.empty() && fused_dropout(dropout, weights.layers[l][group.members[0]]);
  }

  // Projection p's u on this path: uᵀ [r, T] over its lora_low buffer (planned [cap, r]: the
  // same elements, transposed layout; read transposed by the B matmuls, as a group's rows are).
  Tensor fused_low(size_t l, Projection p, int64_t T) {
    const Tensor& buffer = acts.layer(l).lora_low[static_cast<int>(p)];
    return Tensor{buffer.data, buffer.dtype, Shape{weights.layers[l][p].rank(), T}};
  }

  // The adapted projections among `ps` (all reading x), their A factors, uᵀ views and seeds.
  struct FusedMembers {
    std::array<Tensor, Backend::kMaxLoraDownMembers> a, a_grad, low;
    std::array<uint64_t, Backend::kMaxLoraDownMembers> seed{};
    size_t n = 0;
    float p = 0.0f, s = 0.0f;
  };
  // dropout: a training pass that draws masks (p = the adapters' dropout), else p = 0.
  FusedMembers fused_members(size_t l, std::span<const Projection> ps, int64_t T, bool dropout,
                             uint64_t step_seed) {
    FusedMembers m;
    for (size_t i = 0; i < ps.size(); ++i) {
      const LoraLinear& linear = weights.layers[l][ps[i]];
      if (!linear.has_lora()) continue;
      m.a[m.n] = linear.lora_A;
      m.a_grad[m.n] = linear.lora_A_grad;
      m.low[m.n] = fused_low(l, ps[i], T);
      m.seed[m.n] = dropout_seed(step_seed, l, ps[i]);
      m.p = dropout ? linear.dropout : 0.0f;
      m.s = linear.scaling;  // one LoraSettings: every adapter has the same s and p
      ++m.n;
    }
    return m;
  }
  Tensor fused_scratch(const Tensor& x) const {
    return Tensor{acts.lora.dropped.data, acts.lora.dropped.dtype, x.shape};
  }

  // ys[i] += s·uᵢ·Bᵢᵀ with uᵢᵀ = Aᵢ·drop_i(x)ᵀ for the adapted projections among ps: one
  // lora_down_forward for all of them (x read once), then the B products (adapters_up_forward).
  void fused_adapters_forward(size_t l, std::span<const Projection> ps, std::span<const Tensor> ys,
                              const Tensor& x, bool dropout, uint64_t seed) {
    const FusedMembers m = fused_members(l, ps, x.shape[0], dropout, seed);
    if (m.n == 0) return;
    backend.lora_down_forward(std::span(m.low.data(), m.n), x, std::span(m.a.data(), m.n), m.p,
                              std::span(m.seed.data(), m.n), fused_scratch(x));
    adapters_up_forward(l, ps, ys, std::span(m.low.data(), m.n));
  }

  // The backward of fused_adapters_forward (the base parts, dW and dy·W, ran before): per member
  // dB += s·dyᵀ·u and gᵀ = Bᵀ·dyᵀ (stacked [ΣR, T] in acts.lora.low), then one
  // lora_down_backward: dAᵢ += s·gᵢᵀ·drop_i(x), dx += s·Σᵢ drop_i(gᵢ·Aᵢ) (dx may be empty).
  void fused_adapters_backward(size_t l, std::span<const Projection> ps,
                               std::span<const Tensor> dys, Tensor dx, const Tensor& x,
                               bool dropout, uint64_t seed) {
    const int64_t T = x.shape[0];
    const FusedMembers m = fused_members(l, ps, T, dropout, seed);
    if (m.n == 0) return;
    int64_t rows = 0;  // ΣR of the adapted members
    for (size_t k = 0; k < m.n; ++k) rows += m.a[k].shape[0];
    std::array<Tensor, Backend::kMaxLoraDownMembers> gts;
    member_rows(l, ps, Tensor{acts.lora.low.data, acts.lora.low.dtype, Shape{rows, T}}, gts);
    adapters_up_backward(l, ps, dys, std::span(m.low.data(), m.n), std::span(gts.data(), m.n));
    backend.lora_down_backward(std::span(m.a_grad.data(), m.n), dx, std::span(gts.data(), m.n), x,
                               std::span(m.a.data(), m.n), m.p, std::span(m.seed.data(), m.n), m.s,
                               fused_scratch(x));
  }

  // ---- LoRA up-projections fused (docs/design.md §2.7 "LoRA up-projections fused") -----------
  // The B products of the adapted projections among ps, in that order; uts / gts hold one [rᵢ, T]
  // view per adapted member (uᵀ from the forward; gᵀ the backward's output). On a backend that
  // fuses them (fuses_lora_up(): cuda) one lora_up_forward / lora_up_backward per group or single
  // projection; elsewhere the matmuls these ops default to, op for op (cpu unchanged).
  struct UpMembers {
    std::array<Tensor, Backend::kMaxLoraUpMembers> out, b, db;
    size_t n = 0;
    float s = 0.0f;
  };
  UpMembers up_members(size_t l, std::span<const Projection> ps, std::span<const Tensor> outs) {
    UpMembers m;
    for (size_t i = 0; i < ps.size(); ++i) {
      const LoraLinear& linear = weights.layers[l][ps[i]];
      if (!linear.has_lora()) continue;
      m.out[m.n] = outs[i];
      m.b[m.n] = linear.lora_B;
      m.db[m.n] = linear.lora_B_grad;
      m.s = linear.scaling;  // one LoraSettings: every adapter has the same s
      ++m.n;
    }
    return m;
  }

  // Member k's rows of a group's stacked [ΣR, T] (uᵀ or gᵀ) into views[k]; returns the count.
  size_t member_rows(size_t l, std::span<const Projection> ps, const Tensor& stacked,
                     std::span<Tensor> views) {
    size_t n = 0;
    int64_t row = 0;
    for (Projection p : ps) {
      const LoraLinear& linear = weights.layers[l][p];
      if (!linear.has_lora()) continue;
      views[n++] = stacked.rows(row, linear.rank());
      row += linear.rank();
    }
    return n;
  }

  // ys[i] += s·uᵢ·Bᵢᵀ for the adapted projections among ps.
  void adapters_up_forward(size_t l, std::span<const Projection> ps, std::span<const Tensor> ys,
                           std::span<const Tensor> uts) {
    const UpMembers m = up_members(l, ps, ys);
    if (m.n == 0) return;
    if (backend.fuses_lora_up()) {
      backend.lora_up_forward(std::span(m.out.data(), m.n), uts, std::span(m.b.data(), m.n), m.s);
      return;
    }
    for (size_t k = 0; k < m.n; ++k)  // y += s·u·Bᵀ
      backend.matmul(m.out[k], uts[k], m.b[k], Transpose::Yes, Transpose::Yes, m.s, 1.0f);
  }

  // dBᵢ += s·dyᵢᵀ·uᵢ and gᵢᵀ = Bᵢᵀ·dyᵢᵀ for the adapted projections among ps.
  void adapters_up_backward(size_t l, std::span<const Projection> ps, std::span<const Tensor> dys,
                            std::span<const Tensor> uts, std::span<const Tensor> gts) {
    const UpMembers m = up_members(l, ps, dys);
    if (m.n == 0) return;
    if (backend.fuses_lora_up()) {
      backend.lora_up_backward(std::span(m.db.data(), m.n), gts, std::span(m.out.data(), m.n), uts,
                               std::span(m.b.data(), m.n), m.s);
      return;
    }
    for (size_t k = 0; k < m.n; ++k) {
      backend.matmul(m.db[k], m.out[k], uts[k], Transpose::Yes, Transpose::Yes, m.s, 1.0f);
      backend.matmul(gts[k], m.b[k], m.out[k], Transpose::Yes, Transpose::Yes);  // gᵀ = Bᵀ·dyᵀ
    }
  }

  // ---- grouped LoRA (docs/design.md §2.7) ----------------------------------------------------
  // Whether group g of layer l runs grouped: at least two adapted members (one gains nothing),
  // packed A factors (llama_weights.cpp), and no dropout drawn (each projection draws its own mask
  // over x, so their LoRA inputs differ; with dropout, a backend that fuses the masks runs the
  // group through fused_adapters_forward instead, checked before this).
  bool grouped(size_t l, LoraGroupId g, bool dropout) const {
    const LoraGroup& group = weights.layers[l].group(g);
    if (!lora_grouping || group.members.size() < 2 || !group.A.data) return false;
    return !(dropout && weights.layers[l][group.members.front()].dropout > 0.0f);
  }

  // A group's stacked uᵀ = A·xᵀ [ΣR, T], kept for the backward. It lies over the lora_low
  // buffers of [cap, r] planned back to back (llama_activations.cpp): from the first member on, the
  // group has at least as many projections (buffers) as members, so it never reaches into another
  // group's or o/down's.
  Tensor group_low(size_t l, const LoraGroup& group, int64_t T) {
    const Tensor& base = acts.layer(l).lora_low[static_cast<int>(group.members.front())];
    return Tensor{base.data, base.dtype, Shape{group.A.shape[0], T}};
  }

  // ys[i] = x·Wᵢᵀ + s·(x·Aᵢᵀ)·Bᵢᵀ for the projections of group g (lora_group_projections order)
  // from their shared input x. Grouped: the down-projections of all members are one matmul,
  // uᵀ = A_stacked·xᵀ; member i's u is then rows of uᵀ, read transposed by its B matmul.
  void project_group(size_t l, LoraGroupId g, std::span<const Tensor> ys, const Tensor& x,
                     bool dropout, uint64_t seed) {
    const std::vector<Projection> projections = lora_group_projections(g);
    const bool base_done =
        quantized_group_base(l, projections, ys, x) || batched_group_base(l, projections, ys, x);
    if (group_fused(l, g, dropout)) {
      if (!base_done)
        for (size_t i = 0; i < projections.size(); ++i)
          linear_base_forward(backend, weights.layers[l][projections[i]], ys[i], x);
      fused_adapters_forward(l, projections, ys, x, dropout, seed);
      return;
    }
    if (!grouped(l, g, dropout)) {
      for (size_t i = 0; i < projections.size(); ++i)
        project(l, projections[i], ys[i], x, dropout, seed, base_done);
      return;
    }
    const LlamaLayerWeights& w = weights.layers[l];
    const LoraGroup& group = w.group(g);
    if (!base_done)
      for (size_t i = 0; i < projections.size(); ++i)
        linear_base_forward(backend, w[projections[i]], ys[i], x);
    const Tensor ut = group_low(l, group, x.shape[0]);
    backend.matmul(ut, group.A, x, Transpose::No, Transpose::Yes);
    std::array<Tensor, Backend::kMaxLoraUpMembers> uts;
    const size_t n = member_rows(l, projections, ut, uts);
    adapters_up_forward(l, projections, ys, std::span(uts.data(), n));
  }

  // The base weights' part of a backward over projections ps reading x: dWᵢ += dyᵢᵀ·x (unless
  // dw_done) and dx (= or, with accumulate, +=) Σᵢ dyᵢ·Wᵢ (dx may be empty).
  void base_backward(size_t l, std::span<const Projection> ps, std::span<const Tensor> dys,
                     Tensor dx, bool accumulate, const Tensor& x, bool dw_done) {
    for (size_t i = 0; i < ps.size(); ++i) {
      const LoraLinear& linear = weights.layers[l][ps[i]];
      SMOL_CHECK(!linear.quantized(), "LoRA backward: the base weight is held quantised ",
                 "(inference only); training needs model.weights_in_memory: fp32");
      if (linear.weight_grad.data && !dw_done)
        backend.matmul(linear.weight_grad, dys[i], x, Transpose::Yes, Transpose::No, 1.0f, 1.0f);
      if (dx.data)
        backend.matmul(dx, dys[i], linear.weight, Transpose::No, Transpose::No, 1.0f,
                       accumulate || i > 0 ? 1.0f : 0.0f);
    }
  }

  // The backward of project_group: dys[i] = ∂L/∂ys[i]; dx (= or, with accumulate, +=) gets
  // Σᵢ ∂L/∂x through every member; dx may be empty. Grouped: gᵢᵀ = Bᵢᵀ·dyᵢᵀ stacked [ΣR, T]
  // gives dA_stacked += s·gᵀ·x and dx += s·gᵀᵀ·A_stacked in one matmul each (one LoraSettings:
  // every adapter has the same s).
  void project_group_backward(size_t l, LoraGroupId g, std::span<const Tensor> dys, Tensor dx,
                              bool accumulate, const Tensor& x, bool dropout, uint64_t seed) {
    const std::vector<Projection> projections = lora_group_projections(g);
    const bool dw_done = batched_group_weight_grads(l, projections, dys, x);
    if (group_fused(l, g, dropout)) {
      base_backward(l, projections, dys, dx, accumulate, x, dw_done);
      fused_adapters_backward(l, projections, dys, dx, x, dropout, seed);
      return;
    }
    if (!grouped(l, g, dropout)) {
      for (size_t i = 0; i < projections.size(); ++i)
        project_backward(l, projections[i], dx, accumulate || i > 0, dys[i], x, dropout, seed,
                         dw_done);
      return;
    }
    const LlamaLayerWeights& w = weights.layers[l];
    const LoraGroup& group = w.group(g);
    const int64_t T = x.shape[0];
    base_backward(l, projections, dys, dx, accumulate, x, dw_done);
    const Tensor ut = group_low(l, group, T);
    const Tensor gt{acts.lora.low.data, acts.lora.low.dtype, Shape{group.A.shape[0], T}};
    std::array<Tensor, Backend::kMaxLoraUpMembers> uts, gts;
    const size_t n = member_rows(l, projections, ut, uts);
    member_rows(l, projections, gt, gts);
    adapters_up_backward(l, projections, dys, std::span(uts.data(), n), std::span(gts.data(), n));
    const float s = w[group.members.front()].scaling;
    backend.matmul(group.A_grad, gt, x, Transpose::No, Transpose::No, s, 1.0f);  // dA += s·gᵀ·x
    if (dx.data) backend.matmul(dx, gt, group.A, Transpose::Yes, Transpose::No, s, 1.0f);
  }

  // Runs every layer and the final norm: acts.lnf holds rmsnorm(h_final) for the T tokens.
  // With use_cache, new keys/values are appended to the batch's cache slots and attention
  // reads the cache.
  void forward_layers(const PackedBatch& b, bool dropout, uint64_t seed, bool use_cache) {
    const int64_t T = b.tokens(), C = this->C();
    const int64_t Q = config.q_dim(), KV = config.kv_dim(), D = config.head_dim;
    const int64_t Hq = config.num_attention_heads, Hkv = config.num_key_value_heads;
    const size_t n = weights.layers.size();
    const Tensor positions = slice1d(acts.positions, 0, T);
    const bool fused = !acts.options.unfused;
    const Tensor proj_out = fused ? Tensor{} : leading(acts.proj_out, Shape{T, C});
    embed_tokens(b, leading(acts.resid_at(0), Shape{T, C}));
    for (size_t l = 0; l < n; ++l) {
      LayerActivations& a = acts.layer(l);
      const LlamaLayerWeights& w = weights.layers[l];
      const Tensor h_in = leading(acts.resid_at(l), Shape{T, C});
      const Tensor ln1 = leading(a.ln1, Shape{T, C});
      if (fused || l == 0)  // unfused: the previous layer's add_rmsnorm wrote ln1
        backend.rmsnorm_forward(ln1, leading(a.rstd1, Shape{T}), h_in, w.input_norm, eps());
      const Tensor q = leading(a.q, Shape{T, Q}), k = leading(a.k, Shape{T, KV}),
                   v = leading(a.v, Shape{T, KV});
      project_group(l, LoraGroupId::Qkv, std::array{q, k, v}, ln1, dropout, seed);
      Tensor keys = k.reshaped(Shape{T, Hkv, D}), values = v.reshaped(Shape{T, Hkv, D});
      if (use_cache && fused) {
        // RoPE and the KV-cache append as one op (docs/design.md §2.7 "Fused RoPE"): q and k
        // rotated, every slot's new keys and values to the rows after its cached ones
        // (decode_kv_rows[t] is token t's cache row; docs/design.md §2.8).
        const int64_t rows = static_cast<int64_t>(cache.slots()) * cache.max_len();
        backend.rope_append_kv(q.reshaped(Shape{T, Hq, D}), keys, values,
                               cache.keys(l).reshaped(Shape{rows, Hkv, D}),
                               cache.values(l).reshaped(Shape{rows, Hkv, D}), decode_kv_rows,
                               Backend::Rotary{positions, theta()});
      } else {
        backend.rope_qk_forward(q.reshaped(Shape{T, Hq, D}), keys, positions, theta());
        if (use_cache) {  // unfused: the append as its own op, one per layer
          const int64_t rows = static_cast<int64_t>(cache.slots()) * cache.max_len();
          const std::array<Backend::RowScatter, 2> appends{
              Backend::RowScatter{cache.keys(l).reshaped(Shape{rows, KV}), k},
              Backend::RowScatter{cache.values(l).reshaped(Shape{rows, KV}), v}};
          backend.scatter_rows(appends, decode_kv_rows);
        }
      }
      if (use_cache) {
        keys = cache.keys(l);
        values = cache.values(l);
      }
      const Tensor att = leading(a.att, Shape{T, Q});
      backend.attention_forward(att.reshaped(Shape{T, Hq, D}), leading(a.lse, Shape{T, Hq}),
                                q.reshaped(Shape{T, Hq, D}), keys, values, b.layout,
                                attention_scale());
      // The residual adds happen inside the o_proj and down_proj GEMMs, the old residual as
      // the addend (cuBLASLt's C ≠ D), then a plain RMSNorm (docs/design.md §2.9).
      const Tensor resid_mid = leading(a.resid_mid, Shape{T, C});
      const Tensor ln2 = leading(a.ln2, Shape{T, C});
      if (fused) {
        project(l, Projection::O, resid_mid, att, dropout, seed, false, h_in);
        backend.rmsnorm_forward(ln2, leading(a.rstd2, Shape{T}), resid_mid, w.post_norm, eps());
      } else {
        project(l, Projection::O, proj_out, att, dropout, seed);
        backend.add_rmsnorm_forward(resid_mid, ln2, leading(a.rstd2, Shape{T}), h_in, proj_out,
                                    w.post_norm, eps());
      }
      const int64_t F = config.intermediate_size;
      const Tensor gate = leading(a.gate, Shape{T, F}), up = leading(a.up, Shape{T, F}),
                   act = leading(a.act, Shape{T, F});
      project_group(l, LoraGroupId::GateUp, std::array{gate, up}, ln2, dropout, seed);
      backend.swiglu_forward(act, gate, up);
      const Tensor h_out = leading(acts.resid_at(l + 1), Shape{T, C});
      if (fused) {
        project(l, Projection::Down, h_out, act, dropout, seed, false, resid_mid);
        continue;
      }
      project(l, Projection::Down, proj_out, act, dropout, seed);
      const bool last = l + 1 == n;
      backend.add_rmsnorm_forward(
          h_out, leading(last ? acts.lnf : acts.layer(l + 1).ln1, Shape{T, C}),
          leading(last ? acts.rstdf : acts.layer(l + 1).rstd1, Shape{T}), resid_mid, proj_out,
          last ? weights.final_norm : weights.layers[l + 1].input_norm, eps());
    }
    if (fused)
      backend.rmsnorm_forward(leading(acts.lnf, Shape{T, C}), leading(acts.rstdf, Shape{T}),
                              leading(acts.resid_at(n), Shape{T, C}), weights.final_norm, eps());
  }

  // LM head + cross-entropy (the backend's chunked composite op, kernels/backend.h): fills
  // acts.losses[t] at supervised positions and returns Σ CE over them. With backward, grad.dln
  // gets ∂L/∂lnf (scaled by loss_scale) and the output weight's grad accumulates dlogitsᵀ·lnf.
  // With argmax, acts.argmax[t] gets each position's argmax. With logits_out (forward only,
  // for tests and dumps), every row's logits are copied to the host chunk by chunk instead.
  // With defer_loss, the Σ is added to loss_acc on the device instead (returns 0).
  double lm_head(const PackedBatch& b, float loss_scale, bool backward,
                 std::vector<float>* logits_out, bool argmax = false, bool defer_loss = false) {
    const int64_t T = b.tokens(), C = this->C(), V = config.vocab_size;
    const Tensor& out_w = weights.output_weight();
    const Tensor lnf = leading(acts.lnf, Shape{T, C});
    const Tensor targets = slice1d(acts.targets, 0, T);
    const QuantMatrix& out_q = weights.output_weight_quant();
    if (!out_q.empty()) {
      // Held quantised: chunks of logits by matmul_quantized, then cross_entropy (and argmax).
      SMOL_CHECK(!backward, "internal: the LM head is held quantised (inference only)");
      if (logits_out) logits_out->assign(static_cast<size_t>(T * V), 0.0f);
      for (int64_t t0 = 0; t0 < T; t0 += acts.lm_chunk) {
        const int64_t rows = std::min(acts.lm_chunk, T - t0);
        const Tensor logits = leading(acts.logits, Shape{rows, V});
        backend.matmul_quantized(logits, lnf.rows(t0, rows), out_q);
        if (logits_out) {
          const std::vector<float> host = download_f32(backend, logits);
          std::copy(host.begin(), host.end(), logits_out->begin() + t0 * V);
        }
        backend.cross_entropy(slice1d(acts.losses, t0, rows), nullptr, logits,
                              slice1d(acts.targets, t0, rows), 1.0f,
                              argmax ? slice1d(acts.argmax, t0, rows) : Tensor{});
      }
    } else if (logits_out) {
      SMOL_CHECK(!backward && !argmax, "internal: host logits are a forward-only path");
      logits_out->assign(static_cast<size_t>(T * V), 0.0f);
      for (int64_t t0 = 0; t0 < T; t0 += acts.lm_chunk) {
        const int64_t rows = std::min(acts.lm_chunk, T - t0);
        const Tensor logits = leading(acts.logits, Shape{rows, V});
        backend.matmul(logits, lnf.rows(t0, rows), out_w, Transpose::No, Transpose::Yes);
        const std::vector<float> host = download_f32(backend, logits);
        std::copy(host.begin(), host.end(), logits_out->begin() + t0 * V);
        bool supervised = false;
        for (int64_t t = t0; t < t0 + rows && !supervised; ++t) supervised = b.targets[t] != -100;
        if (supervised)
          backend.cross_entropy(slice1d(acts.losses, t0, rows), nullptr, logits,
                                slice1d(acts.targets, t0, rows), 1.0f);
      }
    } else {
      LmHeadOutputs out;
      out.losses = slice1d(acts.losses, 0, T);
      if (backward) {
        out.dhidden = leading(acts.grad.dln, Shape{T, C});
        out.dweight = weights.output_weight_grad();
      }
      if (argmax) out.argmax = slice1d(acts.argmax, 0, T);
      backend.lm_head_cross_entropy(out, lnf, out_w, targets, acts.logits, loss_scale, b.targets);
    }
    if (b.supervised == 0) return 0.0;
    if (defer_loss) {
      // losses is 0 at every unsupervised position (lm_head_cross_entropy's contract).
      backend.accumulate_sum(loss_acc, slice1d(acts.losses, 0, T));
      return 0.0;
    }
    const std::vector<float> losses = download_f32(backend, slice1d(acts.losses, 0, T));
    double sum = 0;
    for (int64_t t = 0; t < T; ++t)
      if (b.targets[t] != -100) sum += losses[t];
    return sum;
  }

  // ---- backward -----------------------------------------------------------------------------
  // weight_grad_done: dW += dyᵀ·x already ran (a group's batched weight gradients).
  void project_backward(size_t l, Projection p, Tensor dx, bool accumulate, const Tensor& dy,
                        const Tensor& x, bool dropout, uint64_t seed,
                        bool weight_grad_done = false) {
    const LoraLinear& linear = weights.layers[l][p];
    if (fused_dropout(dropout, linear) || fused_single(dropout, linear)) {
      const Projection ps[1] = {p};
      const Tensor dys[1] = {dy};
      base_backward(l, ps, dys, dx, accumulate, x, weight_grad_done);
      fused_adapters_backward(l, ps, dys, dx, x, dropout, seed);
      return;
    }
    Tensor u;
    if (linear.has_lora())
      u = leading(acts.layer(l).lora_low[static_cast<int>(p)], Shape{x.shape[0], linear.rank()});
    lora_linear_backward(backend, linear, dx, accumulate, dy, x, u, acts.lora, dropout,
                         dropout_seed(seed, l, p), weight_grad_done);
  }

  Tensor norm_grad_or_sink(const Tensor& grad) const {
    return grad.data ? grad : acts.grad.dnorm_unused;
  }

  // Given grad.dresid = ∂L/∂h_{l+1}, leaves ∂L/∂h_l there and accumulates parameter grads.
  void layer_backward(size_t l, const PackedBatch& b, bool dropout, uint64_t seed) {
    const int64_t T = b.tokens(), C = this->C(), F = config.intermediate_size;
    const int64_t Q = config.q_dim(), KV = config.kv_dim(), D = config.head_dim;
    const int64_t Hq = config.num_attention_heads, Hkv = config.num_key_value_heads;
    LayerActivations& a = acts.layer(l);
    const LlamaLayerWeights& w = weights.layers[l];
    const BackwardScratch& g = acts.grad;
    const Tensor dresid = leading(g.dresid, Shape{T, C}), dln = leading(g.dln, Shape{T, C});
    const Tensor ln1 = leading(a.ln1, Shape{T, C}), ln2 = leading(a.ln2, Shape{T, C});
    const Tensor gate = leading(a.gate, Shape{T, F}), up = leading(a.up, Shape{T, F});
    const Tensor dgate = leading(g.dgate, Shape{T, F}), dup = leading(g.dup, Shape{T, F});
    const Tensor dact = leading(g.dact, Shape{T, F});

    // MLP: h_{l+1} = h_mid + down(swiglu(gate(b), up(b))), b = rmsnorm(h_mid).
    project_backward(l, Projection::Down, dact, false, dresid, leading(a.act, Shape{T, F}), dropout,
                     seed);
    const LoraLinear &gate_w = w[Projection::Gate], &up_w = w[Projection::Up];
    const bool concat = !acts.options.unfused && w.gate_up.data && !gate_w.has_lora() &&
                        !up_w.has_lora() && (!gate_w.weight_grad.data || w.gate_up_grad.data);
    if (concat) {
      // docs/design.md §2.9: [dgate | dup] [T, 2F] in one pass, then one GEMM for dx (K = 2F)
      // and, in full fine-tuning, one for d[W_gate; W_up].
      const Tensor dgu = leading(g.dgate_up, Shape{T, 2 * F});
      backend.swiglu_backward(dgu, dact, gate, up);
      if (w.gate_up_grad.data)
        backend.matmul(w.gate_up_grad, dgu, ln2, Transpose::Yes, Transpose::No, 1.0f, 1.0f);
      backend.matmul(dln, dgu, w.gate_up, Transpose::No, Transpose::No);
    } else {
      backend.swiglu_backward(dgate, dup, dact, gate, up);
      project_group_backward(l, LoraGroupId::GateUp, std::array{dgate, dup}, dln, false, ln2,
                             dropout, seed);
    }
    backend.rmsnorm_backward(dresid, norm_grad_or_sink(w.post_norm_grad), dln,
                             leading(a.resid_mid, Shape{T, C}), w.post_norm,
                             leading(a.rstd2, Shape{T}));

    // Attention: h_mid = h_l + o(attention(rope(q(a)), rope(k(a)), v(a))), a = rmsnorm(h_l).
    const Tensor att = leading(a.att, Shape{T, Q}), datt = leading(g.datt, Shape{T, Q});
    project_backward(l, Projection::O, datt, false, dresid, att, dropout, seed);
    const Tensor dq = leading(g.dq, Shape{T, Q}), dk = leading(g.dk, Shape{T, KV}),
                 dv = leading(g.dv, Shape{T, KV});
    const Tensor positions = slice1d(acts.positions, 0, T);
    // dq, dk with respect to the un-rotated q, k: the attention backward with RoPE's backward
    // fused into its stores (docs/design.md §2.7 "Fused RoPE"); unfused: the two ops.
    const Tensor dq3 = dq.reshaped(Shape{T, Hq, D}), dk3 = dk.reshaped(Shape{T, Hkv, D});
    if (!acts.options.unfused) {
      backend.attention_rope_backward(dq3, dk3, dv.reshaped(Shape{T, Hkv, D}),
                                      datt.reshaped(Shape{T, Hq, D}), leading(a.q, Shape{T, Hq, D}),
                                      leading(a.k, Shape{T, Hkv, D}),
                                      leading(a.v, Shape{T, Hkv, D}), att.reshaped(Shape{T, Hq, D}),
                                      leading(a.lse, Shape{T, Hq}), b.layout, attention_scale(),
                                      Backend::Rotary{positions, theta()});
    } else {
      backend.attention_backward(dq3, dk3, dv.reshaped(Shape{T, Hkv, D}),
                                 datt.reshaped(Shape{T, Hq, D}), leading(a.q, Shape{T, Hq, D}),
                                 leading(a.k, Shape{T, Hkv, D}), leading(a.v, Shape{T, Hkv, D}),
                                 att.reshaped(Shape{T, Hq, D}), leading(a.lse, Shape{T, Hq}),
                                 b.layout, attention_scale());
      backend.rope_qk_backward(dq3, dk3, positions, theta());
    }
    // Below layer 0 the input gradient only matters when the embedding trains.
    const bool need_dx = l > 0 || embed_trains();
    const Tensor dx = need_dx ? dln : Tensor{};
    project_group_backward(l, LoraGroupId::Qkv, std::array{dq, dk, dv}, dx, false, ln1, dropout,
                           seed);
    if (need_dx)
      backend.rmsnorm_backward(dresid, norm_grad_or_sink(w.input_norm_grad), dln,
                               leading(acts.resid_at(l), Shape{T, C}), w.input_norm,
                               leading(a.rstd1, Shape{T}));
  }

  ForwardResult run(const PackedBatch& b, float loss_scale, uint64_t seed, bool backward,
                    bool dropout, std::vector<float>* logits_out, bool defer_loss = false) {
    ForwardResult result;
    result.supervised = b.supervised;
    const int64_t T = b.tokens();
    if (T == 0) return result;
    SMOL_CHECK(!backward || !any_quantized(),
               "training needs dense weights: this model holds its base weights quantised "
               "(inference only; set model.weights_in_memory: fp32, or bf16 on cpu)");
    acts.ensure(backend, config, lora_rank_of(lora), T, backward);
    upload_batch(b);
    forward_layers(b, dropout, seed, false);
    result.loss_sum = lm_head(b, loss_scale, backward, logits_out, false, defer_loss);
    if (!backward) return result;
    const int64_t C = this->C();
    const Tensor dresid = leading(acts.grad.dresid, Shape{T, C});
    backend.fill_zero(dresid);
    backend.rmsnorm_backward(dresid, norm_grad_or_sink(weights.final_norm_grad),
                             leading(acts.grad.dln, Shape{T, C}),
                             leading(acts.resid_at(weights.layers.size()), Shape{T, C}),
                             weights.final_norm, leading(acts.rstdf, Shape{T}));
    for (size_t l = weights.layers.size(); l-- > 0;) {
      layer_backward(l, b, dropout, seed);
      if (layer_backward_hook) layer_backward_hook(l);
    }
    if (embed_trains())
      backend.embedding_backward(weights.embed_grad, dresid, slice1d(acts.ids, 0, T));
    return result;
  }
};

// ---- public API -------------------------------------------------------------------------------

LlamaModel::LlamaModel(Backend& backend, const LlamaConfig& config, TrainMode mode,
                       std::optional<LoraSettings> lora, FrozenWeights frozen,
                       const QuantizedTensorMap* quantized) {
  config.validate("model config");
  impl_ = std::make_unique<Impl>(backend, config, mode, std::move(lora), frozen, quantized);
}
LlamaModel::~LlamaModel() = default;

const LlamaConfig& LlamaModel::config() const {
  return impl_->config;
}
TrainMode LlamaModel::mode() const {
  return impl_->mode;
}
const std::optional<LoraSettings>& LlamaModel::lora() const {
  return impl_->lora;
}
Backend& LlamaModel::backend() {
  return impl_->backend;
}

void LlamaModel::load_weights(const HostTensorMap& host) {
  for (const NamedTensor& t : impl_->weights.named()) {
    if (t.is_lora || impl_->quant_by_name.count(t.name)) continue;
    auto it = host.find(t.name);
    SMOL_CHECK(it != host.end(), "weights: missing tensor '", t.name, "'",
               t.name == "lm_head.weight" ? " (the config says tie_word_embeddings = false)" : "");
    write_tensor(t.name, it->second);
  }
}

void LlamaModel::init_random(uint64_t seed, float init_std) {
  uint64_t index = 0;
  for (const NamedTensor& t : impl_->weights.named()) {
    HostTensor h;
    h.shape = t.value->shape;
    h.data.resize(static_cast<size_t>(h.shape.numel()));
    const uint64_t stream = splitmix64_at(seed, index++);
    if (t.is_lora) {
      // PEFT's default (init_lora_weights=true): A ~ U(±1/√in) (kaiming, a=√5), B = 0.
      const bool is_a = t.name.find("lora_A") != std::string::npos;
      const float bound = 1.0f / std::sqrt(static_cast<float>(h.shape[1]));
      for (size_t i = 0; i < h.data.size(); ++i)
        h.data[i] = is_a ? bound * (2.0f * dropout_uniform(stream, i) - 1.0f) : 0.0f;
    } else if (h.shape.rank == 1) {
      for (float& x : h.data) x = 1.0f;  // RMSNorm weights
    } else {
      // Box-Muller over the counter-based uniform: the same weights on every platform.
      for (size_t i = 0; i < h.data.size(); i += 2) {
        const float u1 = 1.0f - dropout_uniform(stream, i), u2 = dropout_uniform(stream, i + 1);
        const float radius = std::sqrt(-2.0f * std::log(u1));
        h.data[i] = init_std * radius * std::cos(6.2831853f * u2);
        if (i + 1 < h.data.size()) h.data[i + 1] = init_std * radius * std::sin(6.2831853f * u2);
      }
    }
    write_tensor(t.name, h);
  }
}

HostTensor LlamaModel::read_tensor(const std::string& name) const {
  const NamedTensor& t = impl_->weights.find(name);
  HostTensor h;
  h.shape = t.value->shape;
  if (const auto held = impl_->quant_by_name.find(name); held != impl_->quant_by_name.end()) {
    const QuantMatrix& q = held->second;
    const Buffer& buffer = impl_->quant_buffers.at(name);
    std::vector<uint8_t> blocks(buffer.bytes());
    impl_->backend.download(
        blocks.data(), buffer.view(DType::I32, Shape{static_cast<int64_t>(buffer.bytes() / 4)}));
    h.stored_dtype = quant_format_traits(q.format).name;
    h.data.resize(static_cast<size_t>(h.shape.numel()));
    for (int64_t r = 0; r < q.rows; ++r)
      dequantize_quant_row(q.format, blocks.data() + r * q.row_bytes(), h.data.data() + r * q.cols,
                           q.cols);
    return h;
  }
  h.stored_dtype = dtype_name(t.value->dtype);
  h.data = download_f32(impl_->backend, *t.value);
  return h;
}

void LlamaModel::write_tensor(const std::string& name, const HostTensor& value) {
  const NamedTensor& t = impl_->weights.find(name);
  SMOL_CHECK(!impl_->quant_by_name.count(name), "tensor '", name,
             "' is held quantised (inference only) and cannot be overwritten; load the model ",
             "with model.weights_in_memory: fp32");
  SMOL_CHECK(value.shape == t.value->shape, "tensor '", name, "': shape ", value.shape.str(),
             " does not match the model's ", t.value->shape.str());
  SMOL_CHECK(static_cast<int64_t>(value.data.size()) == value.shape.numel(), "tensor '", name,
             "': ", value.data.size(), " values for shape ", value.shape.str());
  upload_f32(impl_->backend, *t.value, value.data.data());
}

std::vector<std::string> LlamaModel::tensor_names() const {
  std::vector<std::string> names;
  for (const NamedTensor& t : impl_->weights.named()) names.push_back(t.name);
  return names;
}

std::vector<TrainableParam> LlamaModel::trainable_params() {
  std::vector<TrainableParam> params;
  for (const NamedTensor& t : impl_->weights.named())
    if (t.grad) params.push_back({t.name, *t.value, *t.grad});
  return params;
}

void LlamaModel::set_lora_grouping(bool on) {
  impl_->lora_grouping = on;
}

bool LlamaModel::lora_grouping() const {
  return impl_->lora_grouping;
}

void LlamaModel::plan_activations(int64_t tokens, bool training) {
  SMOL_CHECK(tokens > 0, "plan_activations: ", tokens, " tokens");
  const bool trains = training && impl_->mode != TrainMode::Frozen;
  if (trains) impl_->acts.reserved_tokens = std::max(impl_->acts.reserved_tokens, tokens);
  impl_->acts.ensure(impl_->backend, impl_->config, lora_rank_of(impl_->lora), tokens, trains);
}

int64_t LlamaModel::activation_plans() const {
  return impl_->acts.plans;
}

void LlamaModel::set_fusion(bool on) {
  impl_->acts.options.unfused = !on;
}

bool LlamaModel::fusion() const {
  return !impl_->acts.options.unfused;
}

void LlamaModel::set_layer_backward_hook(std::function<void(size_t layer)> hook) {
  impl_->layer_backward_hook = std::move(hook);
}

Tensor LlamaModel::gradient_arena() {
  return impl_->weights.gradient_arena();
}

void LlamaModel::zero_grads() {
  impl_->weights.zero_grads(impl_->backend);
}

ForwardResult LlamaModel::forward_backward(const std::vector<TokenRow>& rows, float loss_scale,
                                           uint64_t dropout_seed, bool training) {
  const PackedBatch b = pack_rows(rows, impl_->config.vocab_size);
  const bool backward = training && impl_->mode != TrainMode::Frozen;
  return impl_->run(b, loss_scale, dropout_seed, backward, training, nullptr);
}

int64_t LlamaModel::forward_backward_accumulate(const std::vector<TokenRow>& rows, float loss_scale,
                                                uint64_t dropout_seed, bool training) {
  const PackedBatch b = pack_rows(rows, impl_->config.vocab_size);
  const bool backward = training && impl_->mode != TrainMode::Frozen;
  return impl_->run(b, loss_scale, dropout_seed, backward, training, nullptr, /*defer_loss=*/true)
      .supervised;
}

double LlamaModel::read_loss() {
  float sum = 0.0f;
  impl_->backend.download(&sum, impl_->loss_acc);
  impl_->backend.fill_zero(impl_->loss_acc);
  return sum;
}

Tensor LlamaModel::loss_accumulator() const {
  return impl_->loss_acc;
}

std::unique_ptr<Backend::Graph>& LlamaModel::step_graph() {
  return impl_->step_graph;
}

ForwardResult LlamaModel::forward_logits(const std::vector<TokenRow>& rows,
                                         std::vector<float>* logits) {
  const PackedBatch b = pack_rows(rows, impl_->config.vocab_size);
  std::vector<float> sink;
  return impl_->run(b, 1.0f, 0, false, false, logits ? logits : &sink);
}

EvalForward LlamaModel::forward_eval(const std::vector<TokenRow>& rows) {
  Impl& m = *impl_;
  const PackedBatch b = pack_rows(rows, m.config.vocab_size);
  EvalForward result;
  result.supervised = b.supervised;
  result.row_loss_sum.assign(rows.size(), 0.0);
  result.row_supervised.assign(rows.size(), 0);
  const int64_t T = b.tokens();
  if (T == 0) return result;
  m.acts.ensure(m.backend, m.config, lora_rank_of(m.lora), T, false);
  m.upload_batch(b);
  m.forward_layers(b, false, 0, false);
  m.lm_head(b, 1.0f, false, nullptr, /*argmax=*/true);
  result.argmax.resize(static_cast<size_t>(T));
  m.backend.download(result.argmax.data(), slice1d(m.acts.argmax, 0, T));
  // Unsupervised chunks were skipped by cross_entropy: only supervised positions are read.
  const std::vector<float> losses = b.supervised > 0
                                        ? download_f32(m.backend, slice1d(m.acts.losses, 0, T))
                                        : std::vector<float>();
  for (size_t r = 0; r < rows.size(); ++r) {
    const SeqSpan& s = b.layout.seqs[r];
    for (int64_t t = s.q_begin; t < s.q_begin + s.q_len; ++t) {
      if (b.targets[t] == -100) continue;
      result.row_loss_sum[r] += losses[t];
      result.loss_sum += losses[t];  // in token order, as forward_logits sums
      ++result.row_supervised[r];
    }
  }
  return result;
}

void LlamaModel::reset_cache(int32_t slots, int32_t max_len) {
  impl_->cache.reset(impl_->backend, impl_->config, slots, max_len);
}

int32_t LlamaModel::cache_length(int32_t slot) const {
  return impl_->cache.length(slot);
}

void LlamaModel::truncate_cache(int32_t slot, int32_t length) {
  SMOL_CHECK(length <= impl_->cache.length(slot), "truncate_cache: slot ", slot, " holds ",
             impl_->cache.length(slot), " tokens, cannot grow to ", length);
  impl_->cache.set_length(slot, length);
}

// How a decode step ends: the logits kept, or one token per slot picked on the device.
struct DecodePick {
  enum class Kind { KeepLogits, Greedy, Sampled } kind = Kind::KeepLogits;
  const std::vector<float>* uniforms = nullptr;  // Sampled: one per slot
  float temperature = 0.0f, top_p = 1.0f;
};

// decode, decode_greedy and decode_sampled share this: runs the new tokens through the layers
// (appending to the cache) and the LM head on each slot's last new token. KeepLogits leaves the
// logits in decode_logits_buffer, F32 [n, V]; Greedy and Sampled leave each slot's token in
// acts.argmax[0, n) (argmax, first maximum wins; or Backend::sample_tokens). The device work
// after the uploads runs as one graph where the backend has graphs (docs/design.md §2.8): the
// step's host work — packing, the index, every allocation — happens before it, and nothing
// inside waits for the host.
template <typename Impl>
void decode_step(Impl& m, const std::vector<int32_t>& slots,
                 const std::vector<std::vector<int32_t>>& new_tokens, const DecodePick& pick) {
  const bool keep_logits = pick.kind == DecodePick::Kind::KeepLogits;
  SMOL_CHECK(!m.cache.empty(), "decode: call reset_cache(slots, max_len) first");
  std::vector<int32_t> cached;
  for (size_t i = 0; i < slots.size(); ++i) {
    cached.push_back(m.cache.length(slots[i]));  // validates the slot
    SMOL_CHECK(i >= new_tokens.size() ||
                   cached.back() + static_cast<int64_t>(new_tokens[i].size()) <= m.cache.max_len(),
               "decode: slot ", slots[i], " would hold ",
               cached.back() + static_cast<int64_t>(new_tokens[i].size()),
               " tokens, more than the cache's max_len ", m.cache.max_len());
  }
  const PackedBatch b =
      pack_decode(slots, new_tokens, cached, m.cache.max_len(), m.config.vocab_size);
  const int64_t T = b.tokens(), C = m.C(), V = m.config.vocab_size;
  const int64_t n = static_cast<int64_t>(slots.size());
  if (n == 0) return;
  m.acts.ensure(m.backend, m.config, lora_rank_of(m.lora), T, false);
  // Row indices: token t of slot s goes to cache row k_begin + (k_len − q_len) + (t − q_begin);
  // slot s's last new token is row q_begin + q_len − 1.
  std::vector<int32_t> index(static_cast<size_t>(T + n));
  for (int64_t s = 0; s < n; ++s) {
    const SeqSpan& sp = b.layout.seqs[static_cast<size_t>(s)];
    for (int32_t i = 0; i < sp.q_len; ++i)
      index[static_cast<size_t>(sp.q_begin + i)] = sp.k_begin + sp.k_len - sp.q_len + i;
    index[static_cast<size_t>(T + s)] = sp.q_begin + sp.q_len - 1;
  }
  const size_t index_bytes = index.size() * sizeof(int32_t);
  if (m.decode_index_buffer.bytes() < index_bytes) {
    m.decode_index_buffer = Buffer();
    m.decode_index_buffer = m.backend.allocate(index_bytes);
  }
  const Tensor all_rows =
      m.decode_index_buffer.view(DType::I32, Shape{static_cast<int64_t>(index.size())});
  const int64_t logit_rows = keep_logits ? n : std::min(n, m.acts.lm_chunk);
  const size_t logit_bytes = static_cast<size_t>(logit_rows * V) * sizeof(float);
  if (m.decode_logits_buffer.bytes() < logit_bytes) {
    m.decode_logits_buffer = Buffer();
    m.decode_logits_buffer = m.backend.allocate(logit_bytes);
  }
  // ids and positions (no targets: a decode step computes no loss), then the row index.
  m.backend.upload(slice1d(m.acts.ids, 0, T), b.ids.data());
  m.backend.upload(slice1d(m.acts.positions, 0, T), b.positions.data());
  m.backend.upload(all_rows, index.data());
  Tensor uniforms;
  if (pick.kind == DecodePick::Kind::Sampled) {
    SMOL_CHECK(pick.uniforms && static_cast<int64_t>(pick.uniforms->size()) == n,
               "decode_sampled: ", pick.uniforms ? pick.uniforms->size() : 0, " uniforms for ", n,
               " slots");
    if (m.decode_uniform_buffer.bytes() < static_cast<size_t>(n) * sizeof(float)) {
      m.decode_uniform_buffer = Buffer();
      m.decode_uniform_buffer = m.backend.allocate(static_cast<size_t>(n) * sizeof(float));
    }
    uniforms = m.decode_uniform_buffer.view(DType::F32, Shape{n});
    m.backend.upload(uniforms, pick.uniforms->data());
  }
  m.decode_kv_rows = slice1d(all_rows, 0, T);
  const Tensor last_rows = slice1d(all_rows, T, n);
  m.backend.run_as_graph(m.decode_graph, [&] {
    m.forward_layers(b, false, 0, true);
    // Logits of each slot's last new token only: gather those rows, then one matmul per chunk.
    const Tensor lnf = leading(m.acts.lnf, Shape{T, C});
    for (int64_t s0 = 0; s0 < n; s0 += m.acts.lm_chunk) {
      const int64_t rows = std::min(m.acts.lm_chunk, n - s0);
      const Tensor gathered = leading(m.acts.last_rows, Shape{rows, C});
      m.backend.gather_rows(gathered, lnf, slice1d(last_rows, s0, rows));
      const Tensor out = m.decode_logits_buffer.view(
          DType::F32, Shape{rows, V},
          keep_logits ? static_cast<size_t>(s0 * V) * sizeof(float) : 0);
      if (const QuantMatrix& q = m.weights.output_weight_quant(); !q.empty())
        m.backend.matmul_quantized(out, gathered, q);
      else
        m.backend.matmul(out, gathered, m.weights.output_weight(), Transpose::No, Transpose::Yes);
      // On the device: 4 bytes per sequence come back, not 4·V.
      if (pick.kind == DecodePick::Kind::Greedy)
        m.backend.argmax(slice1d(m.acts.argmax, s0, rows), out);
      else if (pick.kind == DecodePick::Kind::Sampled)
        m.backend.sample_tokens(slice1d(m.acts.argmax, s0, rows), out, slice1d(uniforms, s0, rows),
                                pick.temperature, pick.top_p);
    }
  });
  m.decode_kv_rows = Tensor{};
  for (size_t i = 0; i < slots.size(); ++i) m.cache.set_length(slots[i], b.layout.seqs[i].k_len);
}

std::vector<float> LlamaModel::decode(const std::vector<int32_t>& slots,
                                      const std::vector<std::vector<int32_t>>& new_tokens) {
  Impl& m = *impl_;
  decode_step(m, slots, new_tokens, DecodePick{});
  if (slots.empty()) return {};
  const int64_t n = static_cast<int64_t>(slots.size()), V = m.config.vocab_size;
  return download_f32(m.backend, m.decode_logits_buffer.view(DType::F32, Shape{n, V}));
}

std::vector<int32_t> LlamaModel::decode_greedy(
    const std::vector<int32_t>& slots, const std::vector<std::vector<int32_t>>& new_tokens) {
  Impl& m = *impl_;
  decode_step(m, slots, new_tokens, DecodePick{DecodePick::Kind::Greedy});
  std::vector<int32_t> tokens(slots.size());
  if (!slots.empty())
    m.backend.download(tokens.data(),
                       slice1d(m.acts.argmax, 0, static_cast<int64_t>(slots.size())));
  return tokens;
}

std::vector<int32_t> LlamaModel::decode_sampled(const std::vector<int32_t>& slots,
                                                const std::vector<std::vector<int32_t>>& new_tokens,
                                                const std::vector<float>& uniforms,
                                                float temperature, float top_p) {
  Impl& m = *impl_;
  decode_step(m, slots, new_tokens,
              DecodePick{DecodePick::Kind::Sampled, &uniforms, temperature, top_p});
  std::vector<int32_t> tokens(slots.size());
  if (!slots.empty())
    m.backend.download(tokens.data(),
                       slice1d(m.acts.argmax, 0, static_cast<int64_t>(slots.size())));
  return tokens;
}

}  // namespace smol
