// The default body of the composite op lm_head_cross_entropy (kernels/backend.h), built from
// the primitives matmul, cross_entropy and argmax; a backend may override it with a fused one.
//
// Per chunk of R rows, R = the rows of logits_scratch (the [T, V] logits never exist,
// docs/design.md §2):
//   logits[R, V] = hidden[R, C] · Wᵀ                    (matmul No, Yes)
//   losses[R], dlogits = s·(softmax − onehot) in place   (cross_entropy)
//   dhidden[R, C] = dlogits · W                           (matmul No, No)
//   dW[V, C] += dlogitsᵀ · hidden                         (matmul Yes, No, beta 1)
// cross_entropy takes the argmax in its own pass over the logits, before it overwrites them
// with their gradient (a chunk without a supervised target calls argmax alone).
//
// Which rows run: with host targets and no argmax wanted (training), a chunk starts at the next
// supervised row and ends at the last supervised row within R rows of its start, so
// rows outside every chunk — the masked prompt of an SFT row, padding — cost no LM-head work at
// all (their losses and dhidden are exactly zero, written as such). Unsupervised rows inside a
// chunk are computed and give zero loss and gradient (cross_entropy's −100 rule). The LM head is
// a fifth of a LoRA step's FLOPs at SmolLM2's shape, so a prompt share p of the tokens saves
// about p/5 of the step (docs/cpu-speed.md). Otherwise chunks are fixed blocks of rows.
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
  const bool skip_unsupervised = !host_targets.empty() && !out.argmax.data;
  const auto is_supervised = [&](int64_t t) { return host_targets[t] != -100; };
  const int64_t chunk_rows = logits_scratch.shape.rows();
  int64_t t0 = 0;
  while (t0 < T) {
    int64_t rows = std::min(chunk_rows, T - t0);
    if (skip_unsupervised) {
      // Zero the unsupervised run before the chunk, then end the chunk at its last supervised row.
      int64_t first = t0;
      while (first < T && !is_supervised(first)) ++first;
      if (first > t0) {
        fill_zero(slice_vector(out.losses, t0, first - t0));
        if (backward) fill_zero(dhidden2d.rows(t0, first - t0));
      }
      if (first == T) break;
      t0 = first;
      rows = std::min(chunk_rows, T - t0);
      while (!is_supervised(t0 + rows - 1)) --rows;
    }
    const int64_t chunk_begin = t0;
    t0 += rows;
    bool supervised = host_targets.empty();
    for (int64_t t = chunk_begin; t < chunk_begin + rows && !supervised; ++t)
      supervised = is_supervised(t);
    const Tensor losses = slice_vector(out.losses, chunk_begin, rows);
    if (!supervised && !out.argmax.data) {
      // Nothing to learn here: the chunk's losses and gradient are exactly zero.
      fill_zero(losses);
      if (backward) fill_zero(dhidden2d.rows(chunk_begin, rows));
      continue;
    }
    const Tensor logits{logits_scratch.data, logits_scratch.dtype, Shape{rows, V}};
    const Tensor x = hidden2d.rows(chunk_begin, rows);
    matmul(logits, x, weight, Transpose::No, Transpose::Yes);
    const Tensor chunk_argmax =
        out.argmax.data ? slice_vector(out.argmax, chunk_begin, rows) : Tensor{};
    if (!supervised) {
      argmax(chunk_argmax, logits);
      fill_zero(losses);
      if (backward) fill_zero(dhidden2d.rows(chunk_begin, rows));
      continue;
    }
    const Tensor chunk_targets = slice_vector(targets, chunk_begin, rows);
    if (!backward) {
      cross_entropy(losses, nullptr, logits, chunk_targets, 1.0f, chunk_argmax);
      continue;
    }
    Tensor dlogits = logits;
    cross_entropy(losses, &dlogits, logits, chunk_targets, loss_scale, chunk_argmax);
    matmul(dhidden2d.rows(chunk_begin, rows), dlogits, weight, Transpose::No, Transpose::No);
    if (out.dweight.data)
      matmul(out.dweight, dlogits, x, Transpose::Yes, Transpose::No, 1.0f, 1.0f);
  }
}

}  // namespace smol
