// The op interface every backend implements (docs/design.md §2): cpu (fp32 reference),
// cuda (bf16 activations, fp32 accumulation), cuda-emu (the cuda sources run on the CPU).
//
// Conventions, shared by all ops:
//  - Tensors are dense row-major views. "[T, C]" means T rows of C contiguous elements.
//  - T is the number of tokens of a packed batch (several sequences back to back).
//  - Ops whose doc says "accumulates" add into their output (+=); every other op overwrites.
//  - Activation dtype is backend-defined (activation_dtype()); parameters handed to ops have
//    the dtype the caller allocated them with. The cpu backend accepts only F32 (and I32 ids),
//    except for frozen weights: see accepts_bf16_weights().
//  - kernels/ knows nothing of models, configs or files: ops are named after the math.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/splitmix64.h"
#include "kernels/quant_matrix.h"
#include "kernels/tensor.h"

namespace smol {

class Backend;

// Owning device allocation; move-only. view() gives Tensor views over it.
class Buffer {
 public:
  Buffer() = default;
  Buffer(Backend* backend, void* data, size_t bytes)
      : backend_(backend), data_(data), bytes_(bytes) {}
  Buffer(Buffer&& o) noexcept { *this = std::move(o); }
  Buffer& operator=(Buffer&& o) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer();

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  // A view of `shape` starting `byte_offset` bytes in; checked against the allocation.
  Tensor view(DType dtype, Shape shape, size_t byte_offset = 0) const;

 private:
  Backend* backend_ = nullptr;
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

// Which keys each query of a packed batch sees (flash-attention "varlen" semantics with
// bottom-right aligned causal masking). Sequence s owns query rows [q_begin, q_begin+q_len)
// of q/out and key/value rows [k_begin, k_begin+k_len) of k/v, with q_len <= k_len. Its
// query i sits at position p = k_len - q_len + i and attends to its keys 0..p.
// Training: q_len == k_len (each sequence sees only itself: block-diagonal causal).
// Decoding with a KV cache: the new tokens are the last q_len of k_len cached keys.
struct SeqSpan {
  int32_t q_begin = 0, q_len = 0, k_begin = 0, k_len = 0;
};
struct AttentionLayout {
  std::vector<SeqSpan> seqs;
  int32_t max_q_len = 0, max_k_len = 0;
};

// One tensor of a multi-tensor AdamW step (docs/design.md §4, docs/seed-behaviour.md §6).
struct AdamWTensor {
  Tensor param, grad, m, v;  // all F32 (fp32 master weights and state), same shape
  float weight_decay = 0.0f;
};
struct AdamWHyper {
  float lr = 0, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
  int64_t step = 1;         // 1-based, for bias correction 1 - beta^step
  float grad_scale = 1.0f;  // global-norm clip factor applied to every grad (without clip_state)
  // Clipping on the device (docs/design.md §4), so a step needs no host wait. When clip_state
  // (F64 [3]) is given, grad_scale is ignored and the op reads clip_state[0] = Σ grad² (written by
  // sum_of_squares_into), norm = sqrt of it, and — torch.nn.utils.clip_grad_norm_, in double —
  //   grad_scale = fp32(min(1, max_grad_norm / (norm + 1e-6)))   when max_grad_norm > 0, else 1.
  // A norm that is not finite skips the update: no tensor changes, and if clip_state[1] is 0 the
  // op records the first skipped step there (clip_state[1] = step, clip_state[2] = its Σ grad²).
  // Once clip_state[1] is set every later update with this state is skipped too (the host stops
  // the run when it reads the state; until then the tensors stay as before the first bad step).
  Tensor clip_state;
  double max_grad_norm = 0;
  // With clip_state: the step's loss (F32 [1], e.g. LlamaModel::loss_accumulator()). A value that
  // is not finite skips the update exactly as a non-finite norm does, recording the step with its
  // (finite) Σ grad², so the host tells the two causes apart; the trainer reads the loss lazily
  // (docs/design.md §4 "The loop") and the update must not wait for it.
  Tensor loss_check;
};

enum class Transpose : uint8_t { No, Yes };

// The composite LM head + cross-entropy (lm_head_cross_entropy below): what it writes.
struct LmHeadOutputs {
  Tensor losses;   // F32 [T], required: −log softmax(hidden·Wᵀ)[target] (0 where ignored)
  Tensor dhidden;  // optional [T, C]: overwritten with loss_scale · ∂CE/∂hidden (needs targets)
  Tensor dweight;  // optional [V, C]: accumulates loss_scale · ∂CE/∂W
  Tensor argmax;   // optional I32 [T]: argmax of each row's logits (first maximum wins)
};

// An observer the backend calls around every op (profiling, counting, tracing): before_op
// right after the op's contract checks passed, after_op when the op returns (also when it
// throws). allocate, release and synchronize are not reported (a hook may synchronise). `op` is the
// op's public name ("matmul", "lm_head_cross_entropy", ...). Composite ops built from primitives
// nest: the primitives report inside their composite, with depth + 1. The hook is not owned; it
// must outlive its registration.
class OpHook {
 public:
  virtual ~OpHook() = default;
  virtual void before_op(Backend& backend, const char* op, int depth) = 0;
  virtual void after_op(Backend& backend, const char* op, int depth) = 0;
};

// The op interface. Every public op is non-virtual: it checks the op's contract once, for all
// backends (shapes, dtypes, argument ranges; kernels/backend_ops.cpp), tells the OpHook, and
// calls the backend's protected do_<op>. A backend overrides only do_<op>, and may assume the
// contract holds; it still checks what only it knows (sizes its kernels cannot handle, ids read
// on the device). Composite ops (lm_head_cross_entropy) have a default do_<op> built from the
// primitives, which a backend may replace with a fused one.
//
// dtypes: "float" tensors are F32 or the backend's activation_dtype() (the cpu backend: F32
// only); ids, positions and targets are I32; norm statistics (rstd, lse), losses, gradients of
// norm weights and everything an optimizer touches are F32.
class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  // dtype of activations this backend computes in (F32 on cpu, BF16 on cuda).
  virtual DType activation_dtype() const = 0;
  // True when `dtype` may hold floating-point data for this backend's ops.
  bool is_float_dtype(DType dtype) const {
    return dtype == DType::F32 || dtype == activation_dtype();
  }
  // True when a weight operand may be BF16 even though the activations are not: exactly
  // matmul's b, embedding_forward's table and lm_head_cross_entropy's weight (the operands a
  // frozen weight fills; training.cpu_precision: bf16, docs/cpu-speed.md "bf16 on cpu"). The
  // cpu backend says yes: it multiplies bf16 weights with bf16-rounded activations, summing in
  // fp32. Every other operand keeps is_float_dtype. Default: only where bf16 is the activation
  // dtype anyway (cuda, cuda-emu).
  virtual bool accepts_bf16_weights() const { return activation_dtype() == DType::BF16; }

  // ---- hooks, streams, events ----------------------------------------------------------------
  // Installs (or, with nullptr, removes) the observer of every op. One hook at a time.
  void set_op_hook(OpHook* hook) { hook_ = hook; }
  OpHook* op_hook() const { return hook_; }
  // The device ordinal this backend runs on ("cuda:1" → 1; 0 for cpu and cuda-emu).
  virtual int device_ordinal() const { return 0; }
  // The stream every op of this backend is ordered on, as an opaque handle for a communicator
  // (NCCL takes a cudaStream_t): a cudaStream_t on cuda and cuda-emu, nullptr on cpu, whose
  // ops complete before they return.
  virtual void* stream_handle() { return nullptr; }
  // Events order work across streams without a host wait: record_event() marks the point the
  // stream has reached (a fresh event the caller owns; destroy_event frees it); wait_event()
  // makes this backend's later work wait for it on the device. On cpu both are no-ops (an
  // event is always complete).
  virtual void* record_event() { return nullptr; }
  virtual void wait_event(void* event) { (void)event; }
  virtual void destroy_event(void* event) { (void)event; }
  // Timing events, for profilers that must not synchronise per op (bench/model/op_timer.h):
  // record_timing_event() records an event with timing enabled on this backend's stream — into
  // `reuse` when given (an event from an earlier call, so a profiler can keep a pool), else into
  // a fresh one the caller owns (destroy_event frees it) — and returns it. elapsed_ms(start,
  // end) is the device time between two such events; both must have completed (synchronize()
  // once after the last one), else it throws. Default: no timing events (nullptr; elapsed_ms
  // throws), so callers fall back to the wall clock (cpu, whose ops finish before they return).
  // cuda-emu records the host time of the call, which there is when the work before it ran.
  virtual void* record_timing_event(void* reuse) {
    (void)reuse;
    return nullptr;
  }
  virtual double elapsed_ms(void* start, void* end);
  // Debug mode for checks that only the device can make cheaply (token ids and targets inside
  // the vocabulary, read where the kernel reads them): each costs a host wait, so the cuda
  // backend runs them only when asked (default: on for cuda-emu, off for cuda; the environment
  // variable SMOL_DEVICE_CHECKS=0/1 overrides). The host checks every batch anyway
  // (the model packs and checks every batch). The cpu backend always checks (it reads ids on
  // the host).
  virtual void set_device_checks(bool on) { (void)on; }

  // ---- memory ----------------------------------------------------------------------------
  Buffer allocate(size_t bytes);  // zero-filled
  void release(void* data);       // called by ~Buffer
  // Bytes this backend has allocated and not released: now, and the most at any moment since
  // construction or the last reset_peak_memory() (what `train` and the benchmarks report as
  // peak device memory; allocator slack and library workspaces are not counted).
  struct MemoryStats {
    size_t in_use = 0, peak = 0;
  };
  MemoryStats memory_stats() const { return memory_; }
  void reset_peak_memory() { memory_.peak = memory_.in_use; }
  // Copies dst.bytes() host bytes (of dst.dtype) to the device. The host memory may be reused
  // as soon as upload returns (a backend stages it if its copy is asynchronous).
  void upload(Tensor dst, const void* host);
  // Copies src to host memory; the bytes are there when download returns (a host wait).
  void download(void* host, const Tensor& src);
  void synchronize();  // waits until every queued op has finished
  void fill_zero(Tensor t);
  void copy(Tensor dst, const Tensor& src);  // same element count; casts between float dtypes

  // ---- row copies (docs/design.md §2.8) ------------------------------------------------------
  // Row scatter, bit for bit: for every pair and every i < N, pair.dst[index[i], :] =
  // pair.src[i, :]. dst [R, W] and src [N, W] of one dtype (any dtype: rows are copied as
  // bytes); index I32 [N] on the device, each index in [0, R) and all distinct (two equal ones
  // would race on cuda). Every pair shares the index, and the pairs are one launch on cuda: a
  // decode step appends every slot's new keys and values of a layer to the KV cache in one op.
  // An index outside [0, R) is an Error on cpu; on cuda that row is not written (and with
  // set_device_checks, an Error naming it).
  struct RowScatter {
    Tensor dst;
    Tensor src;
  };
  static constexpr size_t kMaxScatterPairs = 2;
  void scatter_rows(std::span<const RowScatter> pairs, const Tensor& index);
  // Row gather, bit for bit: dst[i, :] = src[index[i], :] for i < N; dst [N, W], src [R, W] of
  // one dtype; index I32 [N] in [0, R) (outside: as scatter_rows). Decoding gathers each
  // sequence's last hidden row before the LM head with it.
  void gather_rows(Tensor dst, const Tensor& src, const Tensor& index);

  // ---- CUDA graphs (docs/design.md §2.8) -------------------------------------------------------
  // An instantiated graph a backend keeps between runs of the same work (opaque to callers).
  class Graph {
   public:
    virtual ~Graph() = default;
  };
  // What run_as_graph did, for the tests and benchmarks (counts since construction).
  struct GraphStats {
    uint64_t launches = 0;         // graphs launched (each replaces the work's launches)
    uint64_t instantiations = 0;   // graphs instantiated (first use, or topology changed)
    uint64_t updates = 0;          // instantiated graphs updated in place (cudaGraphExecUpdate)
    uint64_t eager_fallbacks = 0;  // captures abandoned (see run_as_graph), work run directly
    uint64_t last_nodes = 0;       // nodes (kernels, copies, memsets) of the last graph launched
  };
  // True when this backend records work into graphs (cuda and cuda-emu: yes, unless switched
  // off by set_graphs_enabled(false) or SMOL_CUDA_GRAPHS=0; cpu: never).
  virtual bool graphs_enabled() const { return false; }
  virtual void set_graphs_enabled(bool on) { (void)on; }
  GraphStats graph_stats() const { return graph_stats_; }
  // Runs `work`, a sequence of this backend's ops, once. With graphs_enabled(), the ops are
  // recorded (stream capture) instead of run, `graph` (empty on first use) is updated to the
  // recording — or re-instantiated when its topology changed — and launched as one graph: one
  // launch instead of one per kernel. `work` must then contain no host wait (download,
  // synchronize, sum_of_squares) and no allocation; uploads of up to a few KiB are staged and
  // captured. When the recording meets something only an eager run can do (a scratch area or
  // the attention-layout area must grow, the upload staging must wrap), the capture is
  // abandoned before any of its work ran and `work` runs directly instead (counted in
  // eager_fallbacks): `work` may run twice on the host, so it must not change host state that
  // a second run would see. Without graphs, or with an OpHook installed (a hook observes ops as
  // they run; a wall-clock timing hook synchronises after each), `work` runs directly.
  void run_as_graph(std::unique_ptr<Graph>& graph, const std::function<void()>& work);

  // ---- dense linear algebra ----------------------------------------------------------------
  // c[M,N] = alpha * op(a) · op(b) + beta * c, row-major; op(x) = x or xᵀ.
  // A Linear layer y = x·Wᵀ is matmul(y, x, W, No, Yes); dx = dy·W is (No, No);
  // dW += dyᵀ·x is (Yes, No, 1, 1).
  void matmul(Tensor c, const Tensor& a, const Tensor& b, Transpose ta, Transpose tb,
              float alpha = 1.0f, float beta = 0.0f);
  // The same with a separate addend (docs/design.md §2.9: a projection writing straight into the
  // residual stream): c[M,N] = alpha · op(a) · op(b) + beta · addend, addend [M,N] of c's dtype.
  // addend may be c itself (then this is the matmul above) but must not otherwise overlap c, a
  // or b; c must not overlap a or b. cuda hands addend to cuBLASLt as the C operand (C ≠ D: one
  // rounding of the sum, no extra pass); the default copies addend into c, then matmul with beta.
  // Reported to the OpHook as "matmul".
  void matmul(Tensor c, const Tensor& a, const Tensor& b, Transpose ta, Transpose tb, float alpha,
              float beta, const Tensor& addend);
  // A batch of equally shaped products (docs/design.md §2.9: gate and up of one input, and their
  // full fine-tuning weight gradients): cs[i] = alpha · op(as[i]) · op(bs[i]) + beta · cs[i] for
  // i < cs.size(), where `as` or `bs` may hold one tensor that every product shares. Exactly the
  // results of the single matmuls. Every c must have its own memory (no two cs overlap, no c
  // overlaps an operand). cuda runs one strided-batched cuBLASLt GEMM when each list is evenly
  // spaced in memory (a shared operand: stride 0), else one GEMM per product; the default (cpu)
  // runs the single matmuls. Reported to the OpHook as one "matmul_batched".
  void matmul_batched(std::span<const Tensor> cs, std::span<const Tensor> as,
                      std::span<const Tensor> bs, Transpose ta, Transpose tb, float alpha = 1.0f,
                      float beta = 0.0f);
  // Block-quantised weights (docs/cpu-speed.md "Quantised inference"): y [T, N] = x [T, K] · Wᵀ
  // for W a QuantMatrix [N, K] (the Linear layout of matmul(y, x, W, No, Yes)); x and y F32. The
  // result equals dequantise-then-matmul within the rounding of x to int8 per 32-block (cpu:
  // |Δy| ≤ Σ_blocks d_x/2 · Σ|w|, d_x = max|x_block|/127). Only formats supports_quantized()
  // names are accepted; a backend without any (cuda, cuda-emu) answers false and the model
  // keeps dequantised weights for it.
  virtual bool supports_quantized(QuantFormat format) const {
    (void)format;
    return false;
  }
  // The layout this backend's kernels read a file's `format` in fastest, for a matrix of `cols`
  // columns: the model repacks at load when it differs (cpu: Q4_1 → Q4_1_R2 for the SIMD int8
  // kernels, kernels/quant_matrix.h). Default: the format as it is.
  virtual QuantFormat preferred_quant_layout(QuantFormat format, int64_t cols) const {
    (void)cols;
    return format;
  }
  void matmul_quantized(Tensor y, const Tensor& x, const QuantMatrix& w);
  // Several matrices that read the same x (a layer's q, k, v; gate, up): ys[i] = x · ws[i]ᵀ,
  // exactly the single calls' results, with x quantised once and one parallel pass over all
  // the rows (one synchronisation instead of one per matrix). At most kMaxQuantGroup matrices.
  static constexpr size_t kMaxQuantGroup = 8;
  void matmul_quantized(std::span<const Tensor> ys, const Tensor& x,
                        std::span<const QuantMatrix> ws);
  // y += alpha * x (same shape).
  void axpy(Tensor y, const Tensor& x, float alpha);
  void scale(Tensor x, float alpha);

  // ---- model ops ---------------------------------------------------------------------------
  // out[T,C] = table[ids[t], :]; ids I32 [T].
  void embedding_forward(Tensor out, const Tensor& ids, const Tensor& table);
  // Accumulates dtable[ids[t], :] += dout[t, :] (deterministic order).
  void embedding_backward(Tensor dtable, const Tensor& dout, const Tensor& ids);

  // RMSNorm, docs/formats.md §2: out = weight ⊙ (x / sqrt(mean(x²) + eps)), statistics in fp32.
  // rstd F32 [T] keeps 1/sqrt(mean(x²)+eps) for the backward.
  void rmsnorm_forward(Tensor out, Tensor rstd, const Tensor& x, const Tensor& weight, float eps);
  // Fused residual add + RMSNorm: sum = a + b; out = rmsnorm(sum). sum may alias a.
  void add_rmsnorm_forward(Tensor sum, Tensor out, Tensor rstd, const Tensor& a, const Tensor& b,
                           const Tensor& weight, float eps);
  // Accumulates dx += ∂L/∂x and dweight += ∂L/∂weight, given dout and the forward's x, rstd.
  void rmsnorm_backward(Tensor dx, Tensor dweight, const Tensor& dout, const Tensor& x,
                        const Tensor& weight, const Tensor& rstd);

  // RoPE, rotate-half layout (docs/formats.md §2), in place on x [T, H, D]:
  // pair (x[i], x[i+D/2]) rotates by positions[t] · theta^(−2i/D). positions I32 [T].
  void rope_forward(Tensor x, const Tensor& positions, float theta);
  // In place on dx [T, H, D]: the transpose of the rotation (rotate by the negative angle).
  void rope_backward(Tensor dx, const Tensor& positions, float theta);

  // Causal GQA attention over a packed batch: q [Tq, Hq, D], k, v [Tk, Hkv, D] with
  // Hq % Hkv == 0 (query head h reads kv head h / (Hq/Hkv)); out [Tq, Hq, D];
  // lse F32 [Tq, Hq] = log-sum-exp of each query's scaled scores (kept for the backward).
  // Softmax in fp32. Rows of q not covered by the layout are left untouched. Every sequence's
  // rows must lie inside q and k, with q_len <= k_len.
  void attention_forward(Tensor out, Tensor lse, const Tensor& q, const Tensor& k, const Tensor& v,
                         const AttentionLayout& layout, float scale);
  // Overwrites dq, dk, dv (rows not covered by the layout are zeroed).
  void attention_backward(Tensor dq, Tensor dk, Tensor dv, const Tensor& dout, const Tensor& q,
                          const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                          const AttentionLayout& layout, float scale);

  // SwiGLU: out = silu(gate) ⊙ up, silu(z) = z·sigmoid(z); all [T, F].
  void swiglu_forward(Tensor out, const Tensor& gate, const Tensor& up);
  void swiglu_backward(Tensor dgate, Tensor dup, const Tensor& dout, const Tensor& gate,
                       const Tensor& up);
  // The same gradients side by side, dgate_up [T, 2F]: row t = (dgate[t, :], dup[t, :]), the
  // layout one GEMM against the stacked [W_gate; W_up] [2F, C] reads (dx = dgate_up·[W_gate; W_up]
  // with K = 2F instead of two GEMMs, the second re-reading dx: docs/design.md §2.9).
  // dgate_up must not overlap dout, gate or up. Reported to the OpHook as "swiglu_backward".
  void swiglu_backward(Tensor dgate_up, const Tensor& dout, const Tensor& gate, const Tensor& up);

  // Cross-entropy over logits [T, V] against targets I32 [T] (−100 = ignored).
  // losses F32 [T] gets −log softmax(logits)[target] (0 where ignored). If dlogits is given
  // (may alias logits), it gets dloss_scale · (softmax − onehot(target)), 0 on ignored rows.
  // If argmax (I32 [T]) is given, it gets each row's argmax of the logits as they were before
  // dlogits overwrote them (first maximum wins), ignored rows included: the LM head's token
  // accuracy, read in the same pass over the logits on cuda.
  void cross_entropy(Tensor losses, Tensor* dlogits, const Tensor& logits, const Tensor& targets,
                     float dloss_scale, Tensor argmax = {});
  // out I32 [T] = argmax over the last dimension of x [T, V] (first maximum wins).
  void argmax(Tensor out, const Tensor& x);
  // ---- sampled decoding on the device (docs/design.md §3 "Sampling") ----
  // out I32 [T]: row t's token drawn from logits F32 [T, V] at temperature > 0 within the top_p
  // nucleus, with the uniform uniforms F32 [T][t] in [0, 1), by the exact rule of
  // kernels/token_sampling.h (the same token on every backend). A row holding a value that is not
  // finite gets −(i + 1), i its first such index, for the caller to report.
  void sample_tokens(Tensor out, const Tensor& logits, const Tensor& uniforms, float temperature,
                     float top_p);

  // Dropout with a counter-based mask: element e of the flattened tensor is kept iff
  // hash(seed, e) ≥ p, kept values scaled by 1/(1−p). The same (seed, p) gives the same mask
  // on every backend, so the backward is dropout(dx, dy, p, seed). out may alias in.
  void dropout(Tensor out, const Tensor& in, float p, uint64_t seed);

  // ---- composite ops -----------------------------------------------------------------------
  // RoPE on one attention layer's queries q [T, Hq, D] and keys k [T, Hkv, D] (same T, D and
  // positions): exactly rope_forward(q) then rope_forward(k), and rope_backward of both for the
  // backward. Default: the two primitives (kernels/rope_qk.cpp); the cuda backend rotates both
  // tensors in one launch (docs/design.md §2.7). q and k must not overlap.
  void rope_qk_forward(Tensor q, Tensor k, const Tensor& positions, float theta);
  void rope_qk_backward(Tensor dq, Tensor dk, const Tensor& positions, float theta);

  // ---- fused RoPE: attention backward, decode append (docs/design.md §2.7 "Fused RoPE") -------
  // The rotation a layer's q and k carry (rope_qk_forward's arguments): positions I32 [T], theta.
  struct Rotary {
    Tensor positions;
    float theta = 0.0f;
  };
  // attention_backward for q and k that rope_qk_forward rotated: dq and dk are the gradients
  // with respect to the un-rotated q and k, i.e. exactly attention_backward followed by
  // rope_qk_backward(dq, dk, rotary.positions, rotary.theta). q and k share their T rows
  // (Tq == Tk, a training pack): a dq row's position is positions[its token], a dk row's too.
  // Default: that composition (its two ops report to the OpHook at depth + 1); cuda's flash
  // kernels rotate dq and dk in registers before their one store (no rope launch, one rounding
  // to bf16 instead of two). Reported as "attention_rope_backward".
  void attention_rope_backward(Tensor dq, Tensor dk, Tensor dv, const Tensor& dout, const Tensor& q,
                               const Tensor& k, const Tensor& v, const Tensor& out,
                               const Tensor& lse, const AttentionLayout& layout, float scale,
                               const Rotary& rotary);
  // Decode's RoPE and KV-cache append as one op: rotates q [T, Hq, D] and k [T, Hkv, D] in place
  // and writes k's rotated rows and v's rows [T, Hkv, D] to rows index[t] of k_cache and v_cache
  // [R, Hkv, D] (one dtype for q, k, v and both caches), bit for bit the result of
  // rope_qk_forward(q, k, rotary.positions, rotary.theta) then
  // scatter_rows({{k_cache, k}, {v_cache, v}}, index) over [R, Hkv·D] rows (index I32 [T], each
  // in [0, R) and distinct; outside: as scatter_rows). Default: those two ops (at depth + 1);
  // cuda: one launch. Reported as "rope_append_kv".
  void rope_append_kv(Tensor q, Tensor k, const Tensor& v, Tensor k_cache, Tensor v_cache,
                      const Tensor& index, const Rotary& rotary);
  // ---- end of fused RoPE --------------------------------------------------------------------

  // The LM head and its cross-entropy without ever holding the [T, V] logits (docs/design.md
  // §2): over chunks of as many rows as logits_scratch holds, logits = hidden·weightᵀ (hidden
  // [T, C], weight
  // [V, C], tied or untied), then cross_entropy against targets I32 [T] into out.losses, the
  // optional argmax, and with out.dhidden: dlogits = loss_scale·(softmax − onehot) in place,
  // dhidden = dlogits·weight, and with out.dweight also dweight += dlogitsᵀ·hidden.
  // logits_scratch [R ≥ 1, V] of a float dtype holds one chunk's logits: R rows a chunk, so
  // callers size it by lm_head_chunk_rows() (fewer, larger chunks re-read the weight and, in full
  // fine-tuning, read and write dweight fewer times; docs/design.md §2.6).
  // host_targets, when not empty, holds the same T values as targets on the host: a chunk with
  // no supervised target and no argmax wanted is then skipped (its losses and dhidden rows are
  // zeroed: both are exactly zero). out.losses is 0 at every ignored position either way, so
  // Σ losses is the supervised sum.
  static constexpr int64_t kLmHeadChunkRows = 256;
  // The rows of logits_scratch this backend's LM head works best with (default
  // kLmHeadChunkRows: 256 fp32 rows of SmolLM2's vocabulary are 50 MB; cuda: 1024, and 4096
  // when weight_trains — full fine-tuning, whose chunks also read and write the fp32 weight
  // gradient; docs/design.md §2.6).
  virtual int64_t lm_head_chunk_rows(bool weight_trains = false) const {
    (void)weight_trains;
    return kLmHeadChunkRows;
  }
  void lm_head_cross_entropy(const LmHeadOutputs& out, const Tensor& hidden, const Tensor& weight,
                             const Tensor& targets, Tensor logits_scratch, float loss_scale,
                             std::span<const int32_t> host_targets = {});

  // ---- LoRA down-projection with dropout on the fly (docs/design.md §2.7 "LoRA dropout on the
  // fly") ----------------------------------------------------------------------------------
  // n ≤ kMaxLoraDownMembers adapters that read the same input x [T, C] (a layer's q, k, v or
  // gate, up; or one projection alone), each with its own dropout mask:
  //   drop_i(x) = dropout(x, p, seeds[i]) exactly as dropout() above defines it (element
  //   e = t·C + c kept iff dropout_uniform(seeds[i], e) ≥ p, kept values scaled by 1/(1−p)).
  // lora_down_forward overwrites utᵢ [rᵢ, T] = Aᵢ [rᵢ, C] · drop_i(x)ᵀ (u kept transposed, the
  // grouped path's layout: rows of a stacked [ΣR, T]).
  // lora_down_backward, with gtᵢ [rᵢ, T] = (dyᵢ·Bᵢ)ᵀ, accumulates
  //   dAᵢ [rᵢ, C] += s · gtᵢ · drop_i(x)   and, when dx has data,
  //   dx [T, C]   += s · Σᵢ drop_i(gtᵢᵀ · Aᵢ)   (dropout is linear with the same mask).
  // dtypes: x, dx, ut, gt float (the activation dtype on cuda); A and dA F32. scratch [≥ T·C
  // elements] of a float dtype is the default's room for drop_i(x) (and dx's term); a backend
  // that fuses the mask (fuses_lora_dropout()) may ignore it. p in [0, 1); p = 0 is no mask.
  // uts, gts, dx and scratch must not overlap x, A, dA or each other. Default: dropout, matmul
  // and axpy per member (kernels/lora_down.cpp, exact for the cpu backend); cuda: one launch
  // forward and two backward that read x once per group (kernels/cuda/lora_down.cu).
  static constexpr size_t kMaxLoraDownMembers = 3;
  // True when lora_down_forward / lora_down_backward apply the masks on the fly inside their
  // kernels (cuda, cuda-emu): the model then runs LoRA with dropout through them (one op per
  // group and direction) instead of per projection (dropout + matmul + axpy each).
  virtual bool fuses_lora_dropout() const { return false; }
  void lora_down_forward(std::span<const Tensor> uts, const Tensor& x, std::span<const Tensor> as,
                         float p, std::span<const uint64_t> seeds, Tensor scratch);
  void lora_down_backward(std::span<const Tensor> das, Tensor dx, std::span<const Tensor> gts,
                          const Tensor& x, std::span<const Tensor> as, float p,
                          std::span<const uint64_t> seeds, float s, Tensor scratch);
  // ---- end of LoRA down-projection ------------------------------------------------------------

  // ---- LoRA up-projections fused (docs/design.md §2.7 "LoRA up-projections fused") -----------
  // n ≤ kMaxLoraUpMembers adapters' B sides over the same T tokens (a group's members, or one
  // projection alone). Member i: utᵢ [rᵢ, T] (u = drop(x)·Aᵢᵀ kept transposed, rows of a
  // group's stacked uᵀ), Bᵢ [Nᵢ, rᵢ] F32, yᵢ / dyᵢ [T, Nᵢ].
  // lora_up_forward accumulates   yᵢ += s · utᵢᵀ · Bᵢᵀ.
  // lora_up_backward accumulates  dBᵢ [Nᵢ, rᵢ] += s · dyᵢᵀ · utᵢᵀ  and overwrites
  //                               gtᵢ [rᵢ, T]   = Bᵢᵀ · dyᵢᵀ   (the lora_down_backward input).
  // dtypes: y, dy, ut, gt float (the activation dtype on cuda); B and dB F32. Outputs must not
  // overlap inputs or each other. Default: one matmul per member and product — exactly what the
  // per-projection and grouped paths ran before (kernels/lora_up.cpp, exact for the cpu
  // backend); cuda: one launch forward and two backward for the whole group, B read in fp32
  // without a cast (kernels/cuda/lora_up.cu).
  static constexpr size_t kMaxLoraUpMembers = 3;
  // True when lora_up_forward / lora_up_backward run fused (cuda, cuda-emu): the model then
  // sends every B product through them (one op per group or single projection and direction).
  // cpu keeps its per-member matmuls (and op counts) unchanged.
  virtual bool fuses_lora_up() const { return false; }
  void lora_up_forward(std::span<const Tensor> ys, std::span<const Tensor> uts,
                       std::span<const Tensor> bs, float s);
  void lora_up_backward(std::span<const Tensor> dbs, std::span<const Tensor> gts,
                        std::span<const Tensor> dys, std::span<const Tensor> uts,
                        std::span<const Tensor> bs, float s);
  // ---- end of LoRA up-projections -------------------------------------------------------------

  // ---- optimisation ------------------------------------------------------------------------
  // Σ x² over all the tensors, accumulated in a fixed order (deterministic). Returns it on the
  // host (a host wait on cuda).
  double sum_of_squares(std::span<const Tensor> tensors);
  // The same Σ x², bit for bit, written to out F64 [1] on the device (no host wait): the global
  // grad norm² that adamw_step's clip_state reads.
  void sum_of_squares_into(Tensor out, std::span<const Tensor> tensors);
  // acc F32 [1] += Σ x over x F32 (any shape), summed in double in a fixed order
  // (deterministic) and added to acc in double before rounding to fp32. Stays on the device:
  // a training step accumulates its micro-batches' losses here and reads them once.
  void accumulate_sum(Tensor acc, const Tensor& x);
  // AdamW with decoupled weight decay on every tensor (docs/seed-behaviour.md §6), clipped by
  // hyper.grad_scale or, with hyper.clip_state, by the device-side clip (see AdamWHyper):
  // g = grad·grad_scale; m = β1 m + (1−β1) g; v = β2 v + (1−β2) g²;
  // p = p·(1 − lr·wd) − lr · (m/(1−β1^t)) / (sqrt(v/(1−β2^t)) + eps).
  void adamw_step(std::span<AdamWTensor> tensors, const AdamWHyper& hyper);

 protected:
  // Per-backend implementations: called only after the public op checked its contract.
  virtual Buffer do_allocate(size_t bytes) = 0;
  virtual void do_release(void* data) = 0;
  virtual void do_upload(Tensor dst, const void* host) = 0;
  virtual void do_download(void* host, const Tensor& src) = 0;
  virtual void do_synchronize() {}
  virtual void do_fill_zero(Tensor t) = 0;
  virtual void do_copy(Tensor dst, const Tensor& src) = 0;
  virtual void do_scatter_rows(std::span<const RowScatter> pairs, const Tensor& index) = 0;
  virtual void do_gather_rows(Tensor dst, const Tensor& src, const Tensor& index) = 0;
  // Default (no graphs): work(). A graph backend records, updates or instantiates, launches.
  virtual void do_run_as_graph(std::unique_ptr<Graph>& graph, const std::function<void()>& work);
  GraphStats graph_stats_;  // counted by do_run_as_graph
  virtual void do_matmul(Tensor c, const Tensor& a, const Tensor& b, Transpose ta, Transpose tb,
                         float alpha, float beta) = 0;
  // Default: do_matmul for each product in order.
  virtual void do_matmul_batched(std::span<const Tensor> cs, std::span<const Tensor> as,
                                 std::span<const Tensor> bs, Transpose ta, Transpose tb,
                                 float alpha, float beta);
  // Default: do_copy(c, addend), then do_matmul(c, ..., alpha, beta) (exact: the cpu path).
  virtual void do_matmul_addend(Tensor c, const Tensor& a, const Tensor& b, Transpose ta,
                                Transpose tb, float alpha, float beta, const Tensor& addend);
  // Default: throws (no backend reaches it: supports_quantized() is false unless overridden).
  virtual void do_matmul_quantized(std::span<const Tensor> ys, const Tensor& x,
                                   std::span<const QuantMatrix> ws);
  virtual void do_axpy(Tensor y, const Tensor& x, float alpha) = 0;
  virtual void do_scale(Tensor x, float alpha) = 0;
  virtual void do_embedding_forward(Tensor out, const Tensor& ids, const Tensor& table) = 0;
  virtual void do_embedding_backward(Tensor dtable, const Tensor& dout, const Tensor& ids) = 0;
  virtual void do_rmsnorm_forward(Tensor out, Tensor rstd, const Tensor& x, const Tensor& weight,
                                  float eps) = 0;
  virtual void do_add_rmsnorm_forward(Tensor sum, Tensor out, Tensor rstd, const Tensor& a,
                                      const Tensor& b, const Tensor& weight, float eps) = 0;
  virtual void do_rmsnorm_backward(Tensor dx, Tensor dweight, const Tensor& dout, const Tensor& x,
                                   const Tensor& weight, const Tensor& rstd) = 0;
  virtual void do_rope_forward(Tensor x, const Tensor& positions, float theta) = 0;
  virtual void do_rope_backward(Tensor dx, const Tensor& positions, float theta) = 0;
  virtual void do_attention_forward(Tensor out, Tensor lse, const Tensor& q, const Tensor& k,
                                    const Tensor& v, const AttentionLayout& layout,
                                    float scale) = 0;
  virtual void do_attention_backward(Tensor dq, Tensor dk, Tensor dv, const Tensor& dout,
                                     const Tensor& q, const Tensor& k, const Tensor& v,
                                     const Tensor& out, const Tensor& lse,
                                     const AttentionLayout& layout, float scale) = 0;
  virtual void do_swiglu_forward(Tensor out, const Tensor& gate, const Tensor& up) = 0;
  virtual void do_swiglu_backward(Tensor dgate, Tensor dup, const Tensor& dout, const Tensor& gate,
                                  const Tensor& up) = 0;
  virtual void do_swiglu_backward_concat(Tensor dgate_up, const Tensor& dout, const Tensor& gate,
                                         const Tensor& up) = 0;
  virtual void do_cross_entropy(Tensor losses, Tensor* dlogits, const Tensor& logits,
                                const Tensor& targets, float dloss_scale, Tensor argmax) = 0;
  virtual void do_argmax(Tensor out, const Tensor& x) = 0;
  virtual void do_sample_tokens(Tensor out, const Tensor& logits, const Tensor& uniforms,
                                float temperature, float top_p) = 0;
  virtual void do_dropout(Tensor out, const Tensor& in, float p, uint64_t seed) = 0;
  // Default: rope_forward / rope_backward on q, then on k (rope_qk.cpp).
  virtual void do_rope_qk(Tensor q, Tensor k, const Tensor& positions, float theta, bool backward);
  // ---- fused RoPE (defaults: the compositions, kernels/rope_qk.cpp) -------------------------
  virtual void do_attention_rope_backward(Tensor dq, Tensor dk, Tensor dv, const Tensor& dout,
                                          const Tensor& q, const Tensor& k, const Tensor& v,
                                          const Tensor& out, const Tensor& lse,
                                          const AttentionLayout& layout, float scale,
                                          const Rotary& rotary);
  virtual void do_rope_append_kv(Tensor q, Tensor k, const Tensor& v, Tensor k_cache,
                                 Tensor v_cache, const Tensor& index, const Rotary& rotary);
  // ---- end of fused RoPE --------------------------------------------------------------------
  // Default: the chunked loop over matmul, cross_entropy and argmax (backend.cpp).
  virtual void do_lm_head_cross_entropy(const LmHeadOutputs& out, const Tensor& hidden,
                                        const Tensor& weight, const Tensor& targets,
                                        Tensor logits_scratch, float loss_scale,
                                        std::span<const int32_t> host_targets);
  // LoRA down-projection with dropout (lora_down_forward / _backward): default per member
  // dropout + matmul (+ axpy) (kernels/lora_down.cpp); cuda fuses the masks.
  virtual void do_lora_down_forward(std::span<const Tensor> uts, const Tensor& x,
                                    std::span<const Tensor> as, float p,
                                    std::span<const uint64_t> seeds, Tensor scratch);
  virtual void do_lora_down_backward(std::span<const Tensor> das, Tensor dx,
                                     std::span<const Tensor> gts, const Tensor& x,
                                     std::span<const Tensor> as, float p,
                                     std::span<const uint64_t> seeds, float s, Tensor scratch);
  // LoRA up-projections (lora_up_forward / _backward): default one matmul per member and product
  // (kernels/lora_up.cpp); cuda fuses the group into one launch per direction.
  virtual void do_lora_up_forward(std::span<const Tensor> ys, std::span<const Tensor> uts,
                                  std::span<const Tensor> bs, float s);
  virtual void do_lora_up_backward(std::span<const Tensor> dbs, std::span<const Tensor> gts,
                                   std::span<const Tensor> dys, std::span<const Tensor> uts,
                                   std::span<const Tensor> bs, float s);
  virtual double do_sum_of_squares(std::span<const Tensor> tensors) = 0;
  virtual void do_sum_of_squares_into(Tensor out, std::span<const Tensor> tensors) = 0;
  virtual void do_accumulate_sum(Tensor acc, const Tensor& x) = 0;
  virtual void do_adamw_step(std::span<AdamWTensor> tensors, const AdamWHyper& hyper) = 0;

 private:
  // Tells the hook (if any) about one op for the lifetime of the scope.
  class HookScope;
  OpHook* hook_ = nullptr;
  int depth_ = 0;
  MemoryStats memory_;
  std::unordered_map<const void*, size_t> allocation_bytes_;
};

// Device code (nvcc) calls the same function, so the cuda kernels draw the identical mask.
#if defined(__CUDACC__)
#define SMOL_HOST_DEVICE __host__ __device__
#else
#define SMOL_HOST_DEVICE
#endif

// The counter-based hash behind dropout, shared so every backend draws the same mask:
// a uniform float in [0, 1) from (seed, index). SplitMix64 finaliser, 24 high bits.
inline SMOL_HOST_DEVICE float dropout_uniform(uint64_t seed, uint64_t index) {
  return static_cast<float>(splitmix64_at(seed, index) >> 40) * (1.0f / 16777216.0f);
}

// Backends by name: "cpu", "cuda", "cuda-emu", "auto" (cuda when a GPU is present, else cpu),
// each optionally with a device ordinal: "cuda:1" is the second GPU; "cpu:N" is "cpu" (the
// ordinal is ignored); "cuda-emu" accepts only ":0". Throws smol::Error naming the device when
// it is unknown, malformed, out of range or not available in this build.
std::unique_ptr<Backend> make_backend(const std::string& device);
// The names make_backend accepts in this build (for --help and error messages); the ordinal
// forms ("cuda:N") are accepted for every name listed here.
std::vector<std::string> available_devices();

}  // namespace smol
