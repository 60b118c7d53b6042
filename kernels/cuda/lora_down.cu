// lora_down_forward / lora_down_backward (kernels/backend.h) with the dropout masks drawn on the
// fly (docs/design.md §2.7 "LoRA dropout on the fly"): up to three adapters that read the same
// x [T, C] share every loaded tile of x, each applying its own mask — keep element e = t·C + c
// iff dropout_uniform(seedᵢ, e) ≥ p, the hash dropout.cu and the cpu backend use — so drop_i(x)
// is never written to memory and x is read once per group and direction.
//
// CUDA cores, fp32 accumulation: at r ≤ 16 a member the group's ΣR ≤ 48 rows make ≈ 150 MFLOP
// per group at 8 × 1024 tokens, far below what a tensor-core tile would pay for. A is used in
// fp32 (the cuBLAS path rounds it to bf16 in a cast); drop_i(x) stays fp32 (the unfused path
// rounds x/(1−p) to bf16); ut and dx are rounded once to their dtype at the end.
//
// Forward: one block per 32 tokens computes all ΣR rows of ut for them, over C in chunks of 64.
// Backward: one block per (64 columns, 256-token chunk) computes dx for its tile (each element
// owned by one thread of one block: a plain read-modify-write) and its chunk's partial
// dA [ΣR, 64] into a scratch; a second kernel sums the partials over the chunks in chunk order
// and adds s·Σ into dA. No atomics anywhere: the results do not depend on timing, only on T.
//
// ptxas (sm_90, nvcc 13): forward 76 registers, 41,344 bytes of static shared memory; backward
// 96 registers, 39,296 bytes; no stack frame, no spills (member arrays read through pick(), not
// a dynamic index into the kernel parameter).
//
// Larger groups (ΣR > kMaxRows) and mixed low dtypes are not fused: the backend falls back to
// the default composition (kernels/lora_down.cpp) — lora_down_fusable says which.
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/member_pick.h"

namespace smol::SMOL_GPU_NS {
namespace {

constexpr int kThreads = 256;
constexpr int kMaxMembers = static_cast<int>(Backend::kMaxLoraDownMembers);
constexpr int kMaxRows = 64;       // ΣR fused; 8 rows per warp in the forward
constexpr int kTileC = 64;         // columns of x a block holds at once
constexpr int kTileT = 32;         // tokens of x a block holds at once (one per lane)
constexpr int kChunkTokens = 256;  // tokens of one dA partial (backward)
constexpr int kPadC = kTileC + 1;  // shared rows of x padded: lane-strided reads hit 32 banks
constexpr int kPadT = kTileT + 1;
// Two blocks of 256 threads per SM at least (≤ 128 registers a thread): the kernels are
// memory-bound and need the warps in flight to cover load latency.
constexpr int kMinBlocksPerSm = 2;

// The members of one group, by value as a kernel argument. Member i owns the stacked rows
// [row_begin[i], row_begin[i + 1]) of ΣR.
struct Members {
  const float* a[kMaxMembers];  // Aᵢ [rᵢ, C]
  void* low[kMaxMembers];       // utᵢ (forward) or gtᵢ (backward) [rᵢ, T], dtype Tl
  float* da[kMaxMembers];       // dAᵢ [rᵢ, C] (backward)
  uint64_t seed[kMaxMembers];
  int row_begin[kMaxMembers + 1];
  int n;
};

static_assert(kMaxMembers == 3, "pick() (member_pick.h) selects among three members");
__device__ __forceinline__ int row_begin(const Members& m, int i) {
  return i == 0   ? m.row_begin[0]
         : i == 1 ? m.row_begin[1]
         : i == 2 ? m.row_begin[2]
                  : m.row_begin[3];
}

__device__ __forceinline__ int member_of(const Members& m, int row) {
  int i = 0;
  if (m.n > 1 && row >= m.row_begin[1]) i = 1;
  if (m.n > 2 && row >= m.row_begin[2]) i = 2;
  return i;
}

// Whether member i keeps element e of x (p ≤ 0 keeps everything without hashing).
__device__ __forceinline__ bool kept(const Members& m, int i, uint64_t e, float p) {
  return p <= 0.0f || dropout_uniform(pick(m.seed, i), e) >= p;
}

// Eight consecutive values of x row t from column c (zeros past T or C) into v.
template <typename Tx>
__device__ __forceinline__ void load_x8(float (&v)[8], const Tx* x, int64_t T, int64_t C, int64_t t,
                                        int64_t c, bool vec) {
  if (t < T && c < C) {
    load8(v, x + t * C, c, C, vec);
  } else {
    for (int j = 0; j < 8; ++j) v[j] = 0.0f;
  }
}

// utᵢ[r, t] = Σ_c Aᵢ[r, c]·drop_i(x)[t, c]. Thread (warp w, lane) owns token t0 + lane of rows
// w, w + 8, …: the x tile is read lane-strided (padded, conflict-free), A broadcast.
template <typename Tx, typename Tl>
__global__ void __launch_bounds__(kThreads, kMinBlocksPerSm)
    lora_down_forward_kernel(Members m, const Tx* x /* [T, C] */, int64_t T, int64_t C, float p,
                             float keep_scale, bool vec) {
  __shared__ float xs[kMaxMembers][kTileT][kPadC];  // drop_i(x) of the tile
  __shared__ float as[kMaxRows][kTileC];            // A's rows over the tile's columns
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int64_t t0 = int64_t{blockIdx.x} * kTileT;
  const int rows = row_begin(m, m.n);
  constexpr int kRowsPerThread = kMaxRows / (kThreads / 32);
  // acc and member stay in registers: the loops over j have a constant count and no `break`
  // (`continue` past the group's rows), so nvcc unrolls them fully.
  float acc[kRowsPerThread] = {};
  int member[kRowsPerThread];
  for (int j = 0; j < kRowsPerThread; ++j) member[j] = member_of(m, warp + 8 * j);

  for (int64_t c0 = 0; c0 < C; c0 += kTileC) {
    {  // x tile: 8 threads a token, 8 columns each; every member's mask on the same values
      const int tok = tid / 8, cc = (tid % 8) * 8;
      const int64_t t = t0 + tok, c = c0 + cc;
      float v[8];
      load_x8(v, x, T, C, t, c, vec);
      for (int i = 0; i < m.n; ++i)
        for (int j = 0; j < 8; ++j) {
          const uint64_t e = static_cast<uint64_t>(t * C + c + j);
          xs[i][tok][cc + j] = t < T && c + j < C && kept(m, i, e, p) ? v[j] * keep_scale : 0.0f;
        }
    }
    for (int idx = tid; idx < rows * kTileC; idx += kThreads) {
      const int row = idx / kTileC, cc = idx % kTileC;
      const int i = member_of(m, row);
      const int64_t c = c0 + cc;
      as[row][cc] = c < C ? pick(m.a, i)[(row - row_begin(m, i)) * C + c] : 0.0f;
    }
    __syncthreads();
    for (int j = 0; j < kRowsPerThread; ++j) {
      const int row = warp + 8 * j;
      if (row >= rows) continue;
      const float* xrow = xs[member[j]][lane];
      float sum = acc[j];
      for (int cc = 0; cc < kTileC; ++cc) sum += as[row][cc] * xrow[cc];
      acc[j] = sum;
    }
    __syncthreads();
  }
  const int64_t t = t0 + lane;
  if (t >= T) return;
  for (int j = 0; j < kRowsPerThread; ++j) {
    const int row = warp + 8 * j;
    if (row >= rows) continue;
    const int i = member[j];
    static_cast<Tl*>(pick(m.low, i))[(row - row_begin(m, i)) * T + t] = from_float<Tl>(acc[j]);
  }
}

// One block per (kTileC columns, kChunkTokens tokens): dx of its tile and its chunk's partial
// dA. partials [chunks, ΣR, C] F32.
template <typename Tx, typename Tl>
__global__ void __launch_bounds__(kThreads, kMinBlocksPerSm)
    lora_down_backward_kernel(Members m, Tx* dx /* [T, C] or null */, const Tx* x /* [T, C] */,
                              float* partials, int64_t T, int64_t C, float p, float keep_scale,
                              float s, bool vec) {
  __shared__ float xf[kTileT][kPadC];                          // x of the tile (no mask)
  __shared__ unsigned char keep[kMaxMembers][kTileT][kTileC];  // member i keeps (t, c)
  __shared__ float as[kMaxRows][kTileC];                       // A over the block's columns
  __shared__ float gs[kMaxRows][kPadT];                        // gt over the tile's tokens
  const int tid = threadIdx.x;
  const int64_t c0 = int64_t{blockIdx.x} * kTileC;
  const int64_t chunk_begin = int64_t{blockIdx.y} * kChunkTokens;
  const int64_t chunk_end = chunk_begin + kChunkTokens < T ? chunk_begin + kChunkTokens : T;
  const int rows = row_begin(m, m.n);
  const int col = tid % kTileC, lead = tid / kTileC;  // lead in [0, 4)
  constexpr int kLeads = kThreads / kTileC;
  constexpr int kRowsPerThread = kMaxRows / kLeads;  // dA rows lead, lead + 4, …
  constexpr int kTokensPerThread = kTileT / kLeads;  // dx tokens lead, lead + 4, …
  // acc and member stay in registers: the loops over j have a constant count and no `break`
  // (`continue` past the group's rows), so nvcc unrolls them fully.
  float acc[kRowsPerThread] = {};
  int member[kRowsPerThread];
  for (int j = 0; j < kRowsPerThread; ++j) member[j] = member_of(m, lead + kLeads * j);

  for (int idx = tid; idx < rows * kTileC; idx += kThreads) {  // A: once per block
    const int row = idx / kTileC, cc = idx % kTileC;
    const int i = member_of(m, row);
    const int64_t c = c0 + cc;
    as[row][cc] = c < C ? pick(m.a, i)[(row - row_begin(m, i)) * C + c] : 0.0f;
  }
  for (int64_t t0 = chunk_begin; t0 < chunk_end; t0 += kTileT) {
    {  // x tile and the members' masks
      const int tok = tid / 8, cc = (tid % 8) * 8;
      const int64_t t = t0 + tok, c = c0 + cc;
      float v[8];
      load_x8(v, x, T, C, t, c, vec);
      for (int j = 0; j < 8; ++j) xf[tok][cc + j] = v[j];
      for (int i = 0; i < m.n; ++i)
        for (int j = 0; j < 8; ++j) {
          const uint64_t e = static_cast<uint64_t>(t * C + c + j);
          keep[i][tok][cc + j] = t < T && c + j < C && kept(m, i, e, p) ? 1 : 0;
        }
    }
    for (int idx = tid; idx < rows * kTileT; idx += kThreads) {  // gt: tokens contiguous
      const int row = idx / kTileT, tok = idx % kTileT;
      const int i = member_of(m, row);
      const int64_t t = t0 + tok;
      gs[row][tok] =
          t < T ? to_float(static_cast<const Tl*>(pick(m.low, i))[(row - row_begin(m, i)) * T + t])
                : 0.0f;
    }
    __syncthreads();
    // dA partial: acc[j] += Σ_tok gt[row, tok]·drop_i(x)[tok, col] (gs broadcast per warp).
    for (int tok = 0; tok < kTileT; ++tok) {
      float dropped[kMaxMembers];
      for (int i = 0; i < kMaxMembers; ++i)
        dropped[i] = i < m.n && keep[i][tok][col] ? xf[tok][col] * keep_scale : 0.0f;
      for (int j = 0; j < kRowsPerThread; ++j) {
        const int row = lead + kLeads * j;
        if (row >= rows) continue;
        const float d = member[j] == 0 ? dropped[0] : member[j] == 1 ? dropped[1] : dropped[2];
        acc[j] += gs[row][tok] * d;
      }
    }
    // dx[t, col] += s·Σᵢ keepᵢ·(1/(1−p))·Σ_{r ∈ i} gt[r, t]·A[r, col].
    if (dx != nullptr && c0 + col < C) {
      for (int k = 0; k < kTokensPerThread; ++k) {
        const int tok = lead + kLeads * k;
        const int64_t t = t0 + tok;
        if (t >= T) continue;
        float total = 0.0f;
        for (int i = 0; i < m.n; ++i) {
          if (!keep[i][tok][col]) continue;
          float sum = 0.0f;
          for (int row = row_begin(m, i); row < row_begin(m, i + 1); ++row)
            sum += gs[row][tok] * as[row][col];
          total += sum * keep_scale;
        }
        Tx& out = dx[t * C + c0 + col];
        out = from_float<Tx>(to_float(out) + s * total);
      }
    }
    __syncthreads();
  }
  if (c0 + col >= C) return;
  float* part = partials + int64_t{blockIdx.y} * rows * C;
  for (int j = 0; j < kRowsPerThread; ++j) {
    const int row = lead + kLeads * j;
    if (row >= rows) continue;
    part[row * C + c0 + col] = acc[j];
  }
}

// dAᵢ[r, c] += s·Σ_chunk partials[chunk, row, c], summed in chunk order (deterministic).
__global__ void lora_down_reduce_kernel(Members m, const float* partials, int chunks, int64_t C,
                                        float s) {
  const int rows = row_begin(m, m.n);
  const int64_t idx = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  if (idx >= rows * C) return;
  float sum = 0.0f;
  for (int k = 0; k < chunks; ++k) sum += partials[k * rows * C + idx];
  const int row = static_cast<int>(idx / C);
  const int i = member_of(m, row);
  pick(m.da, i)[idx - row_begin(m, i) * C] += s * sum;
}

Members members_of(std::span<const Tensor> lows, std::span<const Tensor> as,
                   std::span<const Tensor> das, std::span<const uint64_t> seeds) {
  Members m{};
  m.n = static_cast<int>(as.size());
  for (int i = 0; i < m.n; ++i) {
    m.a[i] = as[i].as<float>();
    m.low[i] = lows[i].data;
    m.da[i] = das.empty() ? nullptr : das[i].as<float>();
    m.seed[i] = seeds[i];
    m.row_begin[i + 1] = m.row_begin[i] + static_cast<int>(as[i].shape[0]);
  }
  return m;
}

float keep_scale_of(float p) {
  return 1.0f / (1.0f - p);  // p < 1 (the op's contract)
}

}  // namespace

bool lora_down_fusable(std::span<const Tensor> lows, const Tensor& x, const Tensor& dx) {
  int64_t rows = 0;
  for (const Tensor& low : lows) {
    rows += low.shape[0];
    if (low.dtype != lows[0].dtype) return false;
  }
  return rows <= kMaxRows && (!dx.data || dx.dtype == x.dtype);
}

void lora_down_forward(GpuContext& ctx, std::span<const Tensor> uts, const Tensor& x,
                       std::span<const Tensor> as, float p, std::span<const uint64_t> seeds) {
  const int64_t T = x.shape[0], C = x.shape[1];
  if (T == 0) return;
  const Members m = members_of(uts, as, {}, seeds);
  const bool vec = aligned16(x.data) && C % 8 == 0;
  dispatch_float(x.dtype, "lora_down_forward x", [&](auto x_tag) {
    dispatch_float(uts[0].dtype, "lora_down_forward ut", [&](auto low_tag) {
      using Tx = decltype(x_tag);
      using Tl = decltype(low_tag);
      launch(lora_down_forward_kernel<Tx, Tl>, ceil_div(T, kTileT), kThreads, 0, ctx.stream(), m,
             x.as<Tx>(), T, C, p, keep_scale_of(p), vec);
    });
  });
}

void lora_down_backward(GpuContext& ctx, std::span<const Tensor> das, Tensor dx,
                        std::span<const Tensor> gts, const Tensor& x, std::span<const Tensor> as,
                        float p, std::span<const uint64_t> seeds, float s) {
  const int64_t T = x.shape[0], C = x.shape[1];
  if (T == 0 || C == 0) return;
  const Members m = members_of(gts, as, das, seeds);
  const int rows = m.row_begin[m.n];
  const int chunks = static_cast<int>(ceil_div(T, kChunkTokens));
  float* partials =
      static_cast<float*>(ctx.scratch(static_cast<size_t>(chunks) * rows * C * sizeof(float)));
  const bool vec = aligned16(x.data) && C % 8 == 0;
  dispatch_float(x.dtype, "lora_down_backward x", [&](auto x_tag) {
    dispatch_float(gts[0].dtype, "lora_down_backward gt", [&](auto low_tag) {
      using Tx = decltype(x_tag);
      using Tl = decltype(low_tag);
      launch(lora_down_backward_kernel<Tx, Tl>, dim3(ceil_div(C, kTileC), chunks), kThreads, 0,
             ctx.stream(), m, dx.data ? dx.as<Tx>() : static_cast<Tx*>(nullptr), x.as<Tx>(),
             partials, T, C, p, keep_scale_of(p), s, vec);
    });
  });
  launch(lora_down_reduce_kernel, ceil_div(int64_t{rows} * C, kThreads), kThreads, 0, ctx.stream(),
         m, static_cast<const float*>(partials), chunks, C, s);
}

}  // namespace smol::SMOL_GPU_NS
