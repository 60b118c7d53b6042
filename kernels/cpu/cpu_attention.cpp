// Causal GQA attention over a packed batch (kernels/backend.h AttentionLayout; formats.md §2).
//   q [Tq, Hq, D], k, v [Tk, Hkv, D], out [Tq, Hq, D], lse [Tq, Hq]
// Query head h reads kv head h / (Hq/Hkv) (HF repeat_kv). Sequence s's query i sits at
// position p = k_len − q_len + i (bottom-right causal alignment) and sees its keys 0..p.
//
// Forward, per (sequence, query head, query), exactly and in fp32 with double sums:
//   s_j = scale · q·k_j,  m = max_j s_j,  l = Σ_j exp(s_j − m)
//   out = Σ_j exp(s_j − m)·v_j / l,  lse = m + log l
// Backward recomputes P_j = exp(s_j − lse) and, with Δ = Σ_d dout ⊙ out:
//   dP_j = dout·v_j,  dS_j = P_j (dP_j − Δ)
//   dq = scale Σ_j dS_j k_j,  dk_j += scale dS_j q,  dv_j += P_j dout
// The backward runs one task per (sequence, kv head): the query heads sharing that kv head
// are walked in order inside the task, so dk/dv are summed deterministically and no two
// threads write the same row. (When sequences share key rows — unusual — it runs serially.)
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/cpu/cpu_checks.h"
#include "kernels/cpu/cpu_ops.h"

namespace smol::cpu {
namespace {

struct AttentionDims {
  int64_t q_tokens, k_tokens, q_heads, kv_heads, head_dim, group;
};

AttentionDims check_attention_args(const char* op, const Tensor& out, const Tensor& lse,
                                   const Tensor& q, const Tensor& k, const Tensor& v,
                                   const AttentionLayout& layout) {
  check_f32(op, "out", out);
  check_f32(op, "lse", lse);
  check_f32(op, "q", q);
  check_f32(op, "k", k);
  check_f32(op, "v", v);
  check_rank(op, "q", q, 3, "[Tq, Hq, D]");
  check_rank(op, "k", k, 3, "[Tk, Hkv, D]");
  check_same_shape(op, "k", k, "v", v);
  check_same_shape(op, "out", out, "q", q);
  AttentionDims d{q.shape[0], k.shape[0], q.shape[1], k.shape[1], q.shape[2], 0};
  SMOL_CHECK(k.shape[2] == d.head_dim, op, ": head dim of q ", q.shape.str(), " and k ",
             k.shape.str(), " differ");
  SMOL_CHECK(d.kv_heads > 0 && d.q_heads % d.kv_heads == 0, op, ": query heads of q ",
             q.shape.str(), " are not a multiple of the kv heads of k ", k.shape.str());
  d.group = d.q_heads / d.kv_heads;
  SMOL_CHECK(lse.numel() == d.q_tokens * d.q_heads, op, ": lse must be [", d.q_tokens, ", ",
             d.q_heads, "], got ", lse.shape.str());
  for (size_t s = 0; s < layout.seqs.size(); ++s) {
    const SeqSpan& sp = layout.seqs[s];
    SMOL_CHECK(sp.q_begin >= 0 && sp.q_len >= 0 && sp.q_begin + int64_t{sp.q_len} <= d.q_tokens, op,
               ": layout sequence ", s, " query rows [", sp.q_begin, ", ",
               sp.q_begin + int64_t{sp.q_len}, ") fall outside q ", q.shape.str());
    SMOL_CHECK(sp.k_begin >= 0 && sp.k_len >= 0 && sp.k_begin + int64_t{sp.k_len} <= d.k_tokens, op,
               ": layout sequence ", s, " key rows [", sp.k_begin, ", ",
               sp.k_begin + int64_t{sp.k_len}, ") fall outside k ", k.shape.str());
    SMOL_CHECK(sp.q_len <= sp.k_len, op, ": layout sequence ", s, " has q_len ", sp.q_len,
               " > k_len ", sp.k_len);
  }
  return d;
}

// True when no two sequences share a row of [begin, begin+len) ranges given by `range`.
template <typename Range>
bool ranges_disjoint(const std::vector<SeqSpan>& seqs, Range range) {
  std::vector<std::pair<int64_t, int64_t>> spans;
  for (const SeqSpan& s : seqs) {
    auto [begin, len] = range(s);
    if (len > 0) spans.emplace_back(begin, begin + len);
  }
  std::sort(spans.begin(), spans.end());
  for (size_t i = 1; i < spans.size(); ++i)
    if (spans[i].first < spans[i - 1].second) return false;
  return true;
}

inline float dot(const float* a, const float* b, int64_t n) {
  float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
  for (int64_t i = 0; i < n; ++i) acc += a[i] * b[i];
  return acc;
}

}  // namespace

void attention_forward(Tensor out, Tensor lse, const Tensor& q, const Tensor& k, const Tensor& v,
                       const AttentionLayout& layout, float scale) {
  const AttentionDims d = check_attention_args("attention_forward", out, lse, q, k, v, layout);
  const int64_t D = d.head_dim;
  const int64_t q_stride = d.q_heads * D, kv_stride = d.kv_heads * D;  // floats per token row
  // Work items: (sequence, query head, block of up to kQueryBlock queries).
  constexpr int32_t kQueryBlock = 16;
  struct Item {
    int32_t seq, head, i_begin, i_end;
  };
  std::vector<Item> items;
  int64_t max_k = 0;
  for (size_t s = 0; s < layout.seqs.size(); ++s) {
    const SeqSpan& sp = layout.seqs[s];
    max_k = std::max<int64_t>(max_k, sp.k_len);
    for (int32_t h = 0; h < d.q_heads; ++h)
      for (int32_t i = 0; i < sp.q_len; i += kQueryBlock)
        items.push_back({static_cast<int32_t>(s), h, i, std::min(sp.q_len, i + kQueryBlock)});
  }
  const float* pq = q.as<float>();
  const float* pk = k.as<float>();
  const float* pv = v.as<float>();
  float* po = out.as<float>();
  float* pl = lse.as<float>();
  const int64_t n_items = static_cast<int64_t>(items.size());
#pragma omp parallel if (n_items > 1)
  {
    std::vector<float> scores(static_cast<size_t>(std::max<int64_t>(max_k, 1)));
    std::vector<float> acc(static_cast<size_t>(D));
#pragma omp for schedule(dynamic)
    for (int64_t it = 0; it < n_items; ++it) {
      const Item& item = items[it];
      const SeqSpan& sp = layout.seqs[item.seq];
      const int64_t kv_head = item.head / d.group;
      const float* k_base = pk + int64_t{sp.k_begin} * kv_stride + kv_head * D;
      const float* v_base = pv + int64_t{sp.k_begin} * kv_stride + kv_head * D;
      for (int32_t i = item.i_begin; i < item.i_end; ++i) {
        const int64_t row = int64_t{sp.q_begin} + i;
        const float* qi = pq + row * q_stride + item.head * D;
        const int64_t visible = int64_t{sp.k_len} - sp.q_len + i + 1;  // keys 0..p
        float max_score = -INFINITY;
        for (int64_t j = 0; j < visible; ++j) {
          scores[j] = scale * dot(qi, k_base + j * kv_stride, D);
          max_score = std::max(max_score, scores[j]);
        }
        double sum = 0.0;
        for (int64_t j = 0; j < visible; ++j) {
          scores[j] = std::exp(scores[j] - max_score);
          sum += scores[j];
        }
        std::fill(acc.begin(), acc.end(), 0.0f);
        for (int64_t j = 0; j < visible; ++j) {
          const float p = scores[j];
          const float* vj = v_base + j * kv_stride;
#pragma omp simd
          for (int64_t c = 0; c < D; ++c) acc[c] += p * vj[c];
        }
        const float inv_sum = static_cast<float>(1.0 / sum);
        float* oi = po + row * q_stride + item.head * D;
#pragma omp simd
        for (int64_t c = 0; c < D; ++c) oi[c] = acc[c] * inv_sum;
        pl[row * d.q_heads + item.head] = max_score + static_cast<float>(std::log(sum));
      }
    }
  }
}

void attention_backward(Tensor dq, Tensor dk, Tensor dv, const Tensor& dout, const Tensor& q,
                        const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                        const AttentionLayout& layout, float scale) {
  const char* op = "attention_backward";
  const AttentionDims d = check_attention_args(op, out, lse, q, k, v, layout);
  check_f32(op, "dq", dq);
  check_f32(op, "dk", dk);
  check_f32(op, "dv", dv);
  check_f32(op, "dout", dout);
  check_same_shape(op, "dq", dq, "q", q);
  check_same_shape(op, "dk", dk, "k", k);
  check_same_shape(op, "dv", dv, "v", v);
  check_same_shape(op, "dout", dout, "out", out);
  fill_zero(dq);  // overwrite semantics; rows outside the layout stay zero
  fill_zero(dk);
  fill_zero(dv);
  const int64_t D = d.head_dim;
  const int64_t q_stride = d.q_heads * D, kv_stride = d.kv_heads * D;
  const bool parallel_safe =
      ranges_disjoint(
          layout.seqs,
          [](const SeqSpan& s) { return std::pair<int64_t, int64_t>(s.q_begin, s.q_len); }) &&
      ranges_disjoint(layout.seqs, [](const SeqSpan& s) {
        return std::pair<int64_t, int64_t>(s.k_begin, s.k_len);
      });
  int64_t max_k = 0;
  for (const SeqSpan& sp : layout.seqs) max_k = std::max<int64_t>(max_k, sp.k_len);
  const int64_t n_tasks = static_cast<int64_t>(layout.seqs.size()) * d.kv_heads;
  const float* pq = q.as<float>();
  const float* pk = k.as<float>();
  const float* pv = v.as<float>();
  const float* po = out.as<float>();
  const float* pdo = dout.as<float>();
  const float* pl = lse.as<float>();
  float* pdq = dq.as<float>();
  float* pdk = dk.as<float>();
  float* pdv = dv.as<float>();
#pragma omp parallel if (parallel_safe && n_tasks > 1)
  {
    std::vector<float> probs(static_cast<size_t>(std::max<int64_t>(max_k, 1)));
    std::vector<float> dscores(probs.size());
    std::vector<float> dq_acc(static_cast<size_t>(D));
#pragma omp for schedule(dynamic)
    for (int64_t task = 0; task < n_tasks; ++task) {
      const SeqSpan& sp = layout.seqs[task / d.kv_heads];
      const int64_t kv_head = task % d.kv_heads;
      const float* k_base = pk + int64_t{sp.k_begin} * kv_stride + kv_head * D;
      const float* v_base = pv + int64_t{sp.k_begin} * kv_stride + kv_head * D;
      float* dk_base = pdk + int64_t{sp.k_begin} * kv_stride + kv_head * D;
      float* dv_base = pdv + int64_t{sp.k_begin} * kv_stride + kv_head * D;
      for (int64_t h = kv_head * d.group; h < (kv_head + 1) * d.group; ++h) {
        for (int32_t i = 0; i < sp.q_len; ++i) {
          const int64_t row = int64_t{sp.q_begin} + i;
          const int64_t offset = row * q_stride + h * D;
          const float* qi = pq + offset;
          const float* oi = po + offset;
          const float* doi = pdo + offset;
          const float lse_i = pl[row * d.q_heads + h];
          const int64_t visible = int64_t{sp.k_len} - sp.q_len + i + 1;
          double delta_sum = 0.0;  // Δ = Σ_d dout ⊙ out
          for (int64_t c = 0; c < D; ++c) delta_sum += static_cast<double>(doi[c]) * oi[c];
          const float delta = static_cast<float>(delta_sum);
          for (int64_t j = 0; j < visible; ++j) {
            const float p = std::exp(scale * dot(qi, k_base + j * kv_stride, D) - lse_i);
            const float dp = dot(doi, v_base + j * kv_stride, D);
            probs[j] = p;
            dscores[j] = p * (dp - delta);
          }
          std::fill(dq_acc.begin(), dq_acc.end(), 0.0f);
          for (int64_t j = 0; j < visible; ++j) {
            const float ds = dscores[j], p = probs[j];
            const float* kj = k_base + j * kv_stride;
            float* dkj = dk_base + j * kv_stride;
            float* dvj = dv_base + j * kv_stride;
#pragma omp simd
            for (int64_t c = 0; c < D; ++c) {
              dq_acc[c] += ds * kj[c];
              dkj[c] += scale * ds * qi[c];
              dvj[c] += p * doi[c];
            }
          }
          float* dqi = pdq + offset;
#pragma omp simd
          for (int64_t c = 0; c < D; ++c) dqi[c] += scale * dq_acc[c];
        }
      }
    }
  }
}

}  // namespace smol::cpu
