// The default body of the composite op lm_head_cross_entropy (kernels/backend.h), built from
// the primitives matmul, cross_entropy and argmax; a backend may override it with a fused one.
//
// Per chunk of R = kLmHeadChunkRows rows (the [T, V] logits never exist, docs/design.md §2):
//   logits[R, V] = hidden[R, C] · Wᵀ                    (matmul No, Yes)
//   losses[R], dlogits = s·(softmax − onehot) in place   (cross_entropy)
//   dhidden[R, C] = dlogits · W                           (matmul No, No)
//   dW[V, C] += dlogitsᵀ · hidden                         (matmul Yes, No, beta 1)
// cross_entropy takes the argmax in its own pass over the logits, before it overwrites them
// with their gradient (a chunk without a supervised target calls argmax alone).
#include <algorithm>

#include "kernels/backend.h"

namespace smol {

namespace {
Tensor slice_vector(const Tensor& t, int64_t begin, int64_t count) {
  return Tensor{static_cast<char*>(t.data) + begin * dtype_size(t.dtype), t.dtype, Shape{count}};
}
}  // namespace

void Backend::do_lm_head_cross_entropy(const LmHeadOutputs& out, const Tensor& hidden,
                                       const Tensor& weight, const Tensor& targets,
                                       Tensor logits_scratch, float loss_scale,
                                       std::span<const int32_t> host_targets) {
  const int64_t T = hidden.shape.rows(), C = hidden.shape.cols(), V = weight.shape.rows();
  const bool backward = out.dhidden.data != nullptr;
  const Tensor hidden2d = hidden.reshaped(Shape{T, C});
  const Tensor dhidden2d = backward ? out.dhidden.reshaped(Shape{T, C}) : Tensor{};
  for (int64_t t0 = 0; t0 < T; t0 += kLmHeadChunkRows) {
    const int64_t rows = std::min(kLmHeadChunkRows, T - t0);
    bool supervised = host_targets.empty();
    for (int64_t t = t0; t < t0 + rows && !supervised; ++t) supervised = host_targets[t] != -100;
    const Tensor losses = slice_vector(out.losses, t0, rows);
    if (!supervised && !out.argmax.data) {
      // Nothing to learn here: the chunk's losses and gradient are exactly zero.
      fill_zero(losses);
      if (backward) fill_zero(dhidden2d.rows(t0, rows));
      continue;
    }
    const Tensor logits{logits_scratch.data, logits_scratch.dtype, Shape{rows, V}};
    const Tensor x = hidden2d.rows(t0, rows);
    matmul(logits, x, weight, Transpose::No, Transpose::Yes);
    const Tensor chunk_argmax = out.argmax.data ? slice_vector(out.argmax, t0, rows) : Tensor{};
    if (!supervised) {
      argmax(chunk_argmax, logits);
      fill_zero(losses);
      if (backward) fill_zero(dhidden2d.rows(t0, rows));
      continue;
    }
    const Tensor chunk_targets = slice_vector(targets, t0, rows);
    if (!backward) {
      cross_entropy(losses, nullptr, logits, chunk_targets, 1.0f, chunk_argmax);
      continue;
    }
    Tensor dlogits = logits;
    cross_entropy(losses, &dlogits, logits, chunk_targets, loss_scale, chunk_argmax);
    matmul(dhidden2d.rows(t0, rows), dlogits, weight, Transpose::No, Transpose::No);
    if (out.dweight.data)
      matmul(out.dweight, dlogits, x, Transpose::Yes, Transpose::No, 1.0f, 1.0f);
  }
}

}  // namespace smol
