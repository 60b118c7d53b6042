// CpuBackend: the fp32 reference backend (docs/design.md §2). This file holds the class and its
// memory management; each op lives in its own cpu_<op>.cpp and is reached through cpu_ops.h.
//
// Memory: allocate() hands out zero-filled, 64-byte aligned host memory (one cache line, and
// the widest SIMD load), so every Tensor view starting at a buffer is aligned for AVX-512.
#include <cstdlib>
#include <cstring>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/cpu_isa.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/cpu_quant_matmul.h"
#include "kernels/cpu/cpu_rope_table.h"

namespace smol {
namespace {

constexpr size_t kAlignment = 64;

class CpuBackend final : public Backend {
 public:
  std::string name() const override { return "cpu"; }
  DType activation_dtype() const override { return DType::F32; }
  // Frozen weights may be BF16 (training.cpu_precision: bf16): matmul runs gemm_bf16.
  bool accepts_bf16_weights() const override { return true; }
  // Every format of QuantFormat, with the best int8 kernel of this CPU (cpu_quant_matmul.h).
  bool supports_quantized(QuantFormat) const override { return true; }
  // Q4_1 in block pairs where the int8 kernels are SIMD (about half the instructions per block,
  // docs/cpu-speed.md "Quantised inference"); the scalar reference reads both layouts alike.
  QuantFormat preferred_quant_layout(QuantFormat format, int64_t cols) const override {
    const bool simd = quant_isa_ != cpu::QuantIsa::Generic;
    return format == QuantFormat::Q4_1 && simd && can_pair_q4_1(cols) ? QuantFormat::Q4_1_R2
                                                                      : format;
  }

 protected:
  Buffer do_allocate(size_t bytes) override {
    if (bytes == 0) return Buffer(this, nullptr, 0);
    // aligned_alloc needs a size that is a multiple of the alignment.
    const size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
    void* data = std::aligned_alloc(kAlignment, rounded);
    SMOL_CHECK(data != nullptr, "cpu backend: out of memory allocating ", bytes, " bytes");
    std::memset(data, 0, rounded);
    return Buffer(this, data, bytes);
  }
  void do_release(void* data) override { std::free(data); }

  void do_upload(Tensor dst, const void* host) override {
    std::memcpy(dst.data, host, dst.bytes());
  }
  void do_download(void* host, const Tensor& src) override {
    std::memcpy(host, src.data, src.bytes());
  }
  void do_fill_zero(Tensor t) override { cpu::fill_zero(t); }
  void do_copy(Tensor dst, const Tensor& src) override { cpu::copy(dst, src); }
  void do_scatter_rows(std::span<const RowScatter> pairs, const Tensor& index) override {
    cpu::scatter_rows(pairs, index);
  }
  void do_gather_rows(Tensor dst, const Tensor& src, const Tensor& index) override {
    cpu::gather_rows(dst, src, index);
  }

  void do_matmul(Tensor c, const Tensor& a, const Tensor& b, Transpose ta, Transpose tb,
                 float alpha, float beta) override {
    cpu::matmul(c, a, b, ta, tb, alpha, beta, bf16_gemm_);
  }
  void do_matmul_quantized(std::span<const Tensor> ys, const Tensor& x,
                           std::span<const QuantMatrix> ws) override {
    cpu::matmul_quantized(ys, x, ws, quant_isa_, quant_scratch_);
  }
  void do_axpy(Tensor y, const Tensor& x, float alpha) override { cpu::axpy(y, x, alpha); }
  void do_scale(Tensor x, float alpha) override { cpu::scale(x, alpha); }

  void do_embedding_forward(Tensor out, const Tensor& ids, const Tensor& table) override {
    cpu::embedding_forward(out, ids, table);
  }
  void do_embedding_backward(Tensor dtable, const Tensor& dout, const Tensor& ids) override {
    cpu::embedding_backward(dtable, dout, ids);
  }

  void do_rmsnorm_forward(Tensor out, Tensor rstd, const Tensor& x, const Tensor& weight,
                          float eps) override {
    cpu::rmsnorm_forward(out, rstd, x, weight, eps);
  }
  void do_add_rmsnorm_forward(Tensor sum, Tensor out, Tensor rstd, const Tensor& a, const Tensor& b,
                              const Tensor& weight, float eps) override {
    cpu::add_rmsnorm_forward(sum, out, rstd, a, b, weight, eps);
  }
  void do_rmsnorm_backward(Tensor dx, Tensor dweight, const Tensor& dout, const Tensor& x,
                           const Tensor& weight, const Tensor& rstd) override {
    cpu::rmsnorm_backward(dx, dweight, dout, x, weight, rstd);
  }

  void do_rope_forward(Tensor x, const Tensor& positions, float theta) override {
    cpu::rope_forward(x, positions, theta, rope_table_);
  }
  void do_rope_backward(Tensor dx, const Tensor& positions, float theta) override {
    cpu::rope_backward(dx, positions, theta, rope_table_);
  }

  void do_attention_forward(Tensor out, Tensor lse, const Tensor& q, const Tensor& k,
                            const Tensor& v, const AttentionLayout& layout, float scale) override {
    cpu::attention_forward(out, lse, q, k, v, layout, scale, avx512_fp32_);
  }
  void do_attention_backward(Tensor dq, Tensor dk, Tensor dv, const Tensor& dout, const Tensor& q,
                             const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                             const AttentionLayout& layout, float scale) override {
    cpu::attention_backward(dq, dk, dv, dout, q, k, v, out, lse, layout, scale, avx512_fp32_);
  }

  void do_swiglu_forward(Tensor out, const Tensor& gate, const Tensor& up) override {
    cpu::swiglu_forward(out, gate, up);
  }
  void do_swiglu_backward(Tensor dgate, Tensor dup, const Tensor& dout, const Tensor& gate,
                          const Tensor& up) override {
    cpu::swiglu_backward(dgate, dup, dout, gate, up);
  }
  void do_swiglu_backward_concat(Tensor dgate_up, const Tensor& dout, const Tensor& gate,
                                 const Tensor& up) override {
    cpu::swiglu_backward_concat(dgate_up, dout, gate, up);
  }

  void do_cross_entropy(Tensor losses, Tensor* dlogits, const Tensor& logits, const Tensor& targets,
                        float dloss_scale, Tensor argmax) override {
    if (argmax.data) cpu::argmax(argmax, logits);  // before dlogits may overwrite the logits
    cpu::cross_entropy(losses, dlogits, logits, targets, dloss_scale);
  }
  void do_argmax(Tensor out, const Tensor& x) override { cpu::argmax(out, x); }
  void do_sample_tokens(Tensor out, const Tensor& logits, const Tensor& uniforms, float temperature,
                        float top_p) override {
    cpu::sample_tokens(out, logits, uniforms, temperature, top_p);
  }

  void do_dropout(Tensor out, const Tensor& in, float p, uint64_t seed) override {
    cpu::dropout(out, in, p, seed);
  }

  double do_sum_of_squares(std::span<const Tensor> tensors) override {
    return cpu::sum_of_squares(tensors);
  }
  void do_sum_of_squares_into(Tensor out, std::span<const Tensor> tensors) override {
    cpu::sum_of_squares_into(out, tensors);
  }
  void do_accumulate_sum(Tensor acc, const Tensor& x) override { cpu::accumulate_sum(acc, x); }
  void do_adamw_step(std::span<AdamWTensor> tensors, const AdamWHyper& hyper) override {
    cpu::adamw_step(tensors, hyper);
  }

 private:
  // The angles' cos/sin by position, computed once for all of a run's RoPE calls.
  cpu::RopeTable rope_table_;
  // Whether attention's AVX-512 block product may run (cpu_isa.h; SMOL_CPU_ISA may say no).
  const bool avx512_fp32_ = cpu::detect_avx512_fp32();
  // The bf16 matmul's path, from the CPU's features and SMOL_CPU_ISA (cpu_bf16_gemm.h).
  const cpu::Bf16Gemm bf16_gemm_ = cpu::detect_bf16_gemm();
  // The quantised matmul's kernel, chosen once (SMOL_CPU_ISA may ask for a lesser one), and its
  // activation blocks, kept between calls so decoding allocates nothing per token.
  cpu::QuantIsa quant_isa_ = cpu::detect_quant_isa();
  std::vector<cpu::ActBlock> quant_scratch_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() {
  return std::make_unique<CpuBackend>();
}

}  // namespace smol
