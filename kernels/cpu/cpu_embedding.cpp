// Embedding lookup and its gradient (docs/formats.md §2 step 1: h = E[ids], no scaling).
//   forward:  out[T, C] = table[ids[t], :],           ids I32 [T], table [V, C] F32 or BF16
//   backward: dtable[V, C] += dout[t, :] at row ids[t] (accumulates)
// The backward splits the C columns across threads and walks t in order inside each, so two
// tokens with the same id never race and the sum order is fixed (deterministic).
#include <algorithm>
#include <cstring>

#include "kernels/cpu/cpu_ops.h"

namespace smol::cpu {
namespace {

void check_ids(const char* op, const int32_t* ids, int64_t count, int64_t vocab) {
  for (int64_t t = 0; t < count; ++t)
    SMOL_CHECK(ids[t] >= 0 && ids[t] < vocab, op, ": token id ", ids[t], " at position ", t,
               " is outside the table's ", vocab, " rows");
}

}  // namespace

void embedding_forward(Tensor out, const Tensor& ids, const Tensor& table) {
  const int64_t tokens = out.shape.rows(), channels = out.shape.cols();
  const int64_t vocab = table.shape.rows();
  const int32_t* id = ids.as<int32_t>();
  check_ids("embedding_forward", id, tokens, vocab);
  float* dst = out.as<float>();
  if (table.dtype == DType::BF16) {  // a frozen bf16 table: widening is exact
    const uint16_t* src = table.as<uint16_t>();
#pragma omp parallel for schedule(static) if (tokens * channels > 65536)
    for (int64_t t = 0; t < tokens; ++t) {
      const uint16_t* row = src + static_cast<int64_t>(id[t]) * channels;
      for (int64_t c = 0; c < channels; ++c) dst[t * channels + c] = widen_bf16(row[c]);
    }
    return;
  }
  const float* src = table.as<float>();
#pragma omp parallel for schedule(static) if (tokens * channels > 65536)
  for (int64_t t = 0; t < tokens; ++t)
    std::memcpy(dst + t * channels, src + static_cast<int64_t>(id[t]) * channels,
                channels * sizeof(float));
}

void embedding_backward(Tensor dtable, const Tensor& dout, const Tensor& ids) {
  const int64_t tokens = dout.shape.rows(), channels = dout.shape.cols();
  const int64_t vocab = dtable.shape.rows();
  const int32_t* id = ids.as<int32_t>();
  check_ids("embedding_backward", id, tokens, vocab);
  const float* grad = dout.as<float>();
  float* dst = dtable.as<float>();
  // Column blocks of 64 floats (one 256-byte stretch per row) keep each thread's writes apart.
  constexpr int64_t kBlock = 64;
  const int64_t blocks = (channels + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (tokens * channels > 65536)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t c0 = blk * kBlock, c1 = std::min(channels, c0 + kBlock);
    for (int64_t t = 0; t < tokens; ++t) {
      float* row = dst + static_cast<int64_t>(id[t]) * channels;
      const float* g = grad + t * channels;
#pragma omp simd
      for (int64_t c = c0; c < c1; ++c) row[c] += g[c];
    }
  }
}

}  // namespace smol::cpu
