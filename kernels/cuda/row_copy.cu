// Row scatter and gather (kernels/backend.h scatter_rows / gather_rows; docs/design.md §2.8).
//
// A decode step appends every sequence's new key and value rows to the KV cache and gathers
// each sequence's last hidden row before the LM head. As per-row device-to-device copies that
// was 2·B launches per layer plus B before the head (B sequences); here each is one launch,
// with the destination (scatter) or source (gather) row read from an I32 index on the device.
//
// Grid (N rows, pairs) × 64 threads: block (i, p) copies row i of pair p, in 16-byte words when
// both row starts are 16-byte aligned and the row is a multiple of 16 bytes (a SmolLM2 KV row:
// 3 kv heads × 64 × bf16 = 384 bytes = 24 words), else byte by byte. Bit-exact: bytes move,
// nothing is converted. An index outside [0, R) writes nothing; in the device-checks debug mode
// the first bad position is recorded in a flag and read back (a host wait), otherwise there is
// no flag at all (no memset: one launch per op).
#include "kernels/cuda/cuda_ops.h"

namespace smol::SMOL_GPU_NS {
namespace {

constexpr int kRowCopyThreads = 64;

struct RowPair {
  char* dst = nullptr;
  const char* src = nullptr;
};

// scatter: dst row index[i] ← src row i; gather: dst row i ← src row index[i].
__global__ void __launch_bounds__(kRowCopyThreads)
    row_copy_kernel(RowPair p0, RowPair p1, const int* index, int64_t indexed_rows,
                    int64_t row_bytes, bool scatter, bool vec, int* bad) {
  const int64_t i = blockIdx.x;
  const RowPair p = blockIdx.y == 0 ? p0 : p1;
  const int row = index[i];
  if (row < 0 || row >= indexed_rows) {
    if (bad != nullptr && threadIdx.x == 0) atomicCAS(bad, -1, static_cast<int>(i));
    return;
  }
  char* dst = p.dst + (scatter ? row : i) * row_bytes;
  const char* src = p.src + (scatter ? i : row) * row_bytes;
  if (vec) {
    const int64_t words = row_bytes / 16;
    for (int64_t w = threadIdx.x; w < words; w += blockDim.x) {
      check_aligned16(src + 16 * w);
      check_aligned16(dst + 16 * w);
      reinterpret_cast<uint4*>(dst)[w] = reinterpret_cast<const uint4*>(src)[w];
    }
    return;
  }
  for (int64_t b = threadIdx.x; b < row_bytes; b += blockDim.x) dst[b] = src[b];
}

void run_row_copy(GpuContext& ctx, const char* op, const RowPair* pairs, int pair_count,
                  const Tensor& index, int64_t indexed_rows, int64_t row_bytes, bool scatter) {
  const int64_t n = index.numel();
  bool vec = row_bytes % 16 == 0;
  for (int p = 0; p < pair_count; ++p)
    vec = vec && aligned16(pairs[p].dst) && aligned16(pairs[p].src);
  SMOL_CHECK(n < (int64_t{1} << 31), op, ": ", n, " rows exceed one grid");
  int* bad = nullptr;
  if (ctx.device_checks()) {
    bad = static_cast<int*>(ctx.scratch(sizeof(int)));
    cuda_check(cudaMemsetAsync(bad, 0xFF, sizeof(int), ctx.stream()), op);  // -1: all in range
  }
  launch(row_copy_kernel, dim3(static_cast<unsigned>(n), static_cast<unsigned>(pair_count)),
         kRowCopyThreads, 0, ctx.stream(), pairs[0], pair_count > 1 ? pairs[1] : pairs[0],
         index.as<int>(), indexed_rows, row_bytes, scatter, vec, bad);
  if (bad == nullptr) return;  // debug mode only: the model builds the index itself
  int bad_position = -1;
  ctx.download(&bad_position, bad, sizeof(int));
  if (bad_position < 0) return;
  int value = 0;
  ctx.download(&value, index.as<int>() + bad_position, sizeof(int));
  throw_error(op, ": index[", bad_position, "] = ", value, " is outside [0, ", indexed_rows, ")");
}

}  // namespace

void scatter_rows(GpuContext& ctx, std::span<const Backend::RowScatter> pairs,
                  const Tensor& index) {
  RowPair device_pairs[Backend::kMaxScatterPairs];
  for (size_t p = 0; p < pairs.size(); ++p)
    device_pairs[p] = {static_cast<char*>(pairs[p].dst.data),
                       static_cast<const char*>(pairs[p].src.data)};
  const Tensor& first = pairs.front().dst;
  run_row_copy(ctx, "scatter_rows", device_pairs, static_cast<int>(pairs.size()), index,
               first.shape[0], first.shape[1] * static_cast<int64_t>(dtype_size(first.dtype)),
               /*scatter=*/true);
}

void gather_rows(GpuContext& ctx, Tensor dst, const Tensor& src, const Tensor& index) {
  const RowPair pair{static_cast<char*>(dst.data), static_cast<const char*>(src.data)};
  run_row_copy(ctx, "gather_rows", &pair, 1, index, src.shape[0],
               src.shape[1] * static_cast<int64_t>(dtype_size(src.dtype)), /*scatter=*/false);
}

}  // namespace smol::SMOL_GPU_NS
