// GpuContext: the per-backend state every cuda op needs — the stream, the cuBLASLt handle and
// its cached plans, the matmul workspace, and a growable scratch area for reduction partials.
// Owned by the CudaBackend object (no globals, unlike llm.c's main_stream / cublaslt_handle).
#pragma once

#include <map>
#include <tuple>
#include <vector>

#include "kernels/cuda/cuda_compat.h"
#include "kernels/tensor.h"

namespace smol::SMOL_GPU_NS {

// Thrown while a graph is being captured (GpuContext::capturing) by the few things only an
// eager run can do — grow a scratch area or the attention-layout area, stage an upload larger
// than the capture staging — before any CUDA call: Backend::run_as_graph then abandons the
// capture and runs the work directly, which grows what was missing (docs/design.md §2.8).
class NeedsEagerRun : public Error {
 public:
  using Error::Error;
};

// A cuBLASLt plan for one (shape, transposes, dtypes) combination: built once, reused forever.
struct MatmulPlan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
};
// M, N, K, ta, tb, in dtype, out dtype, operand alignment in bytes, then the strided batch
// (count, element strides of a, b, c; count 1 and strides 0 when not batched) (matmul.cu)
using MatmulKey = std::tuple<int64_t, int64_t, int64_t, int, int, int, int, int, int64_t, int64_t,
                             int64_t, int64_t>;

class GpuContext {
 public:
  explicit GpuContext(int device = 0);  // makes `device` current, then creates the stream
  ~GpuContext();
  GpuContext(const GpuContext&) = delete;
  GpuContext& operator=(const GpuContext&) = delete;

  cudaStream_t stream() const { return stream_; }
  cublasLtHandle_t cublaslt() const { return cublaslt_; }
  void* workspace() const { return workspace_; }
  size_t workspace_bytes() const { return kWorkspaceBytes; }
  std::map<MatmulKey, MatmulPlan>& matmul_plans() { return plans_; }

  // `bytes` of device scratch, valid until the next scratch() call (ops are stream-ordered,
  // so reuse by the next op is safe). Grows by reallocation, never shrinks.
  void* scratch(size_t bytes);
  // A second, independent scratch region (matmul operand casts while scratch() is in use).
  void* scratch2(size_t bytes);

  // Number of streaming multiprocessors, for sizing persistent grids.
  int sm_count() const { return sm_count_; }
  int device() const { return device_; }

  // Copies `bytes` of host memory into pinned staging and returns the staged copy, for an
  // asynchronous host-to-device copy on stream() that needs no host wait; nullptr when the
  // upload is too large to stage (the caller then copies and waits). The staging area is two
  // pinned halves used in turn: before a half is refilled, the event recorded when it was
  // last left is waited for (its copies ran long ago, in the steady state — a rare host wait,
  // once per kStagingBytes of uploads).
  void* stage_upload(const void* host, size_t bytes);
  // Host → device copy of `bytes`, stream-ordered; staged (no host wait) when small enough,
  // else copied and waited for. The host memory may be reused on return either way.
  void upload(void* device_dst, const void* host, size_t bytes);
  // Device → host copy through pinned memory: one host wait (the stream synchronise).
  void download(void* host, const void* device_src, size_t bytes);

  // Device-side argument checks (token ids and targets inside the vocabulary) cost a host wait
  // per op, so they run only in this debug mode; the host already checks every batch (the
  // model packs and checks it). On by default on cuda-emu (a test device), off on
  // cuda; SMOL_DEVICE_CHECKS=1 or 0 in the environment overrides the default.
  // Never while capturing: each check is a host wait, which a capture cannot hold (the host
  // checked the batch; docs/design.md §2.8).
  bool device_checks() const { return device_checks_ && !capturing_; }
  void set_device_checks(bool on) { device_checks_ = on; }

  // RoPE inverse frequencies theta^(−2i/D), i < D/2, on the device: uploaded once per
  // (theta, D) and kept for the context's lifetime.
  const float* rope_inv_freq(float theta, int64_t head_dim);

  // The device copy of the last attention layout (row maps and spans), keyed by its contents:
  // a batch's layout is uploaded once and reused by every layer, forward and backward.
  // `key` identifies the layout; returns nullptr when the cached one differs (then call
  // store_attention_layout with the new bytes).
  const void* cached_attention_layout(const std::vector<int32_t>& key) const {
    return key == layout_key_ ? layout_device_ : nullptr;
  }
  const void* store_attention_layout(std::vector<int32_t> key, const void* host, size_t bytes);

  // ---- stream capture (docs/design.md §2.8) --------------------------------------------------
  // The capture staging is a ring of kCaptureStagingSlots pinned areas, one per capture in turn:
  // a graph's copy nodes read their slot when the graph runs, so a slot is refilled only after
  // the launch that last read it has run. Before cudaStreamBeginCapture: takes the next slot,
  // waits for its last launch only when that launch has not run yet (cudaEventQuery first: in
  // the steady state of training the host records step k while the device runs step k − 1, and
  // the slot's reader, step k − 2, is long done — no host wait), and grows the slot to what an
  // abandoned capture asked for (pinned allocation: not in a capture).
  void prepare_capture();
  // While true, upload() stages into the capture staging (the graph's copy node reads it at
  // launch), device checks are off, and growing scratch, the layout area or a rope table
  // throws NeedsEagerRun instead of allocating.
  void set_capturing(bool on) { capturing_ = on; }
  bool capturing() const { return capturing_; }
  // After a capture is abandoned: the layout it "stored" was only copied inside the discarded
  // graph, so the cached key is forgotten.
  void abandon_capture();
  // After cudaGraphLaunch: marks the capture staging as read by work now queued.
  void graph_launched();
  // Around the eager run that replaces an abandoned capture: its uploads are counted, and the
  // capture staging is then sized for all of them (twice their bytes), so that a step with many
  // uploads (a training step: each micro-batch's ids, positions, targets and layout, AdamW's
  // tensor table) needs one abandoned capture, not one per upload that did not fit.
  void begin_eager_rerun();
  void end_eager_rerun();

 private:
  static constexpr size_t kWorkspaceBytes = size_t{32} << 20;  // llm.c's cuBLASLt workspace
  static constexpr size_t kStagingBytes = size_t{1} << 20;     // per half; larger uploads wait
  int device_ = 0;
  cudaStream_t stream_ = nullptr;
  void* staging_[2] = {nullptr, nullptr};  // pinned host halves
  cudaEvent_t staging_done_[2] = {nullptr, nullptr};
  bool staging_pending_[2] = {false, false};  // an event was recorded and not yet waited for
  int staging_half_ = 0;
  size_t staging_used_ = 0;
  cublasLtHandle_t cublaslt_ = nullptr;
  void* workspace_ = nullptr;
  void* scratch_ = nullptr;
  size_t scratch_bytes_ = 0;
  void* scratch2_ = nullptr;
  size_t scratch2_bytes_ = 0;
  int sm_count_ = 1;
  std::map<MatmulKey, MatmulPlan> plans_;
  bool device_checks_ = false;
  void* download_staging_ = nullptr;  // pinned, kStagingBytes
  std::map<std::pair<float, int64_t>, float*> rope_tables_;
  std::vector<int32_t> layout_key_;
  void* layout_device_ = nullptr;
  size_t layout_bytes_ = 0;
  bool capturing_ = false;
  // One slot of the capture staging ring (prepare_capture).
  struct CaptureStaging {
    char* data = nullptr;  // pinned; read by the copy nodes of the last graph captured into it
    size_t bytes = 0;
    cudaEvent_t read = nullptr;  // recorded after that graph's launch
    bool pending = false;        // a launched graph may still read the slot
  };
  static constexpr int kCaptureStagingSlots = 2;
  CaptureStaging capture_slots_[kCaptureStagingSlots];
  int capture_slot_ = 0;  // the slot the current (or last) capture fills
  size_t capture_staging_used_ = 0, capture_staging_wanted_ = 0;
  bool counting_uploads_ = false;  // begin_eager_rerun .. end_eager_rerun
  size_t counted_upload_bytes_ = 0;
};

// Calls f(tag) with tag a float or bf16 value matching dtype; other dtypes are an Error.
template <typename F>
void dispatch_float(DType dtype, const char* what, F&& f) {
  if (dtype == DType::F32) return f(float{});
  if (dtype == DType::BF16) return f(bf16{});
  throw_error(what, ": dtype ", dtype_name(dtype), " is not F32 or BF16");
}

}  // namespace smol::SMOL_GPU_NS
