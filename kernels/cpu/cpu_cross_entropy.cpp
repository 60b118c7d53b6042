// Cross-entropy over logits [T, V] against targets I32 [T] (docs/formats.md §2 "Loss"; −100 is
// ignored), and argmax for greedy decoding.
//   lse_t    = m + log Σ_v exp(x_tv − m),  m = max_v x_tv   (exp_approx in float, sum in double)
//   loss_t   = lse_t − x_t,target                            (0 on ignored rows)
//   dlogits  = dloss_scale · (exp(x − lse) − onehot(target))  (0 on ignored rows)
// One row per iteration, rows in parallel; dlogits may alias logits because a row's loss and
// lse are formed before any of its elements is overwritten.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/cpu/cpu_math.h"
#include "kernels/cpu/cpu_ops.h"

namespace smol::cpu {
namespace {
constexpr int32_t kIgnoreIndex = -100;

// max_c x_c (n ≥ 1).
SMOL_CPU_MULTIVERSION float row_max(const float* x, int64_t n) {
  const int64_t whole = n / 8 * 8;
  Float8 m8 = broadcast8(-INFINITY);
  for (int64_t c = 0; c < whole; c += 8) {
    const Float8 v = load8(x + c);
    m8 = v > m8 ? v : m8;
  }
  if (n > whole) {
    const Float8 v = load_partial8(x + whole, n - whole, -INFINITY);
    m8 = v > m8 ? v : m8;
  }
  return max_lanes(m8);
}
// Σ_c exp(x_c − shift), each term in float; 8 float lanes sum 32 terms (each ≤ 1 since shift
// is the max, so a lane's relative rounding stays below 32·2⁻²⁴) before joining the double sum.
SMOL_CPU_MULTIVERSION double sum_exp_shifted(const float* x, int64_t n, float shift) {
  constexpr int64_t kBlock = 256;
  const Float8 s8 = broadcast8(shift);
  double sum = 0.0;
  for (int64_t b = 0; b < n; b += kBlock) {
    const int64_t end = std::min(n, b + kBlock), whole = b + (end - b) / 8 * 8;
    Float8 acc = {};
    for (int64_t c = b; c < whole; c += 8) acc += exp_approx(load8(x + c) - s8);
    if (end > whole) acc += exp_approx(load_partial8(x + whole, end - whole, -INFINITY) - s8);
    sum += static_cast<double>(sum_lanes(acc));
  }
  return sum;
}
// out_c = scale · exp(x_c − lse); out may alias x.
SMOL_CPU_MULTIVERSION void scaled_softmax(float* out, const float* x, int64_t n, float lse,
                                          float scale) {
  const int64_t whole = n / 8 * 8;
  const Float8 l8 = broadcast8(lse), k8 = broadcast8(scale);
  for (int64_t c = 0; c < whole; c += 8) store8(out + c, k8 * exp_approx(load8(x + c) - l8));
  if (n > whole)
    store_partial8(out + whole, k8 * exp_approx(load_partial8(x + whole, n - whole, 0.0f) - l8),
                   n - whole);
}
}  // namespace

void cross_entropy(Tensor losses, Tensor* dlogits, const Tensor& logits, const Tensor& targets,
                   float dloss_scale) {
  const char* op = "cross_entropy";
  const int64_t rows = logits.shape.rows(), vocab = logits.shape.cols();
  if (dlogits) {
  }
  const int32_t* target = targets.as<int32_t>();
  for (int64_t t = 0; t < rows; ++t)
    SMOL_CHECK(target[t] == kIgnoreIndex || (target[t] >= 0 && target[t] < vocab), op, ": target ",
               target[t], " at row ", t, " is outside the vocabulary of logits ",
               logits.shape.str(), " (and is not the ignore index -100)");
  const float* x = logits.as<float>();
  float* loss = losses.as<float>();
  float* dx = dlogits ? dlogits->as<float>() : nullptr;
#pragma omp parallel for schedule(static) if (rows * vocab > 32768)
  for (int64_t t = 0; t < rows; ++t) {
    const float* row = x + t * vocab;
    float* drow = dx ? dx + t * vocab : nullptr;
    if (target[t] == kIgnoreIndex) {
      loss[t] = 0.0f;
      if (drow) std::memset(drow, 0, vocab * sizeof(float));
      continue;
    }
    const float max_logit = row_max(row, vocab);
    const double sum = sum_exp_shifted(row, vocab, max_logit);
    const float lse = max_logit + static_cast<float>(std::log(sum));
    loss[t] = lse - row[target[t]];
    if (drow) {
      scaled_softmax(drow, row, vocab, lse, dloss_scale);
      drow[target[t]] -= dloss_scale;
    }
  }
}

void argmax(Tensor out, const Tensor& x) {
  const int64_t rows = x.shape.rows(), cols = x.shape.cols();
  const float* in = x.as<float>();
  int32_t* best = out.as<int32_t>();
#pragma omp parallel for schedule(static) if (rows * cols > 32768)
  for (int64_t t = 0; t < rows; ++t) {
    const float* row = in + t * cols;
    int64_t arg = 0;
    for (int64_t c = 1; c < cols; ++c)
      if (row[c] > row[arg]) arg = c;  // strict: the first maximum wins
    best[t] = static_cast<int32_t>(arg);
  }
}

}  // namespace smol::cpu
