// The default body of the composite op rope_qk_forward / rope_qk_backward (kernels/backend.h):
// the primitive rope op on q, then on k. A backend whose RoPE is one kernel launch per tensor
// replaces it with one launch over both (the cuda backend, kernels/cuda/rope.cu); the cpu backend
// keeps this body, so its results are exactly those of the two primitives.
//
// The same for the fused RoPE ops (docs/design.md §2.7 "Fused RoPE"): attention_rope_backward
// is attention_backward then rope_qk_backward, rope_append_kv is rope_qk_forward then
// scatter_rows. The primitives report to the OpHook inside their composite, at depth + 1.
#include <array>

#include "kernels/backend.h"

namespace smol {

void Backend::do_rope_qk(Tensor q, Tensor k, const Tensor& positions, float theta, bool backward) {
  if (backward) {
    rope_backward(q, positions, theta);
    rope_backward(k, positions, theta);
  } else {
    rope_forward(q, positions, theta);
    rope_forward(k, positions, theta);
  }
}

void Backend::do_attention_rope_backward(Tensor dq, Tensor dk, Tensor dv, const Tensor& dout,
                                         const Tensor& q, const Tensor& k, const Tensor& v,
                                         const Tensor& out, const Tensor& lse,
                                         const AttentionLayout& layout, float scale,
                                         const Rotary& rotary) {
  attention_backward(dq, dk, dv, dout, q, k, v, out, lse, layout, scale);
  rope_qk_backward(dq, dk, rotary.positions, rotary.theta);
}

void Backend::do_rope_append_kv(Tensor q, Tensor k, const Tensor& v, Tensor k_cache, Tensor v_cache,
                                const Tensor& index, const Rotary& rotary) {
  rope_qk_forward(q, k, rotary.positions, rotary.theta);
  const int64_t tokens = k.shape[0], width = k.shape[1] * k.shape[2], rows = k_cache.shape[0];
  const std::array<RowScatter, 2> appends{
      RowScatter{k_cache.reshaped(Shape{rows, width}), k.reshaped(Shape{tokens, width})},
      RowScatter{v_cache.reshaped(Shape{rows, width}), v.reshaped(Shape{tokens, width})}};
  scatter_rows(appends, index);
}

}  // namespace smol
