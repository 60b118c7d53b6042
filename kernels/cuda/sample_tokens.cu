// sample_tokens: temperature + top-p sampling on the device by the exact rule of
// kernels/token_sampling.h, so a sampled `generate` step downloads one token per sequence instead
// of its [V] logits and the host sampler (docs/design.md §3 "Sampling"). One 512-thread block per
// row. Weights are integers (w = ⌊p · 2⁴⁰⌋), so every sum is exact and the block's summation
// order cannot change the answer: the host walks the sorted order, the device finds the same
// token by a radix search over the weight values:
//   crossing(x): the token whose prefix (weight descending, id ascending) first exceeds x. Four
//   passes over the row, each a mass histogram of one digit of w (bits 30–40, 20–29, 10–19, 0–9)
//   over the tokens whose higher digits equal those chosen so far, fix the weight W of that token
//   and the mass of every heavier token; then it is the ⌊(x − mass) / W⌋-th token of weight W in
//   id order (ties: one more pass, counting in contiguous id ranges).
// The row's weights are recomputed from the logits in each pass (fma-only exponential, a few
// dozen instructions) rather than stored: 196 KB of fp32 logits stay in L2, at most 11 passes.
#include <climits>

#include "kernels/cuda/cuda_ops.h"
#include "kernels/token_sampling.h"

namespace smol::SMOL_GPU_NS {
namespace {

constexpr int kThreads = 512;
constexpr int kBins = 2048;  // the widest digit: 11 bits
constexpr int kBinsPerLane = kBins / 32;
constexpr int kPasses = 4;
// Pass k looks at bits [30 − 10k, 30 − 10k + width): widths 11, 10, 10, 10 cover w ≤ 2⁴⁰.
__device__ __forceinline__ int digit_shift(int pass) {
  return 30 - 10 * pass;
}
__device__ __forceinline__ int digit_width(int pass) {
  return pass == 0 ? 11 : 10;
}

struct SampleShared {
  unsigned long long hist[kBins];
  unsigned long long sums[kThreads];
  float maxima[kThreads];
  int counts[kThreads];
  unsigned long long above, prefix;
};

// Σ over the block of each thread's v (exact: integers). Every thread gets the sum.
__device__ unsigned long long block_sum_u64(SampleShared& s, unsigned long long v) {
  s.sums[threadIdx.x] = v;
  __syncthreads();
  for (int stride = kThreads / 2; stride > 0; stride /= 2) {
    if (static_cast<int>(threadIdx.x) < stride) s.sums[threadIdx.x] += s.sums[threadIdx.x + stride];
    __syncthreads();
  }
  const unsigned long long total = s.sums[0];
  __syncthreads();  // s.sums is reused
  return total;
}

// crossing(x) over a row with Σw > x: *weight = W, *heavier = the mass of the tokens before the
// first token of weight W (all heavier). Called by every thread.
__device__ void crossing(SampleShared& s, const float* row, int64_t vocab, float max_logit,
                         float inv_t, uint64_t x, uint64_t* weight, uint64_t* heavier) {
  uint64_t prefix = 0, above = 0;
  for (int pass = 0; pass < kPasses; ++pass) {
    const int shift = digit_shift(pass), width = digit_width(pass), high = shift + width;
    const uint64_t mask = (uint64_t{1} << width) - 1;
    for (int b = threadIdx.x; b < kBins; b += kThreads) s.hist[b] = 0;
    __syncthreads();
    for (int64_t i = threadIdx.x; i < vocab; i += kThreads) {
      const uint64_t w = sampling_weight(row[i], max_logit, inv_t);
      if (w != 0 && (w >> high) == prefix) atomicAdd(&s.hist[(w >> shift) & mask], w);
    }
    __syncthreads();
    if (threadIdx.x < 32) {  // each lane's 64 bins
      unsigned long long lane_mass = 0;
      for (int b = 0; b < kBinsPerLane; ++b) lane_mass += s.hist[threadIdx.x * kBinsPerLane + b];
      s.sums[threadIdx.x] = lane_mass;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      // From the heaviest digit down: the digit whose bin holds position x. The invariant
      // x < above + (mass of the tokens still in play) guarantees one; the bounds only guard.
      uint64_t mass = above;
      int lane = 31;
      while (lane > 0 && mass + s.sums[lane] <= x) mass += s.sums[lane--];
      int bin = lane * kBinsPerLane + kBinsPerLane - 1;
      while (bin > lane * kBinsPerLane && mass + s.hist[bin] <= x) mass += s.hist[bin--];
      s.above = mass;
      s.prefix = (prefix << width) | static_cast<uint64_t>(bin);
    }
    __syncthreads();
    above = s.above;
    prefix = s.prefix;
    __syncthreads();  // s.above / s.prefix / s.hist are rewritten by the next pass
  }
  *weight = prefix;
  *heavier = above;
}

__global__ void __launch_bounds__(kThreads)
    sample_tokens_kernel(int* out /* [T] */, const float* logits /* [T, V] */,
                         const float* uniforms /* [T] */, int64_t vocab, float inv_t, float top_p) {
  __shared__ SampleShared s;
  const float* row = logits + int64_t{blockIdx.x} * vocab;
  // The row's maximum and its first value that is not finite.
  float max_logit = -INFINITY;
  int first_bad = INT_MAX;
  for (int64_t i = threadIdx.x; i < vocab; i += kThreads) {
    const float v = row[i];
    if (!isfinite(v))
      first_bad = first_bad < i ? first_bad : static_cast<int>(i);
    else
      max_logit = fmaxf(max_logit, v);
  }
  s.maxima[threadIdx.x] = max_logit;
  s.counts[threadIdx.x] = first_bad;
  __syncthreads();
  for (int stride = kThreads / 2; stride > 0; stride /= 2) {
    if (static_cast<int>(threadIdx.x) < stride) {
      s.maxima[threadIdx.x] = fmaxf(s.maxima[threadIdx.x], s.maxima[threadIdx.x + stride]);
      const int other = s.counts[threadIdx.x + stride];
      if (other < s.counts[threadIdx.x]) s.counts[threadIdx.x] = other;
    }
    __syncthreads();
  }
  max_logit = s.maxima[0];
  first_bad = s.counts[0];
  __syncthreads();
  if (first_bad != INT_MAX) {  // the same answer for every thread: all leave here
    if (threadIdx.x == 0) out[blockIdx.x] = -(first_bad + 1);
    return;
  }

  uint64_t local = 0;
  for (int64_t i = threadIdx.x; i < vocab; i += kThreads)
    local += sampling_weight(row[i], max_logit, inv_t);
  const uint64_t total = block_sum_u64(s, local);

  uint64_t weight = 0, heavier = 0;
  uint64_t nucleus = total;
  if (top_p < 1.0f) {  // the shortest prefix reaching the target ends inside a class of weight W
    const uint64_t x = nucleus_target(total, top_p) - 1;
    crossing(s, row, vocab, max_logit, inv_t, x, &weight, &heavier);
    nucleus = heavier + ((x - heavier) / weight + 1) * weight;
  }
  const uint64_t x = draw_target(nucleus, uniforms[blockIdx.x]);
  crossing(s, row, vocab, max_logit, inv_t, x, &weight, &heavier);
  const uint64_t rank = (x - heavier) / weight;  // among the tokens of weight W, by id

  // The rank-th token of weight W: counts over contiguous id ranges, an exclusive prefix over
  // the threads (one thread, 512 adds: once per row), then the owner walks its range.
  const int64_t per = (vocab + kThreads - 1) / kThreads;
  const int64_t begin = threadIdx.x * per, end = begin + per < vocab ? begin + per : vocab;
  int count = 0;
  for (int64_t i = begin; i < end; ++i)
    count += sampling_weight(row[i], max_logit, inv_t) == weight;
  s.counts[threadIdx.x] = count;
  __syncthreads();
  if (threadIdx.x == 0) {
    int running = 0;
    for (int t = 0; t < kThreads; ++t) {
      const int c = s.counts[t];
      s.counts[t] = running;
      running += c;
    }
  }
  __syncthreads();
  const uint64_t first = static_cast<uint64_t>(s.counts[threadIdx.x]);
  if (rank >= first && rank < first + static_cast<uint64_t>(count)) {
    uint64_t seen = first;
    for (int64_t i = begin; i < end; ++i)
      if (sampling_weight(row[i], max_logit, inv_t) == weight && seen++ == rank) {
        out[blockIdx.x] = static_cast<int>(i);
        break;
      }
  }
}

}  // namespace

void sample_tokens(GpuContext& ctx, Tensor out, const Tensor& logits, const Tensor& uniforms,
                   float temperature, float top_p) {
  const int64_t rows = logits.shape.rows(), vocab = logits.shape.cols();
  if (rows == 0) return;
  SMOL_CHECK(rows <= 0x7fffffff, "sample_tokens: too many rows (", rows, ")");
  launch(sample_tokens_kernel, static_cast<unsigned>(rows), kThreads, 0, ctx.stream(),
         out.as<int>(), logits.as<float>(), uniforms.as<float>(), vocab, 1.0f / temperature, top_p);
}

}  // namespace smol::SMOL_GPU_NS
