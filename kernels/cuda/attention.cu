// Causal GQA attention over a packed batch (backend.h AttentionLayout, varlen with
// bottom-right aligned causal masking): the entry points attention_forward / attention_backward,
// the layout's device copy, and the simple exact kernels. q [Tq, Hq, D], k/v [Tk, Hkv, D],
// out [Tq, Hq, D], lse F32 [Tq, Hq]; query head h reads kv head h / (Hq/Hkv). Query i of
// sequence s sits at position p = k_len − q_len + (i − q_begin) and sees keys 0..p of its
// sequence. Softmax in fp32.
//
// bf16 inputs with a head dim that is a multiple of 16 and at most 128 (SmolLM2: 64) go to the
// tensor-core flash kernels (flash_attention.cu, docs/design.md §2.5). The simple kernels below
// serve everything else (F32 activations, odd head dims, unaligned views) and are the
// readable statement of the math:
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

#include "kernels/cuda/attention_layout.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/flash_attention.h"

namespace smol::SMOL_GPU_NS {
namespace {

constexpr int kThreads = 128;

using Span = AttentionSpan;

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

// The work lists of the flash kernels (attention_layout.h), in the order they are laid out in
// the device blob after the row maps and spans.
struct LayoutCounts {
  int query_tiles = 0, key_tiles = 0, decode_splits = 0;
  int64_t covered_queries = 0, covered_keys = 0;
  int max_q_len = 0, max_k_len = 0;
};
LayoutCounts count_layout(const AttentionLayout& layout) {
  LayoutCounts c;
  for (const SeqSpan& sp : layout.seqs) {
    c.query_tiles += (sp.q_len + kFlashTileRows - 1) / kFlashTileRows;
    c.key_tiles += (sp.k_len + kFlashTileRows - 1) / kFlashTileRows;
    c.decode_splits += (sp.k_len + kDecodeSplitKeys - 1) / kDecodeSplitKeys;
    c.covered_queries += sp.q_len;
    c.covered_keys += sp.k_len;
    c.max_q_len = std::max(c.max_q_len, sp.q_len);
    c.max_k_len = std::max(c.max_k_len, sp.k_len);
  }
  return c;
}

// Byte offsets of the blob's parts: [query_seq | key_seq | spans | query tiles | key tiles |
// decode splits | split ranges], each 16-byte aligned.
struct BlobOffsets {
  size_t key_seq, spans, query_tiles, key_tiles, decode_splits, split_ranges, total;
};
BlobOffsets blob_offsets(int64_t tq, int64_t tk, size_t seqs, const LayoutCounts& c) {
  auto up = [](size_t x) { return (x + 15) / 16 * 16; };
  BlobOffsets o{};
  o.key_seq = up(tq * sizeof(int));
  o.spans = o.key_seq + up(tk * sizeof(int));
  o.query_tiles = o.spans + up(seqs * sizeof(AttentionSpan));
  o.key_tiles = o.query_tiles + up(c.query_tiles * sizeof(AttentionTile));
  o.decode_splits = o.key_tiles + up(c.key_tiles * sizeof(AttentionTile));
  o.split_ranges = o.decode_splits + up(c.decode_splits * sizeof(AttentionTile));
  o.total = o.split_ranges + up(seqs * sizeof(SplitRange)) + 16;
  return o;
}

// The layout's device copy, uploaded once per batch: every layer forward and backward passes
// the same layout, so later calls find it cached in the context (no host work beyond comparing
// the key and counting tiles, no copy, no host wait). A new layout is staged and copied
// asynchronously. Bounds were checked by Backend; rows shared by two sequences are refused here
// (the row maps need each row to belong to at most one sequence).
DeviceAttentionLayout upload_layout(GpuContext& ctx, const char* op, const AttentionLayout& layout,
                                    int64_t tq, int64_t tk) {
  std::vector<int32_t> key;
  key.reserve(2 + 4 * layout.seqs.size());
  key.push_back(static_cast<int32_t>(tq));
  key.push_back(static_cast<int32_t>(tk));
  for (const SeqSpan& sp : layout.seqs)
    key.insert(key.end(), {sp.q_begin, sp.q_len, sp.k_begin, sp.k_len});
  const LayoutCounts counts = count_layout(layout);
  const BlobOffsets off = blob_offsets(tq, tk, layout.seqs.size(), counts);
  const void* device = ctx.cached_attention_layout(key);
  if (!device) {
    std::vector<char> host(off.total, 0);
    int* query_seq = reinterpret_cast<int*>(host.data());
    int* key_seq = reinterpret_cast<int*>(host.data() + off.key_seq);
    auto* spans = reinterpret_cast<AttentionSpan*>(host.data() + off.spans);
    auto* query_tiles = reinterpret_cast<AttentionTile*>(host.data() + off.query_tiles);
    auto* key_tiles = reinterpret_cast<AttentionTile*>(host.data() + off.key_tiles);
    auto* splits = reinterpret_cast<AttentionTile*>(host.data() + off.decode_splits);
    auto* ranges = reinterpret_cast<SplitRange*>(host.data() + off.split_ranges);
    std::fill(query_seq, query_seq + tq, -1);
    std::fill(key_seq, key_seq + tk, -1);
    int nq = 0, nk = 0, ns = 0;
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
      spans[s] = {sp.q_begin, sp.q_len, sp.k_begin, sp.k_len};
      for (int i0 = 0; i0 < sp.q_len; i0 += kFlashTileRows) query_tiles[nq++] = {int(s), i0};
      for (int j0 = 0; j0 < sp.k_len; j0 += kFlashTileRows) key_tiles[nk++] = {int(s), j0};
      ranges[s] = {ns, 0};
      for (int j0 = 0; j0 < sp.k_len; j0 += kDecodeSplitKeys) splits[ns++] = {int(s), j0};
      ranges[s].count = ns - ranges[s].first;
    }
    // Heaviest query tiles first (the last tile of a long sequence sees the most keys), so the
    // GPU's last wave is made of short blocks; the order does not change any result.
    auto keys_seen = [&](const AttentionTile& t) {
      const AttentionSpan& sp = spans[t.seq];
      return sp.k_len - sp.q_len + std::min(t.start + kFlashTileRows, sp.q_len);
    };
    std::stable_sort(query_tiles, query_tiles + nq,
                     [&](const AttentionTile& a, const AttentionTile& b) {
                       return keys_seen(a) > keys_seen(b);
                     });
    device = ctx.store_attention_layout(std::move(key), host.data(), off.total);
  }
  const char* base = static_cast<const char*>(device);
  DeviceAttentionLayout dl;
  dl.query_seq = reinterpret_cast<const int*>(base);
  dl.key_seq = reinterpret_cast<const int*>(base + off.key_seq);
  dl.spans = reinterpret_cast<const AttentionSpan*>(base + off.spans);
  dl.query_tiles = reinterpret_cast<const AttentionTile*>(base + off.query_tiles);
  dl.key_tiles = reinterpret_cast<const AttentionTile*>(base + off.key_tiles);
  dl.decode_splits = reinterpret_cast<const AttentionTile*>(base + off.decode_splits);
  dl.split_ranges = reinterpret_cast<const SplitRange*>(base + off.split_ranges);
  dl.sequences = static_cast<int>(layout.seqs.size());
  dl.query_tile_count = counts.query_tiles;
  dl.key_tile_count = counts.key_tiles;
  dl.decode_split_count = counts.decode_splits;
  dl.max_q_len = counts.max_q_len;
  dl.max_k_len = counts.max_k_len;
  // Rows are never shared (checked above when uploading), so the counts decide coverage.
  dl.covers_all_queries = counts.covered_queries == tq;
  dl.covers_all_keys = counts.covered_keys == tk;
  return dl;
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
  const DeviceAttentionLayout dl = upload_layout(ctx, op, layout, tq, tk);
  if (flash_attention_supported(q, k, v, {&out})) {
    flash_attention_forward(ctx, out, lse, q, k, v, dl, scale);
    return;
  }
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
  const DeviceAttentionLayout dl = upload_layout(ctx, op, layout, tq, tk);
  if (flash_attention_supported(q, k, v, {&dq, &dk, &dv, &dout, &out})) {
    flash_attention_backward(ctx, dq, dk, dv, dout, q, k, v, out, lse, dl, scale);
    return;
  }
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

bool attention_rope_backward(GpuContext& ctx, Tensor dq, Tensor dk, Tensor dv, const Tensor& dout,
                             const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                             const Tensor& lse, const AttentionLayout& layout, float scale,
                             const Backend::Rotary& rotary) {
  // Only the flash kernels rotate in their epilogue; the simple kernels (F32, odd head dims)
  // leave the composition to the caller.
  if (!flash_attention_supported(q, k, v, {&dq, &dk, &dv, &dout, &out})) return false;
  if (q.shape[0] == 0) return true;  // Tq == Tk == 0: nothing to write
  const DeviceAttentionLayout dl =
      upload_layout(ctx, "attention_rope_backward", layout, q.shape[0], k.shape[0]);
  flash_attention_backward(ctx, dq, dk, dv, dout, q, k, v, out, lse, dl, scale, &rotary);
  return true;
}

}  // namespace smol::SMOL_GPU_NS
