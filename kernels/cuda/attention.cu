// Causal GQA attention over a packed batch (backend.h AttentionLayout, varlen with
// bottom-right aligned causal masking): simple, exact kernels — a later issue makes this a
// flash-attention kernel. q [Tq, Hq, D], k/v [Tk, Hkv, D], out [Tq, Hq, D], lse F32 [Tq, Hq];
// query head h reads kv head h / (Hq/Hkv). Query i of sequence s sits at position
// p = k_len − q_len + (i − q_begin) and sees keys 0..p of its sequence. Softmax in fp32.
//
// Forward: one block per (query row, head). Scores scale·q·k_j for the p+1 visible keys go to
// dynamic shared memory; the block max and Σ exp (fixed-order trees) give lse = m + log Σ;
// out[d] = Σ_j exp(s_j − m)·v_j[d] / Σ. Rows of q outside the layout are left untouched.
//
// Backward (overwrites; rows outside the layout get zeros), with P_ij = exp(s_ij − lse_i),
// dP_ij = dout_i·v_j, Δ_i = dout_i·out_i and dS_ij = P_ij (dP_ij − Δ_i):
//   dq_i = scale Σ_j dS_ij k_j                 one block per (query row, head)
//   dk_j = scale Σ_(i,h) dS_ij q_i,  dv_j = Σ_(i,h) P_ij dout_i
//                                              one block per (key row, kv head), looping over
//                                              the queries that see key j and the group's heads
// Every sum runs in a fixed order, so results are deterministic without atomics.
#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/cuda/cuda_ops.h"

namespace smol::SMOL_GPU_NS {
namespace {

constexpr int kThreads = 128;

struct Span {
  int q_begin, q_len, k_begin, k_len;
};

template <typename T>
__device__ __forceinline__ float dot(const T* a, const T* b, int n) {
  float acc = 0.0f;
  for (int d = 0; d < n; ++d) acc += to_float(a[d]) * to_float(b[d]);
  return acc;
}

template <typename T>
__global__ void attention_forward_kernel(
    T* out /* [Tq, Hq, D] */, float* lse /* [Tq, Hq] */, const T* q /* [Tq, Hq, D] */,
    const T* k /* [Tk, Hkv, D] */, const T* v /* [Tk, Hkv, D] */, const int* query_seq /* [Tq] */,
    const Span* spans /* [S] */, int hq, int hkv, int dim, float scale) {
  __shared__ float scratch[32];
  const int i = blockIdx.x, h = blockIdx.y;
  const int s = query_seq[i];
  if (s < 0) return;  // not covered by the layout: untouched (whole block leaves)
  const Span span = spans[s];
  const int keys = span.k_len - span.q_len + (i - span.q_begin) + 1;
  const int kv = h / (hq / hkv);
  float* p = dynamic_shared<float>();  // [keys]
  const T* qi = q + (int64_t{i} * hq + h) * dim;
  float m = -INFINITY;
  for (int j = threadIdx.x; j < keys; j += blockDim.x) {
    const T* kj = k + (int64_t{span.k_begin + j} * hkv + kv) * dim;
    p[j] = scale * dot(qi, kj, dim);
    m = fmaxf(m, p[j]);
  }
  m = block_max(m, scratch);
  float sum = 0.0f;
  for (int j = threadIdx.x; j < keys; j += blockDim.x) {
    p[j] = expf(p[j] - m);
    sum += p[j];
  }
  sum = block_sum(sum, scratch);  // ends with a barrier: every p[j] is visible below
  for (int d = threadIdx.x; d < dim; d += blockDim.x) {
    float acc = 0.0f;
    for (int j = 0; j < keys; ++j)
      acc += p[j] * to_float(v[(int64_t{span.k_begin + j} * hkv + kv) * dim + d]);
    out[(int64_t{i} * hq + h) * dim + d] = from_float<T>(acc / sum);
  }
  if (threadIdx.x == 0) lse[int64_t{i} * hq + h] = m + logf(sum);
}

template <typename T>
__global__ void attention_delta_kernel(float* delta /* [Tq, Hq] */, const T* dout, const T* out,
                                       int64_t rows, int dim) {
  const int64_t r = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  if (r < rows) delta[r] = dot(dout + r * dim, out + r * dim, dim);
}

template <typename T>
__global__ void attention_dq_kernel(T* dq /* [Tq, Hq, D] */, const T* dout, const T* q, const T* k,
                                    const T* v, const float* lse, const float* delta,
                                    const int* query_seq, const Span* spans, int hq, int hkv,
                                    int dim, float scale) {
  const int i = blockIdx.x, h = blockIdx.y;
  const int64_t row = int64_t{i} * hq + h;
  const int s = query_seq[i];
  if (s < 0) {
    for (int d = threadIdx.x; d < dim; d += blockDim.x) dq[row * dim + d] = from_float<T>(0.0f);
    return;
  }
  const Span span = spans[s];
  const int keys = span.k_len - span.q_len + (i - span.q_begin) + 1;
  const int kv = h / (hq / hkv);
  float* ds = dynamic_shared<float>();  // [keys]
  for (int j = threadIdx.x; j < keys; j += blockDim.x) {
    const int64_t kr = (int64_t{span.k_begin + j} * hkv + kv) * dim;
    const float pij = expf(scale * dot(q + row * dim, k + kr, dim) - lse[row]);
    ds[j] = pij * (dot(dout + row * dim, v + kr, dim) - delta[row]);
  }
  __syncthreads();
  for (int d = threadIdx.x; d < dim; d += blockDim.x) {
    float acc = 0.0f;
    for (int j = 0; j < keys; ++j)
      acc += ds[j] * to_float(k[(int64_t{span.k_begin + j} * hkv + kv) * dim + d]);
    dq[row * dim + d] = from_float<T>(scale * acc);
  }
}

// Threads own channels d (blockDim ≥ D); each (query, head) pair's two dot products are block
// sums, so every thread knows P and dS before accumulating its channel.
template <typename T>
__global__ void attention_dkdv_kernel(T* dk /* [Tk, Hkv, D] */, T* dv /* [Tk, Hkv, D] */,
                                      const T* dout, const T* q, const T* k, const T* v,
                                      const float* lse, const float* delta,
                                      const int* key_seq /* [Tk] */, const Span* spans, int hq,
                                      int hkv, int dim, float scale) {
  __shared__ float scratch[32];
  const int r = blockIdx.x, g = blockIdx.y;
  const int64_t krow = (int64_t{r} * hkv + g) * dim;
  const int d = threadIdx.x;
  const int s = key_seq[r];
  float dk_acc = 0.0f, dv_acc = 0.0f;
  if (s >= 0) {
    const Span span = spans[s];
    const int j = r - span.k_begin;
    const int offset = span.k_len - span.q_len;  // query i' (0-based) sees keys ≤ offset + i'
    const int first = j - offset > 0 ? j - offset : 0;
    const int group = hq / hkv;
    const float kd = d < dim ? to_float(k[krow + d]) : 0.0f;
    const float vd = d < dim ? to_float(v[krow + d]) : 0.0f;
    for (int qi = first; qi < span.q_len; ++qi) {
      for (int h = g * group; h < (g + 1) * group; ++h) {
        const int64_t row = int64_t{span.q_begin + qi} * hq + h;
        const float qd = d < dim ? to_float(q[row * dim + d]) : 0.0f;
        const float od = d < dim ? to_float(dout[row * dim + d]) : 0.0f;
        const float score = scale * block_sum(qd * kd, scratch);
        const float dp = block_sum(od * vd, scratch);
        const float pij = expf(score - lse[row]);
        dv_acc += pij * od;
        dk_acc += scale * pij * (dp - delta[row]) * qd;
      }
    }
  }
  if (d < dim) {
    dk[krow + d] = from_float<T>(dk_acc);
    dv[krow + d] = from_float<T>(dv_acc);
  }
}

struct DeviceLayout {
  const int* query_seq;
  const int* key_seq;
  const Span* spans;
};

// The layout's device copy [query_seq | key_seq | spans], uploaded once per batch: every layer
// forward and backward passes the same layout, so later calls find it cached in the context
// (no host work beyond comparing the key, no copy, no host wait). A new layout is staged and
// copied asynchronously. Bounds were checked by Backend; rows shared by two sequences are
// refused here (the row maps need each row to belong to at most one sequence).
DeviceLayout upload_layout(GpuContext& ctx, const char* op, const AttentionLayout& layout,
                           int64_t tq, int64_t tk) {
  std::vector<int32_t> key;
  key.reserve(2 + 4 * layout.seqs.size());
  key.push_back(static_cast<int32_t>(tq));
  key.push_back(static_cast<int32_t>(tk));
  for (const SeqSpan& sp : layout.seqs)
    key.insert(key.end(), {sp.q_begin, sp.q_len, sp.k_begin, sp.k_len});
  const void* device = ctx.cached_attention_layout(key);
  if (!device) {
    std::vector<int> query_seq(tq, -1), key_seq(tk, -1);
    std::vector<Span> spans;
    for (size_t s = 0; s < layout.seqs.size(); ++s) {
      const SeqSpan& sp = layout.seqs[s];
      for (int i = sp.q_begin; i < sp.q_begin + sp.q_len; ++i) {
        SMOL_CHECK(query_seq[i] < 0, op, ": query row ", i, " belongs to two sequences");
        query_seq[i] = static_cast<int>(s);
      }
      for (int j = sp.k_begin; j < sp.k_begin + sp.k_len; ++j) {
        SMOL_CHECK(key_seq[j] < 0, op, ": key row ", j, " belongs to two sequences");
        key_seq[j] = static_cast<int>(s);
      }
      spans.push_back({sp.q_begin, sp.q_len, sp.k_begin, sp.k_len});
    }
    const size_t bytes = (tq + tk) * sizeof(int) + spans.size() * sizeof(Span) + 16;
    std::vector<char> host(bytes, 0);
    std::memcpy(host.data(), query_seq.data(), tq * sizeof(int));
    std::memcpy(host.data() + tq * sizeof(int), key_seq.data(), tk * sizeof(int));
    if (!spans.empty())
      std::memcpy(host.data() + (tq + tk) * sizeof(int), spans.data(), spans.size() * sizeof(Span));
    device = ctx.store_attention_layout(std::move(key), host.data(), bytes);
  }
  const char* base = static_cast<const char*>(device);
  return {reinterpret_cast<const int*>(base), reinterpret_cast<const int*>(base) + tq,
          reinterpret_cast<const Span*>(base + (tq + tk) * sizeof(int))};
}

size_t score_bytes(const char* op, const AttentionLayout& layout) {
  int max_keys = 0;
  for (const SeqSpan& s : layout.seqs) max_keys = std::max(max_keys, s.k_len);
  const size_t bytes = sizeof(float) * std::max(max_keys, 1);
  SMOL_CHECK(bytes <= 227 * 1024, op, ": ", max_keys,
             " keys exceed this simple kernel's shared-memory score row");
  return bytes;
}

template <typename Kernel>
void allow_shared(Kernel* kernel, size_t bytes) {
  if (bytes > 48 * 1024)
    cuda_check(
        cudaFuncSetAttribute(reinterpret_cast<const void*>(kernel),
                             cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)),
        "attention shared memory");
}

}  // namespace

void attention_forward(GpuContext& ctx, Tensor out, Tensor lse, const Tensor& q, const Tensor& k,
                       const Tensor& v, const AttentionLayout& layout, float scale) {
  const char* op = "attention_forward";
  const int64_t tq = q.shape[0], hq = q.shape[1], tk = k.shape[0], hkv = k.shape[1],
                dim = q.shape[2];
  if (tq == 0 || layout.seqs.empty()) return;
  const DeviceLayout dl = upload_layout(ctx, op, layout, tq, tk);
  const size_t shared = score_bytes(op, layout);
  dispatch_float(q.dtype, op, [&](auto tag) {
    using T = decltype(tag);
    allow_shared(attention_forward_kernel<T>, shared);
    launch(attention_forward_kernel<T>, dim3(static_cast<unsigned>(tq), static_cast<unsigned>(hq)),
           kThreads, shared, ctx.stream(), out.as<T>(), lse.as<float>(),
           static_cast<const T*>(q.as<T>()), static_cast<const T*>(k.as<T>()),
           static_cast<const T*>(v.as<T>()), dl.query_seq, dl.spans, static_cast<int>(hq),
           static_cast<int>(hkv), static_cast<int>(dim), scale);
  });
}

void attention_backward(GpuContext& ctx, Tensor dq, Tensor dk, Tensor dv, const Tensor& dout,
                        const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                        const Tensor& lse, const AttentionLayout& layout, float scale) {
  const char* op = "attention_backward";
  const int64_t tq = q.shape[0], hq = q.shape[1], tk = k.shape[0], hkv = k.shape[1],
                dim = q.shape[2];
  SMOL_CHECK(dim <= 1024, op, ": head dim ", dim, " exceeds 1024");
  if (tq == 0 && tk == 0) return;
  const DeviceLayout dl = upload_layout(ctx, op, layout, tq, tk);
  const size_t shared = score_bytes(op, layout);
  float* delta = static_cast<float*>(ctx.scratch(sizeof(float) * std::max<int64_t>(1, tq * hq)));
  const unsigned dkdv_threads = static_cast<unsigned>((dim + 31) / 32 * 32);
  dispatch_float(q.dtype, op, [&](auto tag) {
    using T = decltype(tag);
    const T* dout_p = dout.as<T>();
    const T* q_p = q.as<T>();
    const T* k_p = k.as<T>();
    const T* v_p = v.as<T>();
    if (tq > 0) {
      launch(attention_delta_kernel<T>, ceil_div(tq * hq, 256), 256, 0, ctx.stream(), delta, dout_p,
             static_cast<const T*>(out.as<T>()), tq * hq, static_cast<int>(dim));
      allow_shared(attention_dq_kernel<T>, shared);
      launch(attention_dq_kernel<T>, dim3(static_cast<unsigned>(tq), static_cast<unsigned>(hq)),
             kThreads, shared, ctx.stream(), dq.as<T>(), dout_p, q_p, k_p, v_p,
             static_cast<const float*>(lse.as<float>()), static_cast<const float*>(delta),
             dl.query_seq, dl.spans, static_cast<int>(hq), static_cast<int>(hkv),
             static_cast<int>(dim), scale);
    }
    if (tk > 0)
      launch(attention_dkdv_kernel<T>, dim3(static_cast<unsigned>(tk), static_cast<unsigned>(hkv)),
             dkdv_threads, 0, ctx.stream(), dk.as<T>(), dv.as<T>(), dout_p, q_p, k_p, v_p,
             static_cast<const float*>(lse.as<float>()), static_cast<const float*>(delta),
             dl.key_seq, dl.spans, static_cast<int>(hq), static_cast<int>(hkv),
             static_cast<int>(dim), scale);
  });
}

}  // namespace smol::SMOL_GPU_NS
