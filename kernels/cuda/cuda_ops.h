// The cuda ops, one file each (llm.c style): what CudaBackend (cuda_backend.cu) calls.
// Each takes the backend's GpuContext and the op's tensors exactly as kernels/backend.h
// documents them. The contract (shapes, dtypes) was checked once by Backend's public op
// (kernels/backend_ops.cpp); an op file checks only its own kernel's limits.
#pragma once

#include <memory>
#include <span>

#include "kernels/backend.h"
#include "kernels/cuda/cuda_context.h"

namespace smol {
class LinalgBackend;
}

namespace smol::SMOL_GPU_NS {

// The LinalgBackend over ctx's stream (linalg.cu); ctx must outlive it.
std::unique_ptr<LinalgBackend> make_linalg(GpuContext& ctx);

void copy_cast(GpuContext& ctx, Tensor dst, const Tensor& src);  // cast.cu
void scatter_rows(GpuContext& ctx, std::span<const Backend::RowScatter> pairs,
                  const Tensor& index);  // row_copy.cu
void gather_rows(GpuContext& ctx, Tensor dst, const Tensor& src, const Tensor& index);
void axpy(GpuContext& ctx, Tensor y, const Tensor& x, float alpha);  // elementwise.cu
void scale(GpuContext& ctx, Tensor x, float alpha);                  // elementwise.cu
void dropout(GpuContext& ctx, Tensor out, const Tensor& in, float p, uint64_t seed);  // dropout.cu
// matmul.cu: c = alpha·op(a)·op(b) + beta·(addend ? *addend : c) (addend: cuBLASLt's C ≠ D)
void matmul(GpuContext& ctx, Tensor c, const Tensor& a, const Tensor& b, Transpose ta, Transpose tb,
            float alpha, float beta, const Tensor* addend = nullptr);
// matmul.cu: Backend::matmul_batched (one strided-batched GEMM when the lists are evenly spaced)
void matmul_batched(GpuContext& ctx, std::span<const Tensor> cs, std::span<const Tensor> as,
                    std::span<const Tensor> bs, Transpose ta, Transpose tb, float alpha,
                    float beta);
void destroy_matmul_plans(GpuContext& ctx);  // matmul.cu
void embedding_forward(GpuContext& ctx, Tensor out, const Tensor& ids, const Tensor& table);
void embedding_backward(GpuContext& ctx, Tensor dtable, const Tensor& dout, const Tensor& ids);
void rmsnorm_forward(GpuContext& ctx, Tensor out, Tensor rstd, const Tensor& x,
                     const Tensor& weight, float eps);  // rmsnorm.cu
void add_rmsnorm_forward(GpuContext& ctx, Tensor sum, Tensor out, Tensor rstd, const Tensor& a,
                         const Tensor& b, const Tensor& weight, float eps);
void rmsnorm_backward(GpuContext& ctx, Tensor dx, Tensor dweight, const Tensor& dout,
                      const Tensor& x, const Tensor& weight, const Tensor& rstd);
void rope(GpuContext& ctx, Tensor x, const Tensor& positions, float theta, bool inverse);
void rope_qk(GpuContext& ctx, Tensor q, Tensor k, const Tensor& positions, float theta,
             bool inverse);  // rope.cu: both tensors in one launch
void swiglu_forward(GpuContext& ctx, Tensor out, const Tensor& gate, const Tensor& up);
void swiglu_backward(GpuContext& ctx, Tensor dgate, Tensor dup, const Tensor& dout,
                     const Tensor& gate, const Tensor& up);
void swiglu_backward_concat(GpuContext& ctx, Tensor dgate_up, const Tensor& dout,
                            const Tensor& gate, const Tensor& up);        // swiglu.cu
double sum_of_squares(GpuContext& ctx, std::span<const Tensor> tensors);  // global_norm.cu
void sum_of_squares_into(GpuContext& ctx, Tensor out, std::span<const Tensor> tensors);
void accumulate_sum(GpuContext& ctx, Tensor acc, const Tensor& x);  // accumulate_sum.cu
void adamw_step(GpuContext& ctx, std::span<AdamWTensor> tensors, const AdamWHyper& hyper);
void cross_entropy(GpuContext& ctx, Tensor losses, Tensor* dlogits, const Tensor& logits,
                   const Tensor& targets, float dloss_scale, Tensor argmax);  // cross_entropy.cu
void argmax(GpuContext& ctx, Tensor out, const Tensor& x);                    // argmax.cu
void sample_tokens(GpuContext& ctx, Tensor out, const Tensor& logits, const Tensor& uniforms,
                   float temperature, float top_p);  // sample_tokens.cu
void attention_forward(GpuContext& ctx, Tensor out, Tensor lse, const Tensor& q, const Tensor& k,
                       const Tensor& v, const AttentionLayout& layout, float scale);
void attention_backward(GpuContext& ctx, Tensor dq, Tensor dk, Tensor dv, const Tensor& dout,
                        const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                        const Tensor& lse, const AttentionLayout& layout, float scale);
// attention.cu: Backend::attention_rope_backward through the flash kernels' fused rotation;
// false (nothing done) when the flash kernels do not take these tensors.
bool attention_rope_backward(GpuContext& ctx, Tensor dq, Tensor dk, Tensor dv, const Tensor& dout,
                             const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                             const Tensor& lse, const AttentionLayout& layout, float scale,
                             const Backend::Rotary& rotary);
// rope.cu: Backend::rope_append_kv in one launch.
void rope_append_kv(GpuContext& ctx, Tensor q, Tensor k, const Tensor& v, Tensor k_cache,
                    Tensor v_cache, const Tensor& index, const Tensor& positions, float theta);

// lora_down.cu: Backend::lora_down_forward / _backward with the dropout masks on the fly
// (docs/design.md §2.7). lora_down_fusable: whether the kernels take these operands (ΣR ≤ 64,
// one dtype for the lows, dx of x's dtype); else the backend runs the default composition.
bool lora_down_fusable(std::span<const Tensor> lows, const Tensor& x, const Tensor& dx);
void lora_down_forward(GpuContext& ctx, std::span<const Tensor> uts, const Tensor& x,
                       std::span<const Tensor> as, float p, std::span<const uint64_t> seeds);
void lora_down_backward(GpuContext& ctx, std::span<const Tensor> das, Tensor dx,
                        std::span<const Tensor> gts, const Tensor& x, std::span<const Tensor> as,
                        float p, std::span<const uint64_t> seeds, float s);

// lora_up.cu: Backend::lora_up_forward / _backward, one group's B products in one launch per
// direction (docs/design.md §2.7 "LoRA up-projections fused"). lora_up_fusable: whether the
// kernels take these operands (every rᵢ ≤ 32; one dtype among outs (y or dy), one among lows (ut,
// and gt when given)); else the backend runs the default matmuls.
bool lora_up_fusable(std::span<const Tensor> outs, std::span<const Tensor> lows,
                     std::span<const Tensor> more_lows);
void lora_up_forward(GpuContext& ctx, std::span<const Tensor> ys, std::span<const Tensor> uts,
                     std::span<const Tensor> bs, float s);
void lora_up_backward(GpuContext& ctx, std::span<const Tensor> dbs, std::span<const Tensor> gts,
                      std::span<const Tensor> dys, std::span<const Tensor> uts,
                      std::span<const Tensor> bs, float s);

}  // namespace smol::SMOL_GPU_NS
