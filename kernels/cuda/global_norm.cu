// sum_of_squares: Σ x² over a list of F32/BF16 tensors — the global grad norm² for clipping.
// Deterministic and atomic-free (llm.c global_norm.cuh, two stages):
//  1. one launch for all tensors: grid (kBlocksPerTensor, tensors); block (b, i) sums the
//     squares of tensor i's elements b·256 + k·(256·kBlocksPerTensor) + thread in fp32 (each
//     thread a strided subsequence), reduces its block in a fixed tree, and writes
//     partial[i·kBlocksPerTensor + b];
//  2. one block adds every partial in double, in a fixed per-thread order and a fixed tree.
// The result depends only on the shapes, never on timing. Tensor descriptors travel to the
// device in scratch memory, so any number of tensors costs two launches. sum_of_squares_into
// leaves the double on the device (the optimizer's clip reads it there: no host wait inside a
// step, docs/design.md §2, §4); sum_of_squares downloads it.
#include <vector>

#include "kernels/cuda/cuda_ops.h"

namespace smol::SMOL_GPU_NS {
namespace {

constexpr int kThreads = 256;
constexpr int kBlocksPerTensor = 32;

struct SquaresSlot {
  const void* data;
  int64_t n;
  int is_bf16;
};

template <typename T>
__device__ __forceinline__ float strided_squares(const T* x, int64_t n) {
  float acc = 0.0f;
  for (int64_t e = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; e < n;
       e += int64_t{kBlocksPerTensor} * blockDim.x) {
    const float v = to_float(x[e]);
    acc += v * v;
  }
  return acc;
}

__global__ void squares_partial_kernel(float* partial /* [tensors, kBlocksPerTensor] */,
                                       const SquaresSlot* slots /* [tensors] */) {
  __shared__ float scratch[32];
  const SquaresSlot slot = slots[blockIdx.y];
  const float acc = slot.is_bf16 ? strided_squares(static_cast<const bf16*>(slot.data), slot.n)
                                 : strided_squares(static_cast<const float*>(slot.data), slot.n);
  const float total = block_sum(acc, scratch);
  if (threadIdx.x == 0) partial[blockIdx.y * kBlocksPerTensor + blockIdx.x] = total;
}

__global__ void squares_final_kernel(double* result /* [1] */, const float* partial /* [n] */,
                                     int64_t n) {
  __shared__ double scratch[32];
  double acc = 0.0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) acc += partial[i];
  const double total = block_sum(acc, scratch);
  if (threadIdx.x == 0) *result = total;
}

// Σ x² into the double at `result` (device memory), stream-ordered.
void squares_into(GpuContext& ctx, double* result, std::span<const Tensor> tensors) {
  std::vector<SquaresSlot> slots;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    if (t.numel() > 0) slots.push_back({t.data, t.numel(), t.dtype == DType::BF16 ? 1 : 0});
  }
  SMOL_CHECK(slots.size() <= 65535, "sum_of_squares: ", slots.size(),
             " tensors exceed one launch's grid (65535)");
  if (slots.empty()) {  // the final kernel over no partials writes 0.0
    launch(squares_final_kernel, 1, kThreads, 0, ctx.stream(), result,
           static_cast<const float*>(nullptr), int64_t{0});
    return;
  }
  // Scratch layout: [partials float × tensors·kBlocks][slots].
  const size_t partial_count = slots.size() * kBlocksPerTensor;
  const size_t slots_offset = (partial_count * sizeof(float) + 15) / 16 * 16;
  char* scratch =
      static_cast<char*>(ctx.scratch(slots_offset + slots.size() * sizeof(SquaresSlot)));
  auto* partial = reinterpret_cast<float*>(scratch);
  auto* device_slots = reinterpret_cast<SquaresSlot*>(scratch + slots_offset);
  ctx.upload(device_slots, slots.data(), slots.size() * sizeof(SquaresSlot));  // staged, no wait
  launch(squares_partial_kernel, dim3(kBlocksPerTensor, static_cast<unsigned>(slots.size())),
         kThreads, 0, ctx.stream(), partial, static_cast<const SquaresSlot*>(device_slots));
  launch(squares_final_kernel, 1, kThreads, 0, ctx.stream(), result,
         static_cast<const float*>(partial), static_cast<int64_t>(partial_count));
}

}  // namespace

void sum_of_squares_into(GpuContext& ctx, Tensor out, std::span<const Tensor> tensors) {
  squares_into(ctx, out.as<double>(), tensors);
}

double sum_of_squares(GpuContext& ctx, std::span<const Tensor> tensors) {
  bool any = false;
  for (const Tensor& t : tensors) any |= t.numel() > 0;
  if (!any) return 0.0;
  // The result goes to scratch2 (scratch holds the partials and descriptors).
  auto* result = static_cast<double*>(ctx.scratch2(sizeof(double)));
  squares_into(ctx, result, tensors);
  double host_result = 0.0;
  ctx.download(&host_result, result, sizeof(double));  // the one host wait: the caller needs it
  return host_result;
}

}  // namespace smol::SMOL_GPU_NS
