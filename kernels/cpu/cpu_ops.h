// Internal to the cpu backend: one free function per op, each defined in its own file
// (cpu_matmul.cpp, cpu_rmsnorm.cpp, ...). CpuBackend (cpu_backend.cpp) validates nothing
// itself and forwards to these; every function checks its own dtypes and shapes and throws
// smol::Error naming the op and the offending shapes (docs/design.md §9).
//
// Semantics are exactly those documented in kernels/backend.h; fp32 only (ids I32), except the
// BF16 weights of matmul's b and embedding_forward's table (Backend::accepts_bf16_weights).
#pragma once

#include <cstdint>
#include <span>

#include "kernels/backend.h"
#include "kernels/cpu/cpu_bf16_gemm.h"

namespace smol::cpu {

// cpu_memory.cpp
void fill_zero(Tensor t);
void copy(Tensor dst, const Tensor& src);
void scatter_rows(std::span<const Backend::RowScatter> pairs, const Tensor& index);
void gather_rows(Tensor dst, const Tensor& src, const Tensor& index);
void axpy(Tensor y, const Tensor& x, float alpha);
void scale(Tensor x, float alpha);

// cpu_matmul.cpp. b may be BF16 (a frozen weight): then gemm_bf16 on `bf16`'s path
// (cpu_bf16_gemm.h), a still F32 and rounded to bf16.
void matmul(Tensor c, const Tensor& a, const Tensor& b, Transpose ta, Transpose tb, float alpha,
            float beta, Bf16Gemm bf16 = Bf16Gemm::Generic);

// cpu_embedding.cpp
void embedding_forward(Tensor out, const Tensor& ids, const Tensor& table);
void embedding_backward(Tensor dtable, const Tensor& dout, const Tensor& ids);

// cpu_rmsnorm.cpp
void rmsnorm_forward(Tensor out, Tensor rstd, const Tensor& x, const Tensor& weight, float eps);
void add_rmsnorm_forward(Tensor sum, Tensor out, Tensor rstd, const Tensor& a, const Tensor& b,
                         const Tensor& weight, float eps);
void rmsnorm_backward(Tensor dx, Tensor dweight, const Tensor& dout, const Tensor& x,
                      const Tensor& weight, const Tensor& rstd);

// cpu_rope.cpp
class RopeTable;
void rope_forward(Tensor x, const Tensor& positions, float theta, RopeTable& table);
void rope_backward(Tensor dx, const Tensor& positions, float theta, RopeTable& table);

// cpu_attention.cpp
// avx512: take the AVX-512 block product (the backend's detect_avx512_fp32(), cpu_isa.h).
void attention_forward(Tensor out, Tensor lse, const Tensor& q, const Tensor& k, const Tensor& v,
                       const AttentionLayout& layout, float scale, bool avx512);
void attention_backward(Tensor dq, Tensor dk, Tensor dv, const Tensor& dout, const Tensor& q,
                        const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                        const AttentionLayout& layout, float scale, bool avx512);

// cpu_swiglu.cpp
void swiglu_forward(Tensor out, const Tensor& gate, const Tensor& up);
// dgate_up [T, 2F]: row t = (dgate[t], dup[t]) (Backend::swiglu_backward's concatenated form).
void swiglu_backward_concat(Tensor dgate_up, const Tensor& dout, const Tensor& gate,
                            const Tensor& up);
void swiglu_backward(Tensor dgate, Tensor dup, const Tensor& dout, const Tensor& gate,
                     const Tensor& up);

// cpu_cross_entropy.cpp
void cross_entropy(Tensor losses, Tensor* dlogits, const Tensor& logits, const Tensor& targets,
                   float dloss_scale);
void argmax(Tensor out, const Tensor& x);
// cpu_sample_tokens.cpp: Backend::sample_tokens by the host rule (kernels/token_sampling.h)
void sample_tokens(Tensor out, const Tensor& logits, const Tensor& uniforms, float temperature,
                   float top_p);

// cpu_dropout.cpp
void dropout(Tensor out, const Tensor& in, float p, uint64_t seed);

// cpu_optim.cpp
double sum_of_squares(std::span<const Tensor> tensors);
void sum_of_squares_into(Tensor out, std::span<const Tensor> tensors);
void accumulate_sum(Tensor acc, const Tensor& x);
void adamw_step(std::span<AdamWTensor> tensors, const AdamWHyper& hyper);

}  // namespace smol::cpu
