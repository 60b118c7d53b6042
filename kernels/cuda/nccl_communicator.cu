// NcclCommunicator: data parallelism on the cuda backend (kernels/communicator.h). Ops are
// enqueued on the backend's stream — or, inside an overlap region, on a side stream that first
// waits for an event recorded on the compute stream, so buckets reduce while the backward goes
// on; end_overlap makes the compute stream wait for the side stream (no host wait).
//
// Bootstrap (docs/design.md §8): rank 0 makes the unique id and shares it through MPI_Bcast (an
// MPI launch) or the TCP rendezvous on MASTER_ADDR:MASTER_PORT (kernels/comm/tcp_rendezvous.h);
// then ncclCommInitRank on the backend's device. After init every rank gathers
// "hostname/device" and two ranks on one GPU are an Error (NCCL would deadlock or crawl) —
// except under cuda-emu, where every rank shares the one emulated device by design.
//
// Timeouts: device ops never block the host, so a dead peer shows at the next host wait (the
// host helpers and barrier). Those waits poll cudaEventQuery and ncclCommGetAsyncError until
// the deadline, then ncclCommAbort and throw. ncclCommInitRank itself is blocking in NCCL.
//
// Under SMOL_CUDA_EMU the NCCL entry points come from kernels/emu/emu_nccl.h (over MPI, which
// is why cuda-emu needs an MPI launch) and every stream runs synchronously.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "kernels/comm/collective_checks.h"
#include "kernels/comm/mpi_session.h"
#include "kernels/comm/tcp_rendezvous.h"
#include "kernels/cuda/cuda_compat.h"
#include "kernels/cuda/nccl_communicator.h"
#if defined(SMOL_CUDA_EMU)
#include "kernels/emu/emu_nccl.h"
#else
#include <nccl.h>
#endif

namespace smol::SMOL_GPU_NS {
#if defined(SMOL_CUDA_EMU)
using namespace ::smol::emu::nccl;
constexpr const char* kName = "nccl (cuda-emu)";
#else
constexpr const char* kName = "nccl";
#endif

namespace {

using Clock = std::chrono::steady_clock;

void nccl_check(ncclResult_t status, const char* what) {
  if (status != ncclSuccess) throw_error("nccl: ", what, ": ", ncclGetErrorString(status));
}

ncclDataType_t nccl_type(DType dtype) {
  return dtype == DType::BF16 ? ncclBfloat16 : dtype == DType::F64 ? ncclFloat64 : ncclFloat32;
}
ncclRedOp_t nccl_op(ReduceOp op) {
  return op == ReduceOp::Sum ? ncclSum : ncclMax;
}

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(Backend& backend, const LaunchInfo& launch, const CommunicatorOptions& options)
      : timeout_(options.timeout_seconds),
        rank_(launch.rank),
        world_(launch.world_size),
        local_rank_(launch.local_rank) {
    const bool mpi_launch = launch.launcher == LaunchInfo::Launcher::Mpi;
#if defined(SMOL_CUDA_EMU)
    SMOL_CHECK(mpi_launch,
               "cuda-emu's NCCL runs over MPI: launch with mpirun (this process was "
               "started by ",
               launch.source, ")");
#endif
    const std::string& how = options.nccl_bootstrap;
    SMOL_CHECK(how == "auto" || how == "mpi" || how == "tcp", "nccl: bootstrap '", how,
               "' is not one of auto, mpi, tcp");
    const bool use_mpi = how == "mpi" || (how == "auto" && mpi_launch);
    SMOL_CHECK(!use_mpi || mpi_launch, "nccl: bootstrap 'mpi' needs an MPI launch (mpirun), but ",
               launch.source, " started this process");
    SMOL_CHECK(use_mpi || (!launch.master_addr.empty() && launch.master_port != 0),
               "nccl: the tcp bootstrap needs MASTER_ADDR and MASTER_PORT");
#if defined(SMOL_CUDA_EMU)
    mpi_ = comm::MpiSession::acquire();  // emu NCCL itself runs over MPI
#else
    if (use_mpi) mpi_ = comm::MpiSession::acquire();
#endif
    if (mpi_)
      SMOL_CHECK(mpi_->rank() == rank_ && mpi_->size() == world_, "nccl: the launcher (",
                 launch.source, ") says rank ", rank_, " of ", world_,
                 " but MPI_COMM_WORLD has rank ", mpi_->rank(), " of ", mpi_->size());

    cuda_check(cudaSetDevice(backend.device_ordinal()), "cudaSetDevice");
    ncclUniqueId id;
    std::memset(&id, 0, sizeof id);
    if (rank_ == 0) nccl_check(ncclGetUniqueId(&id), "ncclGetUniqueId");
    if (use_mpi) {
      mpi_->broadcast_bytes(&id, sizeof id, 0, timeout_, "nccl bootstrap (MPI_Bcast of the id)");
    } else {
      std::vector<char> bytes(reinterpret_cast<char*>(&id),
                              reinterpret_cast<char*>(&id) + sizeof id);
      bytes = comm::tcp_rendezvous(
          {launch.master_addr, launch.master_port, rank_, world_, timeout_}, bytes);
      std::memcpy(&id, bytes.data(), sizeof id);
    }
    nccl_check(ncclCommInitRank(&comm_, world_, id, rank_), "ncclCommInitRank");

    stream_ = static_cast<cudaStream_t>(backend.stream_handle());
    cuda_check(cudaStreamCreate(&side_), "cudaStreamCreate(nccl side stream)");
    cuda_check(cudaEventCreate(&compute_ready_), "cudaEventCreate");
    cuda_check(cudaEventCreate(&side_done_), "cudaEventCreate");
    cuda_check(cudaEventCreate(&host_wait_), "cudaEventCreate");
#if !defined(SMOL_CUDA_EMU)
    check_one_gpu_per_rank(backend.device_ordinal());
#endif
  }

  ~NcclCommunicator() override {
    if (comm_ != nullptr) ncclCommDestroy(comm_);
    if (device_scratch_ != nullptr) cudaFree(device_scratch_);
    if (host_scratch_ != nullptr) cudaFreeHost(host_scratch_);
    for (cudaEvent_t e : {compute_ready_, side_done_, host_wait_})
      if (e != nullptr) cudaEventDestroy(e);
    if (side_ != nullptr) cudaStreamDestroy(side_);
  }

  std::string name() const override {
    return "nccl";
  }
  int rank() const override {
    return rank_;
  }
  int world_size() const override {
    return world_;
  }
  int local_rank() const override {
    return local_rank_;
  }

  void all_reduce(Tensor x, ReduceOp op) override {
    comm::check_all_reduce_dtype(kName, x.dtype, true);
    nccl_check(ncclAllReduce(x.data, x.data, static_cast<size_t>(x.numel()), nccl_type(x.dtype),
                             nccl_op(op), live(), op_stream()),
               "ncclAllReduce");
  }
  void reduce_scatter(Tensor out, const Tensor& in, ReduceOp op) override {
    comm::check_reduce_scatter(kName, out, in, world_, true);
    nccl_check(ncclReduceScatter(in.data, out.data, static_cast<size_t>(out.numel()),
                                 nccl_type(in.dtype), nccl_op(op), live(), op_stream()),
               "ncclReduceScatter");
  }
  void all_gather(Tensor out, const Tensor& in) override {
    comm::check_all_gather(kName, out, in, world_, true);
    comm::all_gather_in_place(kName, out, in, rank_);  // NCCL is in place when in is block rank
    nccl_check(ncclAllGather(in.data, out.data, static_cast<size_t>(in.numel()),
                             nccl_type(in.dtype), live(), op_stream()),
               "ncclAllGather");
  }
  void broadcast(Tensor x, int root) override {
    comm::check_dtype(kName, "broadcast", x.dtype, true);
    comm::check_root(kName, root, world_);
    nccl_check(ncclBroadcast(x.data, x.data, static_cast<size_t>(x.numel()), nccl_type(x.dtype),
                             root, live(), op_stream()),
               "ncclBroadcast");
  }
  // NCCL has no barrier: a one-element all-reduce every rank must join, waited for on the host.
  void barrier() override {
    float* scratch = static_cast<float*>(device_scratch(sizeof(float)));
    nccl_check(ncclAllReduce(scratch, scratch, 1, ncclFloat32, ncclSum, live(), stream_),
               "ncclAllReduce (barrier)");
    wait_stream("barrier");
  }

  void begin_overlap() override {
    SMOL_CHECK(!overlapping_, kName, ": begin_overlap inside an overlap region");
    overlapping_ = true;
  }
  void end_overlap() override {
    SMOL_CHECK(overlapping_, kName, ": end_overlap without begin_overlap");
    overlapping_ = false;
    cuda_check(cudaEventRecord(side_done_, side_), "cudaEventRecord(end_overlap)");
    cuda_check(cudaStreamWaitEvent(stream_, side_done_, 0), "cudaStreamWaitEvent(end_overlap)");
  }

  void all_reduce_host(std::span<double> values, ReduceOp op) override {
    if (values.empty()) return;
    const size_t bytes = values.size() * sizeof(double);
    void* device = device_scratch(bytes);
    double* host = static_cast<double*>(host_scratch(bytes));
    std::memcpy(host, values.data(), bytes);
    cuda_check(cudaMemcpyAsync(device, host, bytes, cudaMemcpyHostToDevice, stream_),
               "all_reduce_host upload");
    nccl_check(
        ncclAllReduce(device, device, values.size(), ncclFloat64, nccl_op(op), live(), stream_),
        "ncclAllReduce (all_reduce_host)");
    cuda_check(cudaMemcpyAsync(host, device, bytes, cudaMemcpyDeviceToHost, stream_),
               "all_reduce_host download");
    wait_stream("all_reduce_host");
    std::memcpy(values.data(), host, bytes);
  }

  // Lengths first (as doubles, exact below 2^53), then every rank's bytes padded to the longest.
  std::vector<std::string> all_gather_host(const std::string& bytes) override {
    const size_t w = static_cast<size_t>(world_);
    std::vector<double> lengths(w, 0.0);
    lengths[static_cast<size_t>(rank_)] = static_cast<double>(bytes.size());
    all_reduce_host(lengths, ReduceOp::Sum);  // zeros elsewhere: the sum is the gather
    size_t longest = 1;
    for (double l : lengths) longest = std::max(longest, static_cast<size_t>(l));
    char* device = static_cast<char*>(device_scratch(longest * (w + 1)));
    char* host = static_cast<char*>(host_scratch(longest * (w + 1)));
    std::memset(host, 0, longest);
    std::memcpy(host, bytes.data(), bytes.size());
    cuda_check(cudaMemcpyAsync(device, host, longest, cudaMemcpyHostToDevice, stream_),
               "all_gather_host upload");
    nccl_check(ncclAllGather(device, device + longest, longest, ncclUint8, live(), stream_),
               "ncclAllGather (all_gather_host)");
    cuda_check(
        cudaMemcpyAsync(host, device + longest, longest * w, cudaMemcpyDeviceToHost, stream_),
        "all_gather_host download");
    wait_stream("all_gather_host");
    std::vector<std::string> out;
    for (size_t r = 0; r < w; ++r)
      out.emplace_back(host + r * longest, static_cast<size_t>(lengths[r]));
    return out;
  }

  [[noreturn]] void abort(int exit_code) override {
    if (comm_ != nullptr) ncclCommAbort(comm_);
    comm_ = nullptr;
    if (mpi_) comm::MpiSession::abort(exit_code);
    std::fflush(nullptr);
    std::_Exit(exit_code);  // peers see NCCL's remote error or their own timeouts
  }

 private:
  ncclComm_t live() const {
    SMOL_CHECK(comm_ != nullptr, kName, ": the communicator was aborted after an earlier error");
    return comm_;
  }
  // The stream an op goes on: the compute stream, or inside an overlap region the side stream,
  // made to wait for everything enqueued on the compute stream so far.
  cudaStream_t op_stream() {
    if (!overlapping_) return stream_;
    cuda_check(cudaEventRecord(compute_ready_, stream_), "cudaEventRecord(overlap)");
    cuda_check(cudaStreamWaitEvent(side_, compute_ready_, 0), "cudaStreamWaitEvent(overlap)");
    return side_;
  }

  // Waits until the compute stream's work so far is done, polling NCCL for asynchronous
  // errors; on an error or after the timeout the communicator is aborted and this throws.
  void wait_stream(const char* op) {
    cuda_check(cudaEventRecord(host_wait_, stream_), "cudaEventRecord(host wait)");
    const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                             std::chrono::duration<double>(timeout_));
    auto pause = std::chrono::microseconds(0);
    for (;;) {
      const cudaError_t state = cudaEventQuery(host_wait_);
      if (state == cudaSuccess) return;
      if (state != cudaErrorNotReady) cuda_check(state, op);
      ncclResult_t async = ncclSuccess;
      nccl_check(ncclCommGetAsyncError(comm_, &async), "ncclCommGetAsyncError");
      if (async != ncclSuccess && async != ncclInProgress) {
        ncclCommAbort(comm_);
        comm_ = nullptr;
        throw_error("rank ", rank_, " of ", world_, ": ", op,
                    " failed: ", ncclGetErrorString(async), " (the communicator was aborted)");
      }
      if (Clock::now() >= deadline) {
        ncclCommAbort(comm_);
        comm_ = nullptr;
        throw_error("rank ", rank_, " of ", world_, ": ", op, " did not complete within ", timeout_,
                    " s: a rank died or is stuck");
      }
      if (pause.count() > 0) std::this_thread::sleep_for(pause);
      pause = std::min(pause + std::chrono::microseconds(20), std::chrono::microseconds(1000));
    }
  }

  void* device_scratch(size_t bytes) {
    if (bytes > device_bytes_) {
      // Earlier ops on either stream may still read the old area.
      cuda_check(cudaStreamSynchronize(stream_), "nccl scratch");
      cuda_check(cudaStreamSynchronize(side_), "nccl scratch");
      if (device_scratch_ != nullptr) cudaFree(device_scratch_);
      device_scratch_ = nullptr;
      cuda_check(cudaMalloc(&device_scratch_, bytes), "cudaMalloc(nccl scratch)");
      device_bytes_ = bytes;
    }
    return device_scratch_;
  }
  void* host_scratch(size_t bytes) {
    if (bytes > host_bytes_) {
      if (host_scratch_ != nullptr) cudaFreeHost(host_scratch_);
      host_scratch_ = nullptr;
      cuda_check(cudaMallocHost(&host_scratch_, bytes), "cudaMallocHost(nccl scratch)");
      host_bytes_ = bytes;
    }
    return host_scratch_;
  }

  // Two ranks driving one GPU make NCCL hang or crawl; say which instead.
  void check_one_gpu_per_rank(int device) {
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    const std::string mine = std::string(host) + "/" + std::to_string(device);
    const auto all = all_gather_host(mine);
    for (int r = 0; r < world_; ++r)
      SMOL_CHECK(r == rank_ || all[static_cast<size_t>(r)] != mine, "nccl: rank ", rank_,
                 " and rank ", r, " both use GPU ", device, " of host ", host,
                 ": one GPU per rank (check LOCAL_RANK / the launcher's local rank)");
  }

  std::shared_ptr<comm::MpiSession> mpi_;  // first: MPI outlives the NCCL communicator
  double timeout_;
  int rank_, world_, local_rank_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr, side_ = nullptr;
  cudaEvent_t compute_ready_ = nullptr, side_done_ = nullptr, host_wait_ = nullptr;
  bool overlapping_ = false;
  void* device_scratch_ = nullptr;
  void* host_scratch_ = nullptr;
  size_t device_bytes_ = 0, host_bytes_ = 0;
};

}  // namespace
}  // namespace smol::SMOL_GPU_NS

namespace smol {
#if defined(SMOL_CUDA_EMU)
std::unique_ptr<Communicator> make_emu_nccl_communicator(Backend& backend, const LaunchInfo& launch,
                                                         const CommunicatorOptions& options) {
  return std::make_unique<gpu_emu::NcclCommunicator>(backend, launch, options);
}
#else
std::unique_ptr<Communicator> make_nccl_communicator(Backend& backend, const LaunchInfo& launch,
                                                     const CommunicatorOptions& options) {
  return std::make_unique<gpu::NcclCommunicator>(backend, launch, options);
}
#endif
}  // namespace smol
