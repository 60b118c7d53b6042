// Cross-entropy over logits [T, V] against targets I32 [T] (formats.md §2 "Loss"; −100 is
// ignored), and argmax for greedy decoding.
//   lse_t    = m + log Σ_v exp(x_tv − m),  m = max_v x_tv   (exp_approx in float, sum in double)
//   loss_t   = lse_t − x_t,target                            (0 on ignored rows)
//   dlogits  = dloss_scale · (exp(x − lse) − onehot(target))  (0 on ignored rows)
// One row per iteration, rows in parallel; dlogits may alias logits because a row's loss and
// lse are formed before any of its elements is overwritten.
#include <cmath>
#include <cstring>

#include "kernels/cpu/cpu_checks.h"
#include "kernels/cpu/cpu_math.h"
#include "kernels/cpu/cpu_ops.h"

namespace smol::cpu {
namespace {
constexpr int32_t kIgnoreIndex = -100;

// Σ_c exp(x_c − shift), each term in float, the sum in double.
SMOL_CPU_MULTIVERSION double sum_exp_shifted(const float* x, int64_t n, float shift) {
  double sum = 0.0;
#pragma omp simd reduction(+ : sum)
  for (int64_t c = 0; c < n; ++c) sum += exp_approx(x[c] - shift);
  return sum;
}
// out_c = scale · exp(x_c − lse); out may alias x.
SMOL_CPU_MULTIVERSION void scaled_softmax(float* out, const float* x, int64_t n, float lse,
                                          float scale) {
#pragma omp simd
  for (int64_t c = 0; c < n; ++c) out[c] = scale * exp_approx(x[c] - lse);
}
}  // namespace

void cross_entropy(Tensor losses, Tensor* dlogits, const Tensor& logits, const Tensor& targets,
                   float dloss_scale) {
  const char* op = "cross_entropy";
  check_f32(op, "losses", losses);
  check_f32(op, "logits", logits);
  check_i32(op, "targets", targets);
  const int64_t rows = logits.shape.rows(), vocab = logits.shape.cols();
  check_vector(op, "losses", losses, rows);
  check_vector(op, "targets", targets, rows);
  if (dlogits) {
    check_f32(op, "dlogits", *dlogits);
    check_same_shape(op, "dlogits", *dlogits, "logits", logits);
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
    float max_logit = -INFINITY;
    for (int64_t c = 0; c < vocab; ++c) max_logit = std::max(max_logit, row[c]);
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
  check_i32("argmax", "out", out);
  check_f32("argmax", "x", x);
  const int64_t rows = x.shape.rows(), cols = x.shape.cols();
  check_vector("argmax", "out", out, rows);
  SMOL_CHECK(cols > 0, "argmax: x ", x.shape.str(), " has an empty last dimension");
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
