// The op interface every backend implements (DESIGN.md §2): cpu (fp32 reference),
// cuda (bf16 activations, fp32 accumulation), cuda-emu (the cuda sources run on the CPU).
//
// Conventions, shared by all ops:
//  - Tensors are dense row-major views. "[T, C]" means T rows of C contiguous elements.
//  - T is the number of tokens of a packed batch (several sequences back to back).
//  - Ops whose doc says "accumulates" add into their output (+=); every other op overwrites.
//  - Activation dtype is backend-defined (activation_dtype()); parameters handed to ops have
//    the dtype the caller allocated them with. The cpu backend accepts only F32 (and I32 ids).
//  - kernels/ knows nothing of models, configs or files: ops are named after the math.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

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

// One tensor of a multi-tensor AdamW step (DESIGN.md §4, seed-spec.md §6).
struct AdamWTensor {
  Tensor param, grad, m, v;  // all F32 (fp32 master weights and state), same shape
  float weight_decay = 0.0f;
};
struct AdamWHyper {
  float lr = 0, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
  int64_t step = 1;         // 1-based, for bias correction 1 - beta^step
  float grad_scale = 1.0f;  // global-norm clip factor applied to every grad
};

enum class Transpose : uint8_t { No, Yes };

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  // dtype of activations this backend computes in (F32 on cpu, BF16 on cuda).
  virtual DType activation_dtype() const = 0;

  // ---- memory ----------------------------------------------------------------------------
  virtual Buffer allocate(size_t bytes) = 0;              // zero-filled
  virtual void release(void* data) = 0;                   // called by ~Buffer
  virtual void upload(Tensor dst, const void* host) = 0;  // host bytes of dst.dtype
  virtual void download(void* host, const Tensor& src) = 0;
  virtual void synchronize() {}
  virtual void fill_zero(Tensor t) = 0;
  virtual void copy(Tensor dst, const Tensor& src) = 0;  // same shape; casts between dtypes

  // ---- dense linear algebra ----------------------------------------------------------------
  // c[M,N] = alpha * op(a) · op(b) + beta * c, row-major; op(x) = x or xᵀ.
  // A Linear layer y = x·Wᵀ is matmul(y, x, W, No, Yes); dx = dy·W is (No, No);
  // dW += dyᵀ·x is (Yes, No, 1, 1).
  virtual void matmul(Tensor c, const Tensor& a, const Tensor& b, Transpose ta, Transpose tb,
                      float alpha = 1.0f, float beta = 0.0f) = 0;
  // y += alpha * x (same shape).
  virtual void axpy(Tensor y, const Tensor& x, float alpha) = 0;
  virtual void scale(Tensor x, float alpha) = 0;

  // ---- model ops ---------------------------------------------------------------------------
  // out[T,C] = table[ids[t], :]; ids I32 [T].
  virtual void embedding_forward(Tensor out, const Tensor& ids, const Tensor& table) = 0;
  // Accumulates dtable[ids[t], :] += dout[t, :] (deterministic order).
  virtual void embedding_backward(Tensor dtable, const Tensor& dout, const Tensor& ids) = 0;

  // RMSNorm, formats.md §2: out = weight ⊙ (x / sqrt(mean(x²) + eps)), statistics in fp32.
  // rstd F32 [T] keeps 1/sqrt(mean(x²)+eps) for the backward.
  virtual void rmsnorm_forward(Tensor out, Tensor rstd, const Tensor& x, const Tensor& weight,
                               float eps) = 0;
  // Fused residual add + RMSNorm: sum = a + b; out = rmsnorm(sum). sum may alias a.
  virtual void add_rmsnorm_forward(Tensor sum, Tensor out, Tensor rstd, const Tensor& a,
                                   const Tensor& b, const Tensor& weight, float eps) = 0;
  // Accumulates dx += ∂L/∂x and dweight += ∂L/∂weight, given dout and the forward's x, rstd.
  virtual void rmsnorm_backward(Tensor dx, Tensor dweight, const Tensor& dout, const Tensor& x,
                                const Tensor& weight, const Tensor& rstd) = 0;

  // RoPE, rotate-half layout (formats.md §2), in place on x [T, H, D]:
  // pair (x[i], x[i+D/2]) rotates by positions[t] · theta^(−2i/D). positions I32 [T].
  virtual void rope_forward(Tensor x, const Tensor& positions, float theta) = 0;
  // In place on dx [T, H, D]: the transpose of the rotation (rotate by the negative angle).
  virtual void rope_backward(Tensor dx, const Tensor& positions, float theta) = 0;

  // Causal GQA attention over a packed batch: q [Tq, Hq, D], k, v [Tk, Hkv, D] with
  // Hq % Hkv == 0 (query head h reads kv head h / (Hq/Hkv)); out [Tq, Hq, D];
  // lse F32 [Tq, Hq] = log-sum-exp of each query's scaled scores (kept for the backward).
  // Softmax in fp32. Rows of q not covered by the layout are left untouched.
  virtual void attention_forward(Tensor out, Tensor lse, const Tensor& q, const Tensor& k,
                                 const Tensor& v, const AttentionLayout& layout, float scale) = 0;
  // Overwrites dq, dk, dv (rows not covered by the layout are zeroed).
  virtual void attention_backward(Tensor dq, Tensor dk, Tensor dv, const Tensor& dout,
                                  const Tensor& q, const Tensor& k, const Tensor& v,
                                  const Tensor& out, const Tensor& lse,
                                  const AttentionLayout& layout, float scale) = 0;

  // SwiGLU: out = silu(gate) ⊙ up, silu(z) = z·sigmoid(z); all [T, F].
  virtual void swiglu_forward(Tensor out, const Tensor& gate, const Tensor& up) = 0;
  virtual void swiglu_backward(Tensor dgate, Tensor dup, const Tensor& dout, const Tensor& gate,
                               const Tensor& up) = 0;

  // Cross-entropy over logits [T, V] against targets I32 [T] (−100 = ignored).
  // losses F32 [T] gets −log softmax(logits)[target] (0 where ignored). If dlogits is given
  // (may alias logits), it gets dloss_scale · (softmax − onehot(target)), 0 on ignored rows.
  virtual void cross_entropy(Tensor losses, Tensor* dlogits, const Tensor& logits,
                             const Tensor& targets, float dloss_scale) = 0;
  // out I32 [T] = argmax over the last dimension of x [T, V] (first maximum wins).
  virtual void argmax(Tensor out, const Tensor& x) = 0;

  // Dropout with a counter-based mask: element e of the flattened tensor is kept iff
  // hash(seed, e) ≥ p, kept values scaled by 1/(1−p). The same (seed, p) gives the same mask
  // on every backend, so the backward is dropout(dx, dy, p, seed). out may alias in.
  virtual void dropout(Tensor out, const Tensor& in, float p, uint64_t seed) = 0;

  // ---- optimisation ------------------------------------------------------------------------
  // Σ x² over all the tensors, accumulated in a fixed order (deterministic).
  virtual double sum_of_squares(std::span<const Tensor> tensors) = 0;
  // AdamW with decoupled weight decay on every tensor (seed-spec.md §6):
  // g = grad·grad_scale; m = β1 m + (1−β1) g; v = β2 v + (1−β2) g²;
  // p = p·(1 − lr·wd) − lr · (m/(1−β1^t)) / (sqrt(v/(1−β2^t)) + eps).
  virtual void adamw_step(std::span<AdamWTensor> tensors, const AdamWHyper& hyper) = 0;
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
  uint64_t z = seed + 0x9E3779B97F4A7C15ull * (index + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<float>(z >> 40) * (1.0f / 16777216.0f);
}

// Backends by name: "cpu", "cuda", "cuda-emu", "auto" (cuda when a GPU is present, else cpu).
// Throws smol::Error naming the device when it is unknown or not available in this build.
std::unique_ptr<Backend> make_backend(const std::string& device);
// The names make_backend accepts in this build (for --help and error messages).
std::vector<std::string> available_devices();

}  // namespace smol
