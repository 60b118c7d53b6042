// CudaBackend: the Backend interface over the cuda ops (one file per op, cuda_ops.h). This file
// holds memory management, the GpuContext (stream, cuBLASLt handle, plans, scratch) and the
// shared argument checks. The same source builds the real backend (nvcc, make_cuda_backend) and
// the cuda-emu one (g++, make_cuda_emu_backend).
//
// Every op is stream-ordered on the context's one stream; download() and sum_of_squares()
// synchronise because they hand results to the host. Small uploads are staged in pinned host
// memory and copied asynchronously (no host wait); argument contracts are checked once, in
// Backend's public ops (kernels/backend_ops.cpp).
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

#include "kernels/cuda/cuda_ops.h"
#include "kernels/linalg_backend.h"
#include "kernels/out_of_memory_message.h"
#if defined(SMOL_CUDA_EMU)
#include "kernels/emu/emu_backend.h"
#else
#include "kernels/cuda/cuda_backend.h"
#endif

namespace smol::SMOL_GPU_NS {

namespace {
// cudaMalloc that fails with the requested and free bytes and the config keys to turn
// (kernels/out_of_memory_message.h) instead of a bare "out of memory".
void device_malloc(void** data, size_t bytes, const char* what) {
  const cudaError_t status = cudaMalloc(data, bytes);
  if (status == cudaSuccess) return;
  (void)cudaGetLastError();  // clear the allocation error before asking again
  int device = 0;
  cudaGetDevice(&device);
  size_t free_bytes = 0, total_bytes = 0;
  cudaMemGetInfo(&free_bytes, &total_bytes);
  throw Error(out_of_memory_message("cuda:" + std::to_string(device), what, bytes, free_bytes,
                                    total_bytes, cudaGetErrorString(status)));
}
}  // namespace

GpuContext::GpuContext(int device) : device_(device) {
  cuda_check(cudaSetDevice(device), "cudaSetDevice");
  cudaDeviceProp prop;
  cuda_check(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
  sm_count_ = prop.multiProcessorCount;
  cuda_check(cudaStreamCreate(&stream_), "cudaStreamCreate");
  cublas_check(cublasLtCreate(&cublaslt_), "cublasLtCreate");
  device_malloc(&workspace_, kWorkspaceBytes, "the cuBLASLt workspace");
  for (int h = 0; h < 2; ++h) {
    cuda_check(cudaMallocHost(&staging_[h], kStagingBytes), "cudaMallocHost(upload staging)");
    cuda_check(cudaEventCreate(&staging_done_[h]), "cudaEventCreate(upload staging)");
  }
  cuda_check(cudaMallocHost(&download_staging_, kStagingBytes), "cudaMallocHost(download)");
  for (CaptureStaging& slot : capture_slots_)
    cuda_check(cudaEventCreate(&slot.read), "cudaEventCreate(capture staging)");
#if defined(SMOL_CUDA_EMU)
  device_checks_ = true;
#endif
  if (const char* env = std::getenv("SMOL_DEVICE_CHECKS"); env && *env)
    device_checks_ = std::string(env) != "0";
}

void GpuContext::upload(void* device_dst, const void* host, size_t bytes) {
  if (bytes == 0) return;
  if (capturing_) {
    // The graph's copy node reads the staged bytes at launch: the slot stays untouched until
    // prepare_capture takes it again (after that launch has run).
    const size_t rounded = (bytes + 255) / 256 * 256;
    CaptureStaging& slot = capture_slots_[capture_slot_];
    if (capture_staging_used_ + rounded > slot.bytes) {
      capture_staging_wanted_ =
          std::max(capture_staging_wanted_, 2 * (capture_staging_used_ + rounded));
      throw NeedsEagerRun("upload of " + std::to_string(bytes) +
                          " bytes does not fit the capture staging");
    }
    char* staged = slot.data + capture_staging_used_;
    std::memcpy(staged, host, bytes);
    capture_staging_used_ += rounded;
    cuda_check(cudaMemcpyAsync(device_dst, staged, bytes, cudaMemcpyHostToDevice, stream_),
               "upload (captured)");
    return;
  }
  if (counting_uploads_) counted_upload_bytes_ += (bytes + 255) / 256 * 256;
  if (const void* staged = stage_upload(host, bytes)) {
    cuda_check(cudaMemcpyAsync(device_dst, staged, bytes, cudaMemcpyHostToDevice, stream_),
               "upload");
    return;
  }
  cuda_check(cudaMemcpyAsync(device_dst, host, bytes, cudaMemcpyHostToDevice, stream_), "upload");
  cuda_check(cudaStreamSynchronize(stream_), "upload");  // the host buffer may be reused
}

void GpuContext::download(void* host, const void* device_src, size_t bytes) {
  if (bytes == 0) return;
  if (bytes > kStagingBytes) {
    cuda_check(cudaMemcpyAsync(host, device_src, bytes, cudaMemcpyDeviceToHost, stream_),
               "download");
    cuda_check(cudaStreamSynchronize(stream_), "download");
    return;
  }
  cuda_check(cudaMemcpyAsync(download_staging_, device_src, bytes, cudaMemcpyDeviceToHost, stream_),
             "download");
  cuda_check(cudaStreamSynchronize(stream_), "download");
  std::memcpy(host, download_staging_, bytes);
}

const float* GpuContext::rope_inv_freq(float theta, int64_t head_dim) {
  auto it = rope_tables_.find({theta, head_dim});
  if (it != rope_tables_.end()) return it->second;
  if (capturing_) throw NeedsEagerRun("a new RoPE table needs an allocation");
  const int64_t half = head_dim / 2;
  std::vector<float> inv_freq(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i)
    inv_freq[i] = 1.0f / std::pow(theta, static_cast<float>(2 * i) / static_cast<float>(head_dim));
  float* table = nullptr;
  cuda_check(
      cudaMalloc(reinterpret_cast<void**>(&table), sizeof(float) * std::max<int64_t>(half, 1)),
      "cudaMalloc(rope table)");
  upload(table, inv_freq.data(), sizeof(float) * half);
  rope_tables_[{theta, head_dim}] = table;
  return table;
}

const void* GpuContext::store_attention_layout(std::vector<int32_t> key, const void* host,
                                               size_t bytes) {
  if (bytes > layout_bytes_) {
    if (capturing_) throw NeedsEagerRun("the attention-layout area must grow");
    // Queued kernels may still read the old copy: cudaFree waits for the device (rare: the
    // area only grows, by a quarter at least, since a decode step's layout grows a little
    // each step).
    cuda_check(cudaFree(layout_device_), "cudaFree(attention layout)");
    layout_device_ = nullptr;
    const size_t rounded =
        (std::max(bytes, layout_bytes_ + layout_bytes_ / 4) + 4095) / 4096 * 4096;
    layout_bytes_ = 0;
    device_malloc(&layout_device_, rounded, "the attention layout");
    layout_bytes_ = rounded;
  }
  // Stream-ordered: kernels queued before this copy still see the previous layout.
  upload(layout_device_, host, bytes);
  layout_key_ = std::move(key);
  return layout_device_;
}

void* GpuContext::stage_upload(const void* host, size_t bytes) {
  if (bytes > kStagingBytes) return nullptr;
  if (staging_used_ + bytes > kStagingBytes) {
    // Leave this half (its copies are queued before the event) and take the other one.
    cuda_check(cudaEventRecord(staging_done_[staging_half_], stream_), "cudaEventRecord");
    staging_pending_[staging_half_] = true;
    staging_half_ ^= 1;
    staging_used_ = 0;
    if (staging_pending_[staging_half_]) {
      cuda_check(cudaEventSynchronize(staging_done_[staging_half_]), "cudaEventSynchronize");
      staging_pending_[staging_half_] = false;
    }
  }
  char* staged = static_cast<char*>(staging_[staging_half_]) + staging_used_;
  std::memcpy(staged, host, bytes);
  staging_used_ += (bytes + 255) / 256 * 256;  // keep each staged copy 256-byte aligned
  return staged;
}

void GpuContext::prepare_capture() {
  capture_slot_ = (capture_slot_ + 1) % kCaptureStagingSlots;
  CaptureStaging& slot = capture_slots_[capture_slot_];
  if (slot.pending) {
    // The launch that last read this slot ran long ago in the steady state (two captures back):
    // ask first, and wait only when it has not (docs/design.md §2.8 "staging ring").
    const cudaError_t state = cudaEventQuery(slot.read);
    if (state == cudaErrorNotReady) {
      (void)cudaGetLastError();  // not an error: the launch is still queued
      cuda_check(cudaEventSynchronize(slot.read), "cudaEventSynchronize(capture staging)");
    } else {
      cuda_check(state, "cudaEventQuery(capture staging)");
    }
    slot.pending = false;
  }
  capture_staging_used_ = 0;
  if (capture_staging_wanted_ > slot.bytes) {
    if (slot.data) cuda_check(cudaFreeHost(slot.data), "cudaFreeHost(capture staging)");
    slot.data = nullptr;
    slot.bytes = 0;
    void* staging = nullptr;
    cuda_check(cudaMallocHost(&staging, capture_staging_wanted_),
               "cudaMallocHost(capture staging)");
    slot.data = static_cast<char*>(staging);
    slot.bytes = capture_staging_wanted_;
  }
}

void GpuContext::abandon_capture() {
  capturing_ = false;
  layout_key_.clear();
}

void GpuContext::graph_launched() {
  if (capture_staging_used_ == 0) return;
  CaptureStaging& slot = capture_slots_[capture_slot_];
  cuda_check(cudaEventRecord(slot.read, stream_), "cudaEventRecord(capture staging)");
  slot.pending = true;
}

void GpuContext::begin_eager_rerun() {
  counting_uploads_ = true;
  counted_upload_bytes_ = 0;
}

void GpuContext::end_eager_rerun() {
  counting_uploads_ = false;
  capture_staging_wanted_ = std::max(capture_staging_wanted_, 2 * counted_upload_bytes_);
}

GpuContext::~GpuContext() {
  // Destructors must not throw: errors while tearing down are ignored.
  cudaStreamSynchronize(stream_);
  for (CaptureStaging& slot : capture_slots_) {
    cudaEventDestroy(slot.read);
    cudaFreeHost(slot.data);
  }
  destroy_matmul_plans(*this);
  cudaFree(scratch_);
  cudaFree(scratch2_);
  cudaFree(workspace_);
  cublasLtDestroy(cublaslt_);
  for (int h = 0; h < 2; ++h) {
    cudaEventDestroy(staging_done_[h]);
    cudaFreeHost(staging_[h]);
  }
  cudaFreeHost(download_staging_);
  for (auto& [key, table] : rope_tables_) cudaFree(table);
  cudaFree(layout_device_);
  cudaStreamDestroy(stream_);
}

namespace {
void* grow(void*& area, size_t& area_bytes, size_t bytes, cudaStream_t stream, bool capturing) {
  if (bytes <= area_bytes) return area;
  if (capturing) throw NeedsEagerRun("a scratch area must grow");
  // The old area may still be read by queued kernels: wait before freeing it.
  cuda_check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
  cuda_check(cudaFree(area), "cudaFree(scratch)");
  area = nullptr;
  // By a quarter at least: a decode step's split-K partials grow a little every 128 keys.
  const size_t rounded = (std::max(bytes, area_bytes + area_bytes / 4) + 4095) / 4096 * 4096;
  area_bytes = 0;
  device_malloc(&area, rounded, "scratch space");
  area_bytes = rounded;
  return area;
}
}  // namespace

void* GpuContext::scratch(size_t bytes) {
  return grow(scratch_, scratch_bytes_, bytes, stream_, capturing_);
}
void* GpuContext::scratch2(size_t bytes) {
  return grow(scratch2_, scratch2_bytes_, bytes, stream_, capturing_);
}

namespace {

// An instantiated graph of one piece of work (Backend::run_as_graph), kept between runs so
// that the next recording updates it in place.
// A few instantiations are kept, most recently used first: decoding alternates between a
// handful of topologies (one-token steps; a step that admits a long prompt, whose attention takes
// the tiled kernel; decode after decode_greedy), and each comes back to its own instantiation.
class CudaGraph final : public Backend::Graph {
 public:
  static constexpr size_t kMaxExecs = 4;
  ~CudaGraph() override {
    for (cudaGraphExec_t exec : execs)
      cudaGraphExecDestroy(exec);  // an in-flight launch completes on its own
  }
  std::vector<cudaGraphExec_t> execs;
};

// SMOL_CUDA_GRAPHS=0 runs every op eagerly (the A/B switch of scripts/gpu-check.sh); default on.
bool graphs_from_environment() {
  const char* env = std::getenv("SMOL_CUDA_GRAPHS");
  return !(env && *env && std::string(env) == "0");
}

class CudaBackend final : public Backend {
 public:
  CudaBackend(std::string name, int device)
      : name_(std::move(name)), ctx_(device), graphs_(graphs_from_environment()) {}
  bool graphs_enabled() const override { return graphs_; }
  void set_graphs_enabled(bool on) override { graphs_ = on; }
  std::string name() const override { return name_; }
  DType activation_dtype() const override { return DType::BF16; }
  // 1024 bf16 rows of logits (100 MB at SmolLM2's vocabulary): at 8 × 1024 tokens the LM head
  // re-reads its weight 8 times instead of 32. Full fine-tuning, whose chunks also read and
  // write the fp32 dweight (113 MB), takes 4096 rows (403 MB of scratch): 2 passes instead of 8,
  // 0.45 GB of dweight traffic instead of 1.8 (docs/design.md §2.6).
  int64_t lm_head_chunk_rows(bool weight_trains) const override {
    return weight_trains ? 4096 : 1024;
  }
  int device_ordinal() const override { return ctx_.device(); }
  void* stream_handle() override { return ctx_.stream(); }
  void* record_event() override {
    cudaEvent_t event = nullptr;
    cuda_check(cudaEventCreate(&event), "cudaEventCreate");
    cuda_check(cudaEventRecord(event, ctx_.stream()), "cudaEventRecord");
    return event;
  }
  void wait_event(void* event) override {
    cuda_check(cudaStreamWaitEvent(ctx_.stream(), static_cast<cudaEvent_t>(event), 0),
               "cudaStreamWaitEvent");
  }
  void destroy_event(void* event) override {
    if (event) cudaEventDestroy(static_cast<cudaEvent_t>(event));
  }
  // cudaEventCreate's default flags keep timing on (record_event's events time too; these are
  // a separate call so that a backend may one day make plain events cheaper).
  void* record_timing_event(void* reuse) override {
    cudaEvent_t event = static_cast<cudaEvent_t>(reuse);
    if (!event) cuda_check(cudaEventCreate(&event), "cudaEventCreate(timing)");
    cuda_check(cudaEventRecord(event, ctx_.stream()), "cudaEventRecord(timing)");
    return event;
  }
  double elapsed_ms(void* start, void* end) override {
    SMOL_CHECK(start && end, "elapsed_ms: null timing event");
    float ms = 0;
    const cudaError_t state =
        cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(start), static_cast<cudaEvent_t>(end));
    SMOL_CHECK(state != cudaErrorNotReady,
               "elapsed_ms: an event has not completed (synchronize() after the last one)");
    cuda_check(state, "cudaEventElapsedTime");
    return ms;
  }
  void set_device_checks(bool on) override { ctx_.set_device_checks(on); }
  GpuContext& context() { return ctx_; }

 protected:
  Buffer do_allocate(size_t bytes) override {
    if (bytes == 0) return Buffer(this, nullptr, 0);
    void* data = nullptr;
    device_malloc(&data, bytes, "a tensor");
    cuda_check(cudaMemsetAsync(data, 0, bytes, ctx_.stream()), "cudaMemsetAsync");
    return Buffer(this, data, bytes);
  }
  void do_release(void* data) override {
    // Queued kernels may still use the memory; cudaFree synchronises the device anyway.
    cudaFree(data);
  }
  void do_upload(Tensor dst, const void* host) override {
    // Small uploads (a batch's ids, positions, targets) go through pinned staging and return
    // without a host wait; large ones (weights at load) wait.
    ctx_.upload(dst.data, host, dst.bytes());
  }
  void do_download(void* host, const Tensor& src) override {
    ctx_.download(host, src.data, src.bytes());
  }
  void do_synchronize() override {
    cuda_check(cudaStreamSynchronize(ctx_.stream()), "synchronize");
  }
  void do_fill_zero(Tensor t) override {
    cuda_check(cudaMemsetAsync(t.data, 0, t.bytes(), ctx_.stream()), "fill_zero");
  }
  void do_copy(Tensor dst, const Tensor& src) override { copy_cast(ctx_, dst, src); }
  void do_scatter_rows(std::span<const RowScatter> pairs, const Tensor& index) override {
    SMOL_GPU_NS::scatter_rows(ctx_, pairs, index);
  }
  void do_gather_rows(Tensor dst, const Tensor& src, const Tensor& index) override {
    SMOL_GPU_NS::gather_rows(ctx_, dst, src, index);
  }

  // Strategy: record the work every run and update the instantiated graph in place
  // (cudaGraphExecUpdate; a new instantiation only when the topology changed), as llama.cpp
  // does — docs/design.md §2.8 says why, and what a capture-once design would need.
  void do_run_as_graph(std::unique_ptr<Graph>& graph, const std::function<void()>& work) override {
    if (!graphs_ || ctx_.capturing()) {
      work();  // graphs off, or already inside a capture (nested work joins the outer graph)
      return;
    }
    ctx_.prepare_capture();
    cuda_check(cudaStreamBeginCapture(ctx_.stream(), cudaStreamCaptureModeGlobal),
               "cudaStreamBeginCapture");
    ctx_.set_capturing(true);
    try {
      work();
    } catch (const NeedsEagerRun&) {
      discard_capture();
      ++graph_stats_.eager_fallbacks;
      ctx_.begin_eager_rerun();
      try {
        work();
      } catch (...) {
        ctx_.end_eager_rerun();
        throw;
      }
      ctx_.end_eager_rerun();
      return;
    } catch (const Error& e) {
      // Something the capture refused (a host wait, an allocation): CUDA invalidated the capture.
      // Say so, since the same work runs eagerly without complaint.
      cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
      const bool refused = cudaStreamIsCapturing(ctx_.stream(), &status) == cudaSuccess &&
                           status == cudaStreamCaptureStatusInvalidated;
      discard_capture();
      if (refused)
        throw Error(std::string(e.what()) +
                    " (inside a CUDA graph capture; SMOL_CUDA_GRAPHS=0 runs every op eagerly, "
                    "docs/design.md §2.8)");
      throw;
    } catch (...) {
      discard_capture();
      throw;
    }
    ctx_.set_capturing(false);
    cudaGraph_t recorded = nullptr;
    cuda_check(cudaStreamEndCapture(ctx_.stream(), &recorded), "cudaStreamEndCapture");
    auto* cuda_graph = dynamic_cast<CudaGraph*>(graph.get());
    if (!cuda_graph) {
      graph = std::make_unique<CudaGraph>();
      cuda_graph = static_cast<CudaGraph*>(graph.get());
    }
    size_t nodes = 0;
    cuda_check(cudaGraphGetNodes(recorded, nullptr, &nodes), "cudaGraphGetNodes");
    graph_stats_.last_nodes = nodes;
    // The first kept instantiation of the same topology takes the recording's parameters; a
    // failed update leaves an instantiation as it was (it still serves its own topology).
    std::vector<cudaGraphExec_t>& execs = cuda_graph->execs;
    auto match = execs.end();
    for (auto it = execs.begin(); it != execs.end() && match == execs.end(); ++it) {
      cudaGraphExecUpdateResultInfo info{};
      if (cudaGraphExecUpdate(*it, recorded, &info) == cudaSuccess)
        match = it;
      else
        (void)cudaGetLastError();  // a failed update's error is not sticky; clear it anyway
    }
    cudaGraphExec_t exec = nullptr;
    if (match != execs.end()) {
      exec = *match;
      execs.erase(match);
      ++graph_stats_.updates;
    } else {
      const cudaError_t instantiated = cudaGraphInstantiate(&exec, recorded, 0);
      if (instantiated != cudaSuccess) cudaGraphDestroy(recorded);
      cuda_check(instantiated, "cudaGraphInstantiate");
      ++graph_stats_.instantiations;
      if (execs.size() + 1 > CudaGraph::kMaxExecs) {
        cudaGraphExecDestroy(execs.back());
        execs.pop_back();
      }
    }
    execs.insert(execs.begin(), exec);
    cudaGraphDestroy(recorded);
    cuda_check(cudaGraphLaunch(exec, ctx_.stream()), "cudaGraphLaunch");
    ctx_.graph_launched();
    ++graph_stats_.launches;
  }

  void do_matmul(Tensor c, const Tensor& a, const Tensor& b, Transpose ta, Transpose tb,
                 float alpha, float beta) override {
    SMOL_GPU_NS::matmul(ctx_, c, a, b, ta, tb, alpha, beta);
  }
  void do_matmul_addend(Tensor c, const Tensor& a, const Tensor& b, Transpose ta, Transpose tb,
                        float alpha, float beta, const Tensor& addend) override {
    SMOL_GPU_NS::matmul(ctx_, c, a, b, ta, tb, alpha, beta, &addend);
  }
  void do_matmul_batched(std::span<const Tensor> cs, std::span<const Tensor> as,
                         std::span<const Tensor> bs, Transpose ta, Transpose tb, float alpha,
                         float beta) override {
    SMOL_GPU_NS::matmul_batched(ctx_, cs, as, bs, ta, tb, alpha, beta);
  }
  void do_axpy(Tensor y, const Tensor& x, float alpha) override {
    SMOL_GPU_NS::axpy(ctx_, y, x, alpha);
  }
  void do_scale(Tensor x, float alpha) override { SMOL_GPU_NS::scale(ctx_, x, alpha); }

  void do_embedding_forward(Tensor out, const Tensor& ids, const Tensor& table) override {
    SMOL_GPU_NS::embedding_forward(ctx_, out, ids, table);
  }
  void do_embedding_backward(Tensor dtable, const Tensor& dout, const Tensor& ids) override {
    SMOL_GPU_NS::embedding_backward(ctx_, dtable, dout, ids);
  }
  void do_rmsnorm_forward(Tensor out, Tensor rstd, const Tensor& x, const Tensor& weight,
                          float eps) override {
    SMOL_GPU_NS::rmsnorm_forward(ctx_, out, rstd, x, weight, eps);
  }
  void do_add_rmsnorm_forward(Tensor sum, Tensor out, Tensor rstd, const Tensor& a, const Tensor& b,
                              const Tensor& weight, float eps) override {
    SMOL_GPU_NS::add_rmsnorm_forward(ctx_, sum, out, rstd, a, b, weight, eps);
  }
  void do_rmsnorm_backward(Tensor dx, Tensor dweight, const Tensor& dout, const Tensor& x,
                           const Tensor& weight, const Tensor& rstd) override {
    SMOL_GPU_NS::rmsnorm_backward(ctx_, dx, dweight, dout, x, weight, rstd);
  }
  void do_rope_forward(Tensor x, const Tensor& positions, float theta) override {
    SMOL_GPU_NS::rope(ctx_, x, positions, theta, /*inverse=*/false);
  }
  void do_rope_backward(Tensor dx, const Tensor& positions, float theta) override {
    SMOL_GPU_NS::rope(ctx_, dx, positions, theta, /*inverse=*/true);
  }
  void do_rope_qk(Tensor q, Tensor k, const Tensor& positions, float theta,
                  bool backward) override {
    SMOL_GPU_NS::rope_qk(ctx_, q, k, positions, theta, /*inverse=*/backward);
  }
  void do_attention_forward(Tensor out, Tensor lse, const Tensor& q, const Tensor& k,
                            const Tensor& v, const AttentionLayout& layout, float scale) override {
    SMOL_GPU_NS::attention_forward(ctx_, out, lse, q, k, v, layout, scale);
  }
  void do_attention_backward(Tensor dq, Tensor dk, Tensor dv, const Tensor& dout, const Tensor& q,
                             const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                             const AttentionLayout& layout, float scale) override {
    SMOL_GPU_NS::attention_backward(ctx_, dq, dk, dv, dout, q, k, v, out, lse, layout, scale);
  }
  // Fused RoPE (docs/design.md §2.7): the flash backward rotates dq, dk before its store; other
  // tensors (F32, odd head dims) take the default composition.
  void do_attention_rope_backward(Tensor dq, Tensor dk, Tensor dv, const Tensor& dout,
                                  const Tensor& q, const Tensor& k, const Tensor& v,
                                  const Tensor& out, const Tensor& lse,
                                  const AttentionLayout& layout, float scale,
                                  const Rotary& rotary) override {
    if (!SMOL_GPU_NS::attention_rope_backward(ctx_, dq, dk, dv, dout, q, k, v, out, lse, layout,
                                              scale, rotary))
      Backend::do_attention_rope_backward(dq, dk, dv, dout, q, k, v, out, lse, layout, scale,
                                          rotary);
  }
  void do_rope_append_kv(Tensor q, Tensor k, const Tensor& v, Tensor k_cache, Tensor v_cache,
                         const Tensor& index, const Rotary& rotary) override {
    SMOL_GPU_NS::rope_append_kv(ctx_, q, k, v, k_cache, v_cache, index, rotary.positions,
                                rotary.theta);
  }
  void do_swiglu_forward(Tensor out, const Tensor& gate, const Tensor& up) override {
    SMOL_GPU_NS::swiglu_forward(ctx_, out, gate, up);
  }
  void do_swiglu_backward(Tensor dgate, Tensor dup, const Tensor& dout, const Tensor& gate,
                          const Tensor& up) override {
    SMOL_GPU_NS::swiglu_backward(ctx_, dgate, dup, dout, gate, up);
  }
  void do_swiglu_backward_concat(Tensor dgate_up, const Tensor& dout, const Tensor& gate,
                                 const Tensor& up) override {
    SMOL_GPU_NS::swiglu_backward_concat(ctx_, dgate_up, dout, gate, up);
  }
  void do_cross_entropy(Tensor losses, Tensor* dlogits, const Tensor& logits, const Tensor& targets,
                        float dloss_scale, Tensor argmax) override {
    SMOL_GPU_NS::cross_entropy(ctx_, losses, dlogits, logits, targets, dloss_scale, argmax);
  }
  void do_argmax(Tensor out, const Tensor& x) override { SMOL_GPU_NS::argmax(ctx_, out, x); }
  void do_sample_tokens(Tensor out, const Tensor& logits, const Tensor& uniforms, float temperature,
                        float top_p) override {
    SMOL_GPU_NS::sample_tokens(ctx_, out, logits, uniforms, temperature, top_p);
  }
  void do_dropout(Tensor out, const Tensor& in, float p, uint64_t seed) override {
    SMOL_GPU_NS::dropout(ctx_, out, in, p, seed);
  }
  // LoRA down-projection with dropout (docs/design.md §2.7): fused kernels when they take the
  // operands (lora_down.cu), else the default composition.
  bool fuses_lora_dropout() const override { return true; }
  void do_lora_down_forward(std::span<const Tensor> uts, const Tensor& x,
                            std::span<const Tensor> as, float p, std::span<const uint64_t> seeds,
                            Tensor scratch) override {
    if (!SMOL_GPU_NS::lora_down_fusable(uts, x, Tensor{}))
      return Backend::do_lora_down_forward(uts, x, as, p, seeds, scratch);
    SMOL_GPU_NS::lora_down_forward(ctx_, uts, x, as, p, seeds);
  }
  void do_lora_down_backward(std::span<const Tensor> das, Tensor dx, std::span<const Tensor> gts,
                             const Tensor& x, std::span<const Tensor> as, float p,
                             std::span<const uint64_t> seeds, float s, Tensor scratch) override {
    if (!SMOL_GPU_NS::lora_down_fusable(gts, x, dx))
      return Backend::do_lora_down_backward(das, dx, gts, x, as, p, seeds, s, scratch);
    SMOL_GPU_NS::lora_down_backward(ctx_, das, dx, gts, x, as, p, seeds, s);
  }
  // LoRA up-projections (docs/design.md §2.7 "LoRA up-projections fused"): one launch per group
  // and direction when the kernels take the operands (lora_up.cu), else the default matmuls.
  bool fuses_lora_up() const override { return true; }
  void do_lora_up_forward(std::span<const Tensor> ys, std::span<const Tensor> uts,
                          std::span<const Tensor> bs, float s) override {
    if (!SMOL_GPU_NS::lora_up_fusable(ys, uts, {}))
      return Backend::do_lora_up_forward(ys, uts, bs, s);
    SMOL_GPU_NS::lora_up_forward(ctx_, ys, uts, bs, s);
  }
  void do_lora_up_backward(std::span<const Tensor> dbs, std::span<const Tensor> gts,
                           std::span<const Tensor> dys, std::span<const Tensor> uts,
                           std::span<const Tensor> bs, float s) override {
    if (!SMOL_GPU_NS::lora_up_fusable(dys, uts, gts))
      return Backend::do_lora_up_backward(dbs, gts, dys, uts, bs, s);
    SMOL_GPU_NS::lora_up_backward(ctx_, dbs, gts, dys, uts, bs, s);
  }
  double do_sum_of_squares(std::span<const Tensor> tensors) override {
    return SMOL_GPU_NS::sum_of_squares(ctx_, tensors);
  }
  void do_sum_of_squares_into(Tensor out, std::span<const Tensor> tensors) override {
    SMOL_GPU_NS::sum_of_squares_into(ctx_, out, tensors);
  }
  void do_accumulate_sum(Tensor acc, const Tensor& x) override {
    SMOL_GPU_NS::accumulate_sum(ctx_, acc, x);
  }
  void do_adamw_step(std::span<AdamWTensor> tensors, const AdamWHyper& hyper) override {
    SMOL_GPU_NS::adamw_step(ctx_, tensors, hyper);
  }

 private:
  // Ends a capture that will not be launched: whatever it recorded is dropped (nothing of it ran).
  void discard_capture() {
    ctx_.abandon_capture();
    cudaGraph_t dropped = nullptr;
    if (cudaStreamEndCapture(ctx_.stream(), &dropped) == cudaSuccess && dropped)
      cudaGraphDestroy(dropped);
    (void)cudaGetLastError();  // an invalidated capture's error is reported by what caused it
  }

  std::string name_;
  GpuContext ctx_;
  bool graphs_ = true;
};

}  // namespace
}  // namespace smol::SMOL_GPU_NS

namespace smol {

#if defined(SMOL_CUDA_EMU)
std::unique_ptr<Backend> make_cuda_emu_backend() {
  return std::make_unique<gpu_emu::CudaBackend>("cuda-emu", 0);
}
std::unique_ptr<LinalgBackend> make_cuda_emu_linalg(Backend& backend) {
  auto* emu = dynamic_cast<gpu_emu::CudaBackend*>(&backend);
  return emu ? gpu_emu::make_linalg(emu->context()) : nullptr;
}
#else
std::unique_ptr<LinalgBackend> make_cuda_linalg(Backend& backend) {
  auto* cuda = dynamic_cast<gpu::CudaBackend*>(&backend);
  return cuda ? gpu::make_linalg(cuda->context()) : nullptr;
}
bool cuda_device_available() {
  int count = 0;
  // Without a driver (libcuda absent) the static runtime reports an error: no device.
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error
    return false;
  }
  return count > 0;
}
int cuda_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return count;
}
std::unique_ptr<Backend> make_cuda_backend(int device) {
  SMOL_CHECK(cuda_device_available(),
             "device 'cuda': no CUDA GPU or driver is available on this machine");
  const int count = cuda_device_count();
  SMOL_CHECK(device >= 0 && device < count, "device 'cuda:", device, "': this machine has ", count,
             " CUDA device", count == 1 ? "" : "s", " (ordinals 0..", count - 1, ")");
  return std::make_unique<gpu::CudaBackend>(device == 0 ? "cuda" : "cuda:" + std::to_string(device),
                                            device);
}
#endif

}  // namespace smol
