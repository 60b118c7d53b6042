// CudaBackend: the Backend interface over the cuda ops (one file per op, cuda_ops.h). This file
// holds memory management, the GpuContext (stream, cuBLASLt handle, plans, scratch) and the
// shared argument checks. The same source builds the real backend (nvcc, make_cuda_backend) and
// the cuda-emu one (g++, make_cuda_emu_backend).
//
// Every op is stream-ordered on the context's one stream; download() and sum_of_squares()
// synchronise because they hand results to the host.
#include "kernels/cuda/cuda_ops.h"
#if defined(SMOL_CUDA_EMU)
#include "kernels/emu/emu_backend.h"
#else
#include "kernels/cuda/cuda_backend.h"
#endif

namespace smol::SMOL_GPU_NS {

GpuContext::GpuContext() {
  int device = 0;
  cuda_check(cudaGetDevice(&device), "cudaGetDevice");
  cudaDeviceProp prop;
  cuda_check(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
  sm_count_ = prop.multiProcessorCount;
  cuda_check(cudaStreamCreate(&stream_), "cudaStreamCreate");
  cublas_check(cublasLtCreate(&cublaslt_), "cublasLtCreate");
  cuda_check(cudaMalloc(&workspace_, kWorkspaceBytes), "cudaMalloc(cuBLASLt workspace)");
}

GpuContext::~GpuContext() {
  // Destructors must not throw: errors while tearing down are ignored.
  cudaStreamSynchronize(stream_);
  destroy_matmul_plans(*this);
  cudaFree(scratch_);
  cudaFree(scratch2_);
  cudaFree(workspace_);
  cublasLtDestroy(cublaslt_);
  cudaStreamDestroy(stream_);
}

namespace {
void* grow(void*& area, size_t& area_bytes, size_t bytes, cudaStream_t stream) {
  if (bytes <= area_bytes) return area;
  // The old area may still be read by queued kernels: wait before freeing it.
  cuda_check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
  cuda_check(cudaFree(area), "cudaFree(scratch)");
  area = nullptr;
  area_bytes = 0;
  const size_t rounded = (bytes + 4095) / 4096 * 4096;
  cuda_check(cudaMalloc(&area, rounded), "cudaMalloc(scratch)");
  area_bytes = rounded;
  return area;
}
}  // namespace

void* GpuContext::scratch(size_t bytes) {
  return grow(scratch_, scratch_bytes_, bytes, stream_);
}
void* GpuContext::scratch2(size_t bytes) {
  return grow(scratch2_, scratch2_bytes_, bytes, stream_);
}

void check_same_shape(const char* op, const char* name_a, const Tensor& a, const char* name_b,
                      const Tensor& b) {
  SMOL_CHECK(a.shape == b.shape, op, ": ", name_a, " ", a.shape.str(), " and ", name_b, " ",
             b.shape.str(), " must have the same shape");
}
void check_dtype(const char* op, const char* name, const Tensor& t, DType dtype) {
  SMOL_CHECK(t.dtype == dtype, op, ": ", name, " must be ", dtype_name(dtype), ", got ",
             dtype_name(t.dtype));
}

namespace {

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(std::string name) : name_(std::move(name)) {}
  std::string name() const override { return name_; }
  DType activation_dtype() const override { return DType::BF16; }

  Buffer allocate(size_t bytes) override {
    if (bytes == 0) return Buffer(this, nullptr, 0);
    void* data = nullptr;
    const cudaError_t status = cudaMalloc(&data, bytes);
    SMOL_CHECK(status == cudaSuccess, name_, ": out of device memory allocating ", bytes,
               " bytes (", cudaGetErrorString(status), ")");
    cuda_check(cudaMemsetAsync(data, 0, bytes, ctx_.stream()), "cudaMemsetAsync");
    return Buffer(this, data, bytes);
  }
  void release(void* data) override {
    // Queued kernels may still use the memory; cudaFree synchronises the device anyway.
    cudaFree(data);
  }
  void upload(Tensor dst, const void* host) override {
    SMOL_CHECK(host != nullptr || dst.numel() == 0, "upload: null host pointer for ",
               dst.shape.str());
    if (dst.bytes() == 0) return;
    cuda_check(cudaMemcpyAsync(dst.data, host, dst.bytes(), cudaMemcpyHostToDevice, ctx_.stream()),
               "upload");
    cuda_check(cudaStreamSynchronize(ctx_.stream()), "upload");  // host buffer may be reused
  }
  void download(void* host, const Tensor& src) override {
    SMOL_CHECK(host != nullptr || src.numel() == 0, "download: null host pointer for ",
               src.shape.str());
    if (src.bytes() == 0) return;
    cuda_check(cudaMemcpyAsync(host, src.data, src.bytes(), cudaMemcpyDeviceToHost, ctx_.stream()),
               "download");
    cuda_check(cudaStreamSynchronize(ctx_.stream()), "download");
  }
  void synchronize() override { cuda_check(cudaStreamSynchronize(ctx_.stream()), "synchronize"); }
  void fill_zero(Tensor t) override {
    if (t.bytes() > 0)
      cuda_check(cudaMemsetAsync(t.data, 0, t.bytes(), ctx_.stream()), "fill_zero");
  }
  void copy(Tensor dst, const Tensor& src) override { copy_cast(ctx_, dst, src); }

  void matmul(Tensor c, const Tensor& a, const Tensor& b, Transpose ta, Transpose tb, float alpha,
              float beta) override {
    SMOL_GPU_NS::matmul(ctx_, c, a, b, ta, tb, alpha, beta);
  }
  void axpy(Tensor y, const Tensor& x, float alpha) override {
    SMOL_GPU_NS::axpy(ctx_, y, x, alpha);
  }
  void scale(Tensor x, float alpha) override { SMOL_GPU_NS::scale(ctx_, x, alpha); }

  void embedding_forward(Tensor out, const Tensor& ids, const Tensor& table) override {
    SMOL_GPU_NS::embedding_forward(ctx_, out, ids, table);
  }
  void embedding_backward(Tensor dtable, const Tensor& dout, const Tensor& ids) override {
    SMOL_GPU_NS::embedding_backward(ctx_, dtable, dout, ids);
  }
  void rmsnorm_forward(Tensor out, Tensor rstd, const Tensor& x, const Tensor& weight,
                       float eps) override {
    SMOL_GPU_NS::rmsnorm_forward(ctx_, out, rstd, x, weight, eps);
  }
  void add_rmsnorm_forward(Tensor sum, Tensor out, Tensor rstd, const Tensor& a, const Tensor& b,
                           const Tensor& weight, float eps) override {
    SMOL_GPU_NS::add_rmsnorm_forward(ctx_, sum, out, rstd, a, b, weight, eps);
  }
  void rmsnorm_backward(Tensor dx, Tensor dweight, const Tensor& dout, const Tensor& x,
                        const Tensor& weight, const Tensor& rstd) override {
    SMOL_GPU_NS::rmsnorm_backward(ctx_, dx, dweight, dout, x, weight, rstd);
  }
  void rope_forward(Tensor x, const Tensor& positions, float theta) override {
    SMOL_GPU_NS::rope(ctx_, x, positions, theta, /*inverse=*/false);
  }
  void rope_backward(Tensor dx, const Tensor& positions, float theta) override {
    SMOL_GPU_NS::rope(ctx_, dx, positions, theta, /*inverse=*/true);
  }
  void attention_forward(Tensor out, Tensor lse, const Tensor& q, const Tensor& k, const Tensor& v,
                         const AttentionLayout& layout, float scale) override {
    SMOL_GPU_NS::attention_forward(ctx_, out, lse, q, k, v, layout, scale);
  }
  void attention_backward(Tensor dq, Tensor dk, Tensor dv, const Tensor& dout, const Tensor& q,
                          const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                          const AttentionLayout& layout, float scale) override {
    SMOL_GPU_NS::attention_backward(ctx_, dq, dk, dv, dout, q, k, v, out, lse, layout, scale);
  }
  void swiglu_forward(Tensor out, const Tensor& gate, const Tensor& up) override {
    SMOL_GPU_NS::swiglu_forward(ctx_, out, gate, up);
  }
  void swiglu_backward(Tensor dgate, Tensor dup, const Tensor& dout, const Tensor& gate,
                       const Tensor& up) override {
    SMOL_GPU_NS::swiglu_backward(ctx_, dgate, dup, dout, gate, up);
  }
  void cross_entropy(Tensor losses, Tensor* dlogits, const Tensor& logits, const Tensor& targets,
                     float dloss_scale) override {
    SMOL_GPU_NS::cross_entropy(ctx_, losses, dlogits, logits, targets, dloss_scale);
  }
  void argmax(Tensor out, const Tensor& x) override { SMOL_GPU_NS::argmax(ctx_, out, x); }
  void dropout(Tensor out, const Tensor& in, float p, uint64_t seed) override {
    SMOL_GPU_NS::dropout(ctx_, out, in, p, seed);
  }
  double sum_of_squares(std::span<const Tensor> tensors) override {
    return SMOL_GPU_NS::sum_of_squares(ctx_, tensors);
  }
  void adamw_step(std::span<AdamWTensor> tensors, const AdamWHyper& hyper) override {
    SMOL_GPU_NS::adamw_step(ctx_, tensors, hyper);
  }

 private:
  std::string name_;
  GpuContext ctx_;
};

}  // namespace
}  // namespace smol::SMOL_GPU_NS

namespace smol {

#if defined(SMOL_CUDA_EMU)
std::unique_ptr<Backend> make_cuda_emu_backend() {
  return std::make_unique<gpu_emu::CudaBackend>("cuda-emu");
}
#else
bool cuda_device_available() {
  int count = 0;
  // Without a driver (libcuda absent) the static runtime reports an error: no device.
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error
    return false;
  }
  return count > 0;
}
std::unique_ptr<Backend> make_cuda_backend() {
  SMOL_CHECK(cuda_device_available(),
             "device 'cuda': no CUDA GPU or driver is available on this machine");
  return std::make_unique<gpu::CudaBackend>("cuda");
}
#endif

}  // namespace smol
