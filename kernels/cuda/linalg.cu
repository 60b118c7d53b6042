// CudaLinalg: the cuda backend's dense linear algebra (kernels/linalg_backend.h) through
// cuSOLVER in fp32 — geqrf + orgqr for the thin QR, gesvdjBatched (r ≤ 32) or gesvdj per matrix
// (r ≤ 64) for the small SVD, gesvdj (econ) for the truncated SVD — plus small kernels that
// move between layouts and enforce the contract's sign rules, and a substitution kernel for the
// triangular solve (its matrices are the r×r LoRA factors: one thread per right-hand side
// column). Under cuda-emu the same code calls kernels/emu/emu_cusolver.cpp (LAPACKE).
//
// Row-major to column-major (as in matmul.cu): a row-major [m, n] buffer read column-major
// with ld = n is the n×m matrix aᵀ.
//  - QR: cuSOLVER has no LQ (gelqf), so a is transposed into a column-major m×n copy (ld m)
//    in the workspace; geqrf leaves R in its upper triangle (copied out to row-major r before
//    orgqr overwrites it with Q), and Q (column-major, ld m) is transposed into row-major q.
//  - SVD: the row-major a buffer read column-major is X = aᵀ, and X = U_x S V_xᵀ gives
//    a = V_x S U_xᵀ: a's left vectors are V_x's columns and a's right vectors U_x's columns.
//    So gesvdj runs on a copy of the buffer as it is (no transposition), and column j of a's u
//    is column j of V_x — contiguous in V_x's column-major storage — while row j of a's vᵀ is
//    column j of U_x, also contiguous: vt [k, n] row-major is U_x's first k columns verbatim.
//    finish_svd writes both, with the sign rule applied.
//  - Triangular solve: done by our own kernel on the row-major data directly.
//
// Sign rules (kernels/linalg_backend.h), after the factorisation: QR — where r_ii < 0, negate
// column i of q and row i of r; SVD — where the largest-|.| entry of column j of u (the first
// from the top on ties) is negative, negate column j of u and row j of vt.
//
// Workspace: one growable device area each for matrices, cuSOLVER's work and dev_info,
// allocated on first use and kept (they grow, by reallocation, only when a larger problem
// comes: a host wait, once per new maximum); cuSOLVER's lwork is queried once per shape and
// cached. Nothing waits for the host except the device checks debug mode
// (Backend::set_device_checks), which downloads dev_info (and the triangular solve's
// singularity flag) after each call and turns failures into Errors naming the matrix.
#include <algorithm>
#include <map>
#include <tuple>
#include <vector>

#if defined(SMOL_CUDA_EMU)
#include "kernels/emu/emu_cusolver.h"
#else
#include <cusolverDn.h>
#endif

#include "kernels/cuda/cuda_ops.h"
#include "kernels/linalg_backend.h"

namespace smol::SMOL_GPU_NS {
namespace {

constexpr int kThreads = 128;
constexpr int kGesvdjBatchedMaxDim = 32;  // cusolverDn<t>gesvdjBatched's limit

void solver_check(cusolverStatus_t status, const char* what) {
  if (status != CUSOLVER_STATUS_SUCCESS)
    throw_error("cuSOLVER: ", what, " failed with status ", static_cast<int>(status));
}

int64_t batch_of(const Tensor& t) {
  return t.shape.rank == 3 ? t.shape[0] : 1;
}

// col[b][j·m + i] = row[b][i·n + j]: batch of row-major [m, n] to column-major m×n (ld m),
// or back with (m, n) swapped.
__global__ void transpose_kernel(float* out, const float* in, int64_t batch, int64_t m, int64_t n) {
  const int64_t total = batch * m * n;
  for (int64_t e = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; e < total;
       e += int64_t{gridDim.x} * blockDim.x) {
    const int64_t b = e / (m * n), within = e % (m * n), i = within / n, j = within % n;
    out[b * m * n + j * m + i] = in[e];
  }
}

// r[b] = the upper triangle of geqrf's output (column-major m×n, ld m), row-major [n, n].
__global__ void extract_r_kernel(float* r, const float* qr, int64_t batch, int64_t m, int64_t n) {
  const int64_t total = batch * n * n;
  for (int64_t e = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; e < total;
       e += int64_t{gridDim.x} * blockDim.x) {
    const int64_t b = e / (n * n), i = (e % (n * n)) / n, j = e % n;
    r[e] = j >= i ? qr[b * m * n + j * m + i] : 0.0f;
  }
}

// One block per matrix: q[b] (row-major [m, n]) = orgqr's Q (column-major, ld m) with column i
// negated where r_ii < 0; then, after every thread has read the diagonal, row i of r negated
// there (and a -0 diagonal made +0).
__global__ void finish_qr_kernel(float* q, float* r, const float* qc, int64_t m, int64_t n) {
  const int64_t b = blockIdx.x;
  float* rb = r + b * n * n;
  const float* qcb = qc + b * m * n;
  float* qb = q + b * m * n;
  for (int64_t e = threadIdx.x; e < m * n; e += blockDim.x) {
    const int64_t i = e / n, j = e % n;
    const float sign = rb[j * n + j] < 0.0f ? -1.0f : 1.0f;
    qb[e] = sign * qcb[j * m + i];
  }
  __syncthreads();
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    if (rb[i * n + i] < 0.0f) {
      for (int64_t j = i; j < n; ++j) rb[i * n + j] = -rb[i * n + j];
    } else if (rb[i * n + i] == 0.0f) {
      rb[i * n + i] = 0.0f;
    }
  }
}

// One block per matrix, one thread per singular pair j < k: column j of u [m, k] row-major is
// column j of left (column-major, ld m, contiguous); row j of vt [k, n] row-major is column j
// of right (column-major, ld n); both times the sign that makes u's largest-|.| entry positive.
__global__ void finish_svd_kernel(float* u, float* vt, const float* left, const float* right,
                                  int64_t m, int64_t k, int64_t n, int64_t left_stride,
                                  int64_t right_stride) {
  const int64_t b = blockIdx.x;
  for (int64_t j = threadIdx.x; j < k; j += blockDim.x) {
    const float* col = left + b * left_stride + j * m;
    int64_t best = 0;
    for (int64_t i = 1; i < m; ++i)
      if (fabsf(col[i]) > fabsf(col[best])) best = i;
    const float sign = col[best] < 0.0f ? -1.0f : 1.0f;
    float* ub = u + b * m * k;
    for (int64_t i = 0; i < m; ++i) ub[i * k + j] = sign * col[i];
    const float* row = right + b * right_stride + j * n;
    float* vb = vt + b * k * n + j * n;
    for (int64_t c = 0; c < n; ++c) vb[c] = sign * row[c];
  }
}

// b[bi] := op(t[bi])⁻¹ b[bi] by substitution, one thread per column of b. op(t)(i, j) reads
// t(i, j), or t(j, i) when transposed; op(t) is lower triangular exactly when upper ==
// transpose, solved forwards, else backwards. Only the stored triangle is read.
__global__ void triangular_solve_kernel(float* b, const float* t, int64_t m, int64_t n, bool upper,
                                        bool transpose) {
  const int64_t col = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  if (col >= n) return;
  const int64_t bi = blockIdx.y;
  const float* tb = t + bi * m * m;
  float* x = b + bi * m * n + col;
  const bool lower = upper == transpose;
  const auto op_t = [&](int64_t i, int64_t j) { return transpose ? tb[j * m + i] : tb[i * m + j]; };
  if (lower) {
    for (int64_t i = 0; i < m; ++i) {
      float sum = x[i * n];
      for (int64_t j = 0; j < i; ++j) sum -= op_t(i, j) * x[j * n];
      x[i * n] = sum / op_t(i, i);
    }
  } else {
    for (int64_t i = m - 1; i >= 0; --i) {
      float sum = x[i * n];
      for (int64_t j = i + 1; j < m; ++j) sum -= op_t(i, j) * x[j * n];
      x[i * n] = sum / op_t(i, i);
    }
  }
}

// flag[0] = 1 + the first batch index whose t has a zero on its diagonal (0: none).
__global__ void find_singular_kernel(int* flag, const float* t, int64_t batch, int64_t m) {
  if (threadIdx.x != 0 || blockIdx.x != 0) return;
  flag[0] = 0;
  for (int64_t bi = 0; bi < batch && flag[0] == 0; ++bi)
    for (int64_t d = 0; d < m; ++d)
      if (t[bi * m * m + d * m + d] == 0.0f) {
        flag[0] = static_cast<int>(bi) + 1;
        break;
      }
}

unsigned grid_for(int64_t total) {
  return std::max(1u, std::min(ceil_div(total, kThreads), 4096u));
}

// A device area that only grows.
class DeviceArea {
 public:
  DeviceArea() = default;
  DeviceArea(const DeviceArea&) = delete;
  DeviceArea& operator=(const DeviceArea&) = delete;
  ~DeviceArea() { cudaFree(data_); }
  void* get(size_t bytes, cudaStream_t stream, const char* what) {
    if (bytes <= bytes_) return data_;
    // Queued work may still use the old area: wait before freeing it (rare: only on growth).
    cuda_check(cudaStreamSynchronize(stream), what);
    cuda_check(cudaFree(data_), what);
    data_ = nullptr;
    bytes_ = 0;
    const size_t rounded = (bytes + 4095) / 4096 * 4096;
    cuda_check(cudaMalloc(&data_, rounded), what);
    bytes_ = rounded;
    return data_;
  }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

enum class Routine : int { QrWork, SvdjBatched, Svdj, SvdjEcon };
using LworkKey = std::tuple<Routine, int64_t, int64_t, int64_t>;

class CudaLinalg final : public LinalgBackend {
 public:
  explicit CudaLinalg(GpuContext& ctx) : ctx_(ctx) {
    solver_check(cusolverDnCreate(&solver_), "cusolverDnCreate");
    solver_check(cusolverDnSetStream(solver_, ctx_.stream()), "cusolverDnSetStream");
    solver_check(cusolverDnCreateGesvdjInfo(&gesvdj_), "cusolverDnCreateGesvdjInfo");
  }
  ~CudaLinalg() override {
    cudaStreamSynchronize(ctx_.stream());  // queued cuSOLVER work uses the areas and handle
    cusolverDnDestroyGesvdjInfo(gesvdj_);
    cusolverDnDestroy(solver_);
  }

 protected:
  void do_qr_thin(Tensor q, Tensor r, const Tensor& a) override {
    const int64_t batch = batch_of(a), m = a.shape[a.shape.rank - 2], n = a.shape.cols();
    const int im = static_cast<int>(m), in = static_cast<int>(n);
    const int lwork = cached_lwork({Routine::QrWork, m, n, 0}, [&] {
      int geqrf = 0, orgqr = 0;
      solver_check(cusolverDnSgeqrf_bufferSize(solver_, im, in, nullptr, im, &geqrf),
                   "geqrf_bufferSize");
      solver_check(cusolverDnSorgqr_bufferSize(solver_, im, in, in, nullptr, im, nullptr, &orgqr),
                   "orgqr_bufferSize");
      return std::max(geqrf, orgqr);
    });
    float* colmajor = matrices(batch * m * n + batch * n);
    float* tau = colmajor + batch * m * n;
    float* work = workspace(lwork);
    int* info = infos(batch);
    launch(transpose_kernel, grid_for(batch * m * n), kThreads, 0, ctx_.stream(), colmajor,
           a.as<float>(), batch, m, n);
    for (int64_t b = 0; b < batch; ++b)
      solver_check(cusolverDnSgeqrf(solver_, im, in, colmajor + b * m * n, im, tau + b * n, work,
                                    lwork, info + b),
                   "geqrf");
    check_infos(info, batch, "qr_thin (geqrf)");
    launch(extract_r_kernel, grid_for(batch * n * n), kThreads, 0, ctx_.stream(), r.as<float>(),
           colmajor, batch, m, n);
    for (int64_t b = 0; b < batch; ++b)
      solver_check(cusolverDnSorgqr(solver_, im, in, in, colmajor + b * m * n, im, tau + b * n,
                                    work, lwork, info + b),
                   "orgqr");
    check_infos(info, batch, "qr_thin (orgqr)");
    launch(finish_qr_kernel, static_cast<unsigned>(batch), kThreads, 0, ctx_.stream(),
           q.as<float>(), r.as<float>(), colmajor, m, n);
  }

  void do_svd_small(Tensor u, Tensor s, Tensor vt, const Tensor& a) override {
    const int64_t batch = batch_of(a), r = a.shape.cols();
    const int ir = static_cast<int>(r);
    // Workspace: the copy gesvdj destroys, then U_x and V_x (each r×r, column-major).
    float* x = matrices(3 * batch * r * r);
    float* ux = x + batch * r * r;
    float* vx = ux + batch * r * r;
    int* info = infos(batch);
    cuda_check(cudaMemcpyAsync(x, a.data, a.bytes(), cudaMemcpyDeviceToDevice, ctx_.stream()),
               "svd_small copy");
    if (r <= kGesvdjBatchedMaxDim) {
      const int ib = static_cast<int>(batch);
      const int lwork = cached_lwork({Routine::SvdjBatched, r, r, batch}, [&] {
        int lw = 0;
        solver_check(
            cusolverDnSgesvdjBatched_bufferSize(solver_, CUSOLVER_EIG_MODE_VECTOR, ir, ir, x, ir,
                                                s.as<float>(), ux, ir, vx, ir, &lw, gesvdj_, ib),
            "gesvdjBatched_bufferSize");
        return lw;
      });
      solver_check(
          cusolverDnSgesvdjBatched(solver_, CUSOLVER_EIG_MODE_VECTOR, ir, ir, x, ir, s.as<float>(),
                                   ux, ir, vx, ir, workspace(lwork), lwork, info, gesvdj_, ib),
          "gesvdjBatched");
    } else {
      const int lwork = cached_lwork({Routine::Svdj, r, r, 0}, [&] {
        int lw = 0;
        solver_check(cusolverDnSgesvdj_bufferSize(solver_, CUSOLVER_EIG_MODE_VECTOR, 0, ir, ir, x,
                                                  ir, s.as<float>(), ux, ir, vx, ir, &lw, gesvdj_),
                     "gesvdj_bufferSize");
        return lw;
      });
      float* work = workspace(lwork);
      for (int64_t b = 0; b < batch; ++b)
        solver_check(cusolverDnSgesvdj(solver_, CUSOLVER_EIG_MODE_VECTOR, 0, ir, ir, x + b * r * r,
                                       ir, s.as<float>() + b * r, ux + b * r * r, ir,
                                       vx + b * r * r, ir, work, lwork, info + b, gesvdj_),
                     "gesvdj");
    }
    check_infos(info, batch, "svd_small (gesvdj)");
    // a's left vectors are V_x's columns, its right vectors U_x's columns (header comment).
    launch(finish_svd_kernel, static_cast<unsigned>(batch), kThreads, 0, ctx_.stream(),
           u.as<float>(), vt.as<float>(), vx, ux, r, r, r, r * r, r * r);
  }

  void do_svd_truncated(Tensor u, Tensor s, Tensor vt, const Tensor& a) override {
    const int64_t m = a.shape[0], n = a.shape[1], k = s.numel(), p = std::min(m, n);
    // gesvdj (econ) of X = aᵀ, column-major n×m (ld n): U_x [n, p] (ld n), V_x [m, p] (ld m).
    const int xm = static_cast<int>(n), xn = static_cast<int>(m);
    float* x = matrices(m * n + n * p + m * p + p);
    float* ux = x + m * n;
    float* vx = ux + n * p;
    float* sx = vx + m * p;
    int* info = infos(1);
    const int lwork = cached_lwork({Routine::SvdjEcon, m, n, 0}, [&] {
      int lw = 0;
      solver_check(cusolverDnSgesvdj_bufferSize(solver_, CUSOLVER_EIG_MODE_VECTOR, 1, xm, xn, x, xm,
                                                sx, ux, xm, vx, xn, &lw, gesvdj_),
                   "gesvdj_bufferSize");
      return lw;
    });
    cuda_check(cudaMemcpyAsync(x, a.data, a.bytes(), cudaMemcpyDeviceToDevice, ctx_.stream()),
               "svd_truncated copy");
    solver_check(cusolverDnSgesvdj(solver_, CUSOLVER_EIG_MODE_VECTOR, 1, xm, xn, x, xm, sx, ux, xm,
                                   vx, xn, workspace(lwork), lwork, info, gesvdj_),
                 "gesvdj");
    check_infos(info, 1, "svd_truncated (gesvdj)");
    cuda_check(
        cudaMemcpyAsync(s.data, sx, sizeof(float) * k, cudaMemcpyDeviceToDevice, ctx_.stream()),
        "svd_truncated s");
    launch(finish_svd_kernel, 1u, kThreads, 0, ctx_.stream(), u.as<float>(), vt.as<float>(), vx, ux,
           m, k, n, m * p, n * p);
  }

  void do_triangular_solve(Tensor b, const Tensor& t, bool upper, bool transpose) override {
    const int64_t batch = batch_of(b), m = b.shape[b.shape.rank - 2], n = b.shape.cols();
    if (ctx_.device_checks()) {
      int* flag = infos(1);
      launch(find_singular_kernel, 1u, 32u, 0, ctx_.stream(), flag, t.as<float>(), batch, m);
      int host_flag = 0;
      ctx_.download(&host_flag, flag, sizeof host_flag);
      SMOL_CHECK(host_flag == 0, "triangular_solve: t[", host_flag - 1,
                 "] is singular (a zero on its diagonal)");
    }
    const dim3 grid(ceil_div(n, kThreads), static_cast<unsigned>(batch));
    launch(triangular_solve_kernel, grid, kThreads, 0, ctx_.stream(), b.as<float>(), t.as<float>(),
           m, n, upper, transpose);
  }

 private:
  template <typename Query>
  int cached_lwork(const LworkKey& key, Query&& query) {
    auto it = lwork_.find(key);
    if (it != lwork_.end()) return it->second;
    const int lwork = std::max(1, query());
    lwork_[key] = lwork;
    return lwork;
  }
  float* matrices(int64_t floats) {
    return static_cast<float*>(matrices_.get(sizeof(float) * static_cast<size_t>(floats),
                                             ctx_.stream(), "linalg matrices"));
  }
  float* workspace(int lwork) {
    return static_cast<float*>(
        work_.get(sizeof(float) * static_cast<size_t>(lwork), ctx_.stream(), "linalg workspace"));
  }
  int* infos(int64_t count) {
    return static_cast<int*>(
        info_.get(sizeof(int) * static_cast<size_t>(count), ctx_.stream(), "linalg dev_info"));
  }
  // In the device checks debug mode: downloads dev_info (a host wait) and throws on the first
  // failed matrix. Otherwise nothing (a failure shows as non-finite results).
  void check_infos(const int* info, int64_t count, const char* what) {
    if (!ctx_.device_checks()) return;
    std::vector<int> host(static_cast<size_t>(count));
    ctx_.download(host.data(), info, sizeof(int) * host.size());
    for (int64_t b = 0; b < count; ++b)
      SMOL_CHECK(host[b] == 0, what, ": matrix ", b, " failed (dev_info ", host[b],
                 host[b] > 0 ? ": did not converge" : ": illegal argument", ")");
  }

  GpuContext& ctx_;
  cusolverDnHandle_t solver_ = nullptr;
  gesvdjInfo_t gesvdj_ = nullptr;
  DeviceArea matrices_, work_, info_;
  std::map<LworkKey, int> lwork_;
};

}  // namespace

std::unique_ptr<LinalgBackend> make_linalg(GpuContext& ctx) {
  return std::make_unique<CudaLinalg>(ctx);
}

}  // namespace smol::SMOL_GPU_NS
