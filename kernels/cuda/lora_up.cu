// lora_up_forward / lora_up_backward (kernels/backend.h): the B side of up to three LoRA adapters
// over the same T tokens in one launch per direction (docs/design.md §2.7 "LoRA up-projections
// fused"), instead of a cast of Bᵢ to bf16 plus a cuBLASLt matmul per member and product.
//
// CUDA cores, fp32 accumulation: at r ≤ 32 a product is ≤ 2·r FLOP per element of y or dy, far
// below a tensor-core tile's break-even; the kernels are bound by reading (and, forward, writing)
// y / dy once. B and dB stay fp32 (no bf16 cast of B); y and gt are rounded once to their dtype.
//
// Forward: a block per (64 tokens, 64 columns of one member) — grid.y runs over the members'
// column tiles back to back, the member found from the flattened tile index — computes
// y[t, n] += s·Σ_k ut[k, t]·B[n, k] with ut and B tiles in shared memory; y is read and written
// once (each element owned by one thread: a plain read-modify-write).
// Backward: a block per (member, 64-token chunk) walks all Nᵢ columns in tiles of 64, so
// gt[k, t] = Σ_n B[n, k]·dy[t, n] completes inside the block (each dy element read once, gt
// written once), and writes its chunk's partial dB [rᵢ, Nᵢ] (fp32) to a scratch; a second kernel
// sums the partials over the chunks in chunk order and adds s·Σ into dB. No atomics: the results
// depend only on T, not on timing.
//
// ptxas (sm_90, nvcc 13): forward 72 registers, 16,640 bytes of static shared memory; backward
// 128 registers (the 2-blocks-per-SM cap), 33,280 bytes; no stack frame, no spills.
//
// Ranks above kMaxRank (the shared tiles' size) and mixed dtypes among the members are not fused:
// the backend falls back to the default matmuls (kernels/lora_up.cpp) — lora_up_fusable says
// which.
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/member_pick.h"

namespace smol::SMOL_GPU_NS {
namespace {

constexpr int kThreads = 256;
constexpr int kMaxMembers = static_cast<int>(Backend::kMaxLoraUpMembers);
constexpr int kMaxRank = 32;       // rᵢ fused (per member)
constexpr int kTileT = 64;         // tokens of a forward tile and of a backward chunk
constexpr int kTileN = 64;         // columns of y / dy a block holds at once
constexpr int kPadN = kTileN + 1;  // shared rows of dy padded: token-strided reads hit 32 banks
constexpr int kPadR = kMaxRank + 1;
constexpr int kLeads = kThreads / kTileN;                   // 4 thread rows over a column tile
constexpr int kTokensPerThread = kTileT / kLeads;           // forward outputs: 16 a thread
constexpr int kRanksPerThread = kMaxRank / kLeads;          // dB partial: 8 a thread
constexpr int kGtPerThread = kMaxRank * kTileT / kThreads;  // gt: 8 a thread
constexpr int kMinBlocksPerSm = 2;

// The members of one call, by value as a kernel argument.
struct Members {
  void* out[kMaxMembers];       // yᵢ (forward) or dyᵢ (backward) [T, Nᵢ], dtype Ty
  const void* ut[kMaxMembers];  // utᵢ [rᵢ, T], dtype Tl
  const float* b[kMaxMembers];  // Bᵢ [Nᵢ, rᵢ]
  float* db[kMaxMembers];       // dBᵢ [Nᵢ, rᵢ] (backward)
  void* gt[kMaxMembers];        // gtᵢ [rᵢ, T], dtype Tl (backward)
  int64_t cols[kMaxMembers];    // Nᵢ
  int rank[kMaxMembers];        // rᵢ
  // Member i owns the forward column tiles [tile_begin[i], tile_begin[i + 1]) and the elements
  // [elem_begin[i], elem_begin[i + 1]) of the flattened Σ Nᵢ·rᵢ (dB partials and the reduce).
  int tile_begin[kMaxMembers + 1];
  int64_t elem_begin[kMaxMembers + 1];
  int n;
};

static_assert(kMaxMembers == 3, "pick() (member_pick.h) selects among three members");
template <typename T>
__device__ __forceinline__ T pick4(const T (&v)[kMaxMembers + 1], int i) {
  return i == 0 ? v[0] : i == 1 ? v[1] : i == 2 ? v[2] : v[3];
}

// ut of member i over tokens [t0, t0 + kTileT) into us[k][tok] (zeros past T and for k ≥ r: the
// backward's dB loop runs over all kMaxRank rows).
template <typename Tl>
__device__ __forceinline__ void load_ut(float (&us)[kMaxRank][kTileT], const Tl* ut, int r,
                                        int64_t T, int64_t t0) {
  for (int idx = threadIdx.x; idx < kMaxRank * kTileT; idx += kThreads) {
    const int k = idx / kTileT, tok = idx % kTileT;
    const int64_t t = t0 + tok;
    us[k][tok] = k < r && t < T ? to_float(ut[k * T + t]) : 0.0f;
  }
}

// B's rows [n0, n0 + kTileN) into bs[c][k] (zeros past N; B's rows are contiguous in global).
__device__ __forceinline__ void load_b(float (&bs)[kTileN][kPadR], const float* b, int r, int64_t N,
                                       int64_t n0) {
  for (int idx = threadIdx.x; idx < r * kTileN; idx += kThreads) {
    const int c = idx / r, k = idx % r;
    bs[c][k] = n0 + c < N ? b[(n0 + c) * r + k] : 0.0f;
  }
}

// yᵢ[t, n] += s·Σ_k utᵢ[k, t]·Bᵢ[n, k]. Thread (lead, col) owns column n0 + col of tokens
// lead, lead + 4, …: us read as a broadcast (one token per warp), bs lane-strided (padded).
template <typename Ty, typename Tl>
__global__ void __launch_bounds__(kThreads, kMinBlocksPerSm)
    lora_up_forward_kernel(Members m, int64_t T, float s) {
  __shared__ float us[kMaxRank][kTileT];
  __shared__ float bs[kTileN][kPadR];
  const int tile = static_cast<int>(blockIdx.y);
  int i = 0;
  if (m.n > 1 && tile >= m.tile_begin[1]) i = 1;
  if (m.n > 2 && tile >= m.tile_begin[2]) i = 2;
  const int r = pick(m.rank, i);
  const int64_t N = pick(m.cols, i);
  const int64_t t0 = int64_t{blockIdx.x} * kTileT;
  const int64_t n0 = int64_t{tile - pick4(m.tile_begin, i)} * kTileN;
  load_ut(us, static_cast<const Tl*>(pick(m.ut, i)), r, T, t0);
  load_b(bs, pick(m.b, i), r, N, n0);
  __syncthreads();
  const int col = threadIdx.x % kTileN, lead = threadIdx.x / kTileN;
  float acc[kTokensPerThread] = {};
  for (int k = 0; k < r; ++k) {
    const float bk = bs[col][k];
    for (int j = 0; j < kTokensPerThread; ++j) acc[j] += us[k][lead + kLeads * j] * bk;
  }
  const int64_t n = n0 + col;
  if (n >= N) return;
  Ty* y = static_cast<Ty*>(pick(m.out, i));
  for (int j = 0; j < kTokensPerThread; ++j) {
    const int64_t t = t0 + lead + kLeads * j;
    if (t >= T) continue;
    Ty& out = y[t * N + n];
    out = from_float<Ty>(to_float(out) + s * acc[j]);
  }
}

// Block (chunk, member i): gtᵢ over the chunk's tokens and the chunk's partial dBᵢ, laid out
// [rᵢ, Nᵢ] (columns contiguous: coalesced stores) at partials[chunk · Σ Nr + elem_begin[i]…].
template <typename Ty, typename Tl>
__global__ void __launch_bounds__(kThreads, kMinBlocksPerSm)
    lora_up_backward_kernel(Members m, float* partials, int64_t T) {
  __shared__ float us[kMaxRank][kTileT];  // ut of the chunk
  __shared__ float ds[kTileT][kPadN];     // dy of the chunk over the current column tile
  __shared__ float bs[kTileN][kPadR];     // B over the current column tile
  const int i = static_cast<int>(blockIdx.y);
  const int r = pick(m.rank, i);
  const int64_t N = pick(m.cols, i);
  const int64_t t0 = int64_t{blockIdx.x} * kTileT;
  const Ty* dy = static_cast<const Ty*>(pick(m.out, i));
  const int64_t total = m.elem_begin[m.n];
  float* part = partials + int64_t{blockIdx.x} * total + pick4(m.elem_begin, i);
  load_ut(us, static_cast<const Tl*>(pick(m.ut, i)), r, T, t0);
  const int tid = threadIdx.x, col = tid % kTileN, lead = tid / kTileN;
  // gt pairs (k, tok) = (idx / kTileT, idx % kTileT) for idx = tid + kThreads·j: lanes run over
  // tokens (ds padded: conflict-free), bs[·][k] a broadcast.
  float gacc[kGtPerThread] = {};
  for (int64_t n0 = 0; n0 < N; n0 += kTileN) {
    for (int idx = tid; idx < kTileT * kTileN; idx += kThreads) {  // dy: columns contiguous
      const int tok = idx / kTileN, c = idx % kTileN;
      const int64_t t = t0 + tok, n = n0 + c;
      ds[tok][c] = t < T && n < N ? to_float(dy[t * N + n]) : 0.0f;
    }
    load_b(bs, pick(m.b, i), r, N, n0);
    __syncthreads();
    // dB partial [k, n0 + col] = Σ_tok ut[k, tok]·dy[tok, col] for k = lead, lead + 4, …
    float bacc[kRanksPerThread] = {};
    for (int tok = 0; tok < kTileT; ++tok) {
      const float d = ds[tok][col];
      for (int j = 0; j < kRanksPerThread; ++j) bacc[j] += us[lead + kLeads * j][tok] * d;
    }
    if (n0 + col < N)
      for (int j = 0; j < kRanksPerThread; ++j) {
        const int k = lead + kLeads * j;
        if (k < r) part[k * N + n0 + col] = bacc[j];
      }
    // gt[k, tok] += Σ_c B[n0 + c, k]·dy[tok, c]
    for (int j = 0; j < kGtPerThread; ++j) {
      const int idx = tid + kThreads * j, k = idx / kTileT, tok = idx % kTileT;
      if (k >= r) continue;
      float sum = gacc[j];
      for (int c = 0; c < kTileN; ++c) sum += bs[c][k] * ds[tok][c];
      gacc[j] = sum;
    }
    __syncthreads();
  }
  Tl* gt = static_cast<Tl*>(pick(m.gt, i));
  for (int j = 0; j < kGtPerThread; ++j) {
    const int idx = tid + kThreads * j, k = idx / kTileT, tok = idx % kTileT;
    const int64_t t = t0 + tok;
    if (k < r && t < T) gt[k * T + t] = from_float<Tl>(gacc[j]);
  }
}

// dBᵢ[n, k] += s·Σ_chunk partials[chunk, elem_begin[i] + k·Nᵢ + n], in chunk order.
__global__ void lora_up_reduce_kernel(Members m, const float* partials, int chunks, float s) {
  const int64_t total = m.elem_begin[m.n];
  const int64_t e = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  if (e >= total) return;
  float sum = 0.0f;
  for (int c = 0; c < chunks; ++c) sum += partials[c * total + e];
  int i = 0;
  if (m.n > 1 && e >= m.elem_begin[1]) i = 1;
  if (m.n > 2 && e >= m.elem_begin[2]) i = 2;
  const int64_t local = e - pick4(m.elem_begin, i), N = pick(m.cols, i);
  const int r = pick(m.rank, i);
  const int64_t k = local / N, n = local % N;
  pick(m.db, i)[n * r + k] += s * sum;
}

Members members_of(std::span<const Tensor> outs, std::span<const Tensor> uts,
                   std::span<const Tensor> bs, std::span<const Tensor> dbs,
                   std::span<const Tensor> gts) {
  Members m{};
  m.n = static_cast<int>(bs.size());
  for (int i = 0; i < m.n; ++i) {
    m.out[i] = outs[i].data;
    m.ut[i] = uts[i].data;
    m.b[i] = bs[i].as<float>();
    m.db[i] = dbs.empty() ? nullptr : dbs[i].as<float>();
    m.gt[i] = gts.empty() ? nullptr : gts[i].data;
    m.cols[i] = bs[i].shape[0];
    m.rank[i] = static_cast<int>(bs[i].shape[1]);
    m.tile_begin[i + 1] = m.tile_begin[i] + static_cast<int>(ceil_div(m.cols[i], kTileN));
    m.elem_begin[i + 1] = m.elem_begin[i] + m.cols[i] * m.rank[i];
  }
  return m;
}

}  // namespace

bool lora_up_fusable(std::span<const Tensor> outs, std::span<const Tensor> lows,
                     std::span<const Tensor> more_lows) {
  for (size_t i = 0; i < outs.size(); ++i) {
    if (lows[i].shape[0] > kMaxRank) return false;
    if (outs[i].dtype != outs[0].dtype || lows[i].dtype != lows[0].dtype) return false;
    if (!more_lows.empty() && more_lows[i].dtype != lows[0].dtype) return false;
  }
  return true;
}

void lora_up_forward(GpuContext& ctx, std::span<const Tensor> ys, std::span<const Tensor> uts,
                     std::span<const Tensor> bs, float s) {
  const int64_t T = uts[0].shape[1];
  const Members m = members_of(ys, uts, bs, {}, {});
  if (T == 0 || m.tile_begin[m.n] == 0) return;
  dispatch_float(ys[0].dtype, "lora_up_forward y", [&](auto y_tag) {
    dispatch_float(uts[0].dtype, "lora_up_forward ut", [&](auto low_tag) {
      using Ty = decltype(y_tag);
      using Tl = decltype(low_tag);
      launch(lora_up_forward_kernel<Ty, Tl>, dim3(ceil_div(T, kTileT), m.tile_begin[m.n]), kThreads,
             0, ctx.stream(), m, T, s);
    });
  });
}

void lora_up_backward(GpuContext& ctx, std::span<const Tensor> dbs, std::span<const Tensor> gts,
                      std::span<const Tensor> dys, std::span<const Tensor> uts,
                      std::span<const Tensor> bs, float s) {
  const int64_t T = uts[0].shape[1];
  if (T == 0) return;
  const Members m = members_of(dys, uts, bs, dbs, gts);
  const int chunks = static_cast<int>(ceil_div(T, kTileT));
  const int64_t total = m.elem_begin[m.n];
  float* partials = static_cast<float*>(
      ctx.scratch(static_cast<size_t>(chunks) * static_cast<size_t>(total) * sizeof(float)));
  dispatch_float(dys[0].dtype, "lora_up_backward dy", [&](auto y_tag) {
    dispatch_float(uts[0].dtype, "lora_up_backward ut", [&](auto low_tag) {
      using Ty = decltype(y_tag);
      using Tl = decltype(low_tag);
      launch(lora_up_backward_kernel<Ty, Tl>, dim3(chunks, m.n), kThreads, 0, ctx.stream(), m,
             partials, T);
    });
  });
  if (total == 0) return;
  launch(lora_up_reduce_kernel, ceil_div(total, kThreads), kThreads, 0, ctx.stream(), m,
         static_cast<const float*>(partials), chunks, s);
}

}  // namespace smol::SMOL_GPU_NS
