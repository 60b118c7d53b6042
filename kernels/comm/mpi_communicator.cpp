// MpiCommunicator: the cpu backend's communicator, OpenMPI over host memory (tensors of the cpu
// backend are host memory). Every op is a nonblocking MPI_I* call on a duplicate of
// MPI_COMM_WORLD (so a test's or another library's traffic never matches ours), completed by a
// polling wait with a deadline (mpi_wait.h): a peer that died or stopped calling collectives
// ends in an Error after timeout_seconds instead of a hang. Inside an overlap region requests
// are collected and waited for, in order, by end_overlap.
//
// A request that timed out cannot be cancelled (MPI has no cancel for collectives): it is kept,
// with its buffer, until the communicator goes; the caller is expected to abort() the job.
#include <mpi.h>

#include <climits>
#include <cstdlib>

#include "kernels/comm/collective_checks.h"
#include "kernels/comm/communicators.h"
#include "kernels/comm/mpi_session.h"
#include "kernels/comm/mpi_wait.h"

namespace smol {
namespace {

using comm::Clock;
using comm::mpi_check;

MPI_Op mpi_op(ReduceOp op) {
  return op == ReduceOp::Sum ? MPI_SUM : MPI_MAX;
}

int mpi_count(int64_t numel, const char* op) {
  SMOL_CHECK(numel <= INT_MAX, "mpi: ", op, " of ", numel,
             " elements is more than one MPI call takes (", INT_MAX, ")");
  return static_cast<int>(numel);
}

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(const LaunchInfo& launch, const CommunicatorOptions& options)
      : session_(comm::MpiSession::acquire()),
        timeout_(options.timeout_seconds),
        local_rank_(launch.local_rank) {
    SMOL_CHECK(session_->size() == launch.world_size && session_->rank() == launch.rank,
               "mpi: the launcher (", launch.source, ") says rank ", launch.rank, " of ",
               launch.world_size, " but MPI_COMM_WORLD has this process as rank ", session_->rank(),
               " of ", session_->size());
    mpi_check(MPI_Comm_dup(MPI_COMM_WORLD, &comm_), "MPI_Comm_dup");
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    rank_ = session_->rank();
    world_ = session_->size();
  }
  ~MpiCommunicator() override {
    // Requests still active (an overlap left by an exception, or a timed-out op) must finish
    // before MPI may free the communicator; give them one more short chance, else leak it.
    bool all_done = true;
    for (auto& p : pending_) all_done &= comm::wait_until(p.request, comm::deadline_after(0));
    for (auto& r : abandoned_) all_done &= comm::wait_until(r, comm::deadline_after(0));
    if (all_done) MPI_Comm_free(&comm_);
  }

  std::string name() const override { return "mpi"; }
  int rank() const override { return rank_; }
  int world_size() const override { return world_; }
  int local_rank() const override { return local_rank_; }

  void all_reduce(Tensor x, ReduceOp op) override {
    comm::check_all_reduce_dtype("mpi", x.dtype, false);
    MPI_Request r;
    mpi_check(MPI_Iallreduce(MPI_IN_PLACE, x.data, mpi_count(x.numel(), "all_reduce"),
                             x.dtype == DType::F64 ? MPI_DOUBLE : MPI_FLOAT, mpi_op(op), comm_, &r),
              "mpi: all_reduce");
    finish(r, "all_reduce");
  }
  void reduce_scatter(Tensor out, const Tensor& in, ReduceOp op) override {
    comm::check_reduce_scatter("mpi", out, in, world_, false);
    MPI_Request r;
    mpi_check(MPI_Ireduce_scatter_block(in.data, out.data, mpi_count(out.numel(), "reduce_scatter"),
                                        MPI_FLOAT, mpi_op(op), comm_, &r),
              "mpi: reduce_scatter");
    finish(r, "reduce_scatter");
  }
  void all_gather(Tensor out, const Tensor& in) override {
    comm::check_all_gather("mpi", out, in, world_, false);
    const int n = mpi_count(in.numel(), "all_gather");
    MPI_Request r;
    if (comm::all_gather_in_place("mpi", out, in, rank_))
      mpi_check(
          MPI_Iallgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, out.data, n, MPI_FLOAT, comm_, &r),
          "mpi: all_gather");
    else
      mpi_check(MPI_Iallgather(in.data, n, MPI_FLOAT, out.data, n, MPI_FLOAT, comm_, &r),
                "mpi: all_gather");
    finish(r, "all_gather");
  }
  void broadcast(Tensor x, int root) override {
    comm::check_dtype("mpi", "broadcast", x.dtype, false);
    comm::check_root("mpi", root, world_);
    MPI_Request r;
    mpi_check(MPI_Ibcast(x.data, mpi_count(x.numel(), "broadcast"), MPI_FLOAT, root, comm_, &r),
              "mpi: broadcast");
    finish(r, "broadcast");
  }
  void barrier() override {
    MPI_Request r;
    mpi_check(MPI_Ibarrier(comm_, &r), "mpi: barrier");
    finish(r, "barrier");
  }

  void begin_overlap() override {
    SMOL_CHECK(!overlapping_, "mpi: begin_overlap inside an overlap region");
    overlapping_ = true;
  }
  void end_overlap() override {
    SMOL_CHECK(overlapping_, "mpi: end_overlap without begin_overlap");
    overlapping_ = false;
    const auto deadline = comm::deadline_after(timeout_);
    const size_t count = pending_.size();
    for (size_t i = 0; i < count; ++i) {
      if (!comm::wait_until(pending_[i].request, deadline)) {
        for (size_t j = i; j < count; ++j) abandoned_.push_back(pending_[j].request);
        const std::string op = std::string("end_overlap (") + pending_[i].op + ", op " +
                               std::to_string(i + 1) + " of " + std::to_string(count) + ")";
        pending_.clear();
        comm::throw_timeout(rank_, world_, op, timeout_);
      }
    }
    pending_.clear();
  }

  void all_reduce_host(std::span<double> values, ReduceOp op) override {
    MPI_Request r;
    mpi_check(MPI_Iallreduce(MPI_IN_PLACE, values.data(),
                             mpi_count(static_cast<int64_t>(values.size()), "all_reduce_host"),
                             MPI_DOUBLE, mpi_op(op), comm_, &r),
              "mpi: all_reduce_host");
    wait(r, "all_reduce_host");
  }
  std::vector<std::string> all_gather_host(const std::string& bytes) override {
    SMOL_CHECK(bytes.size() <= INT_MAX / 2, "mpi: all_gather_host of ", bytes.size(),
               " bytes is too large");
    int length = static_cast<int>(bytes.size());
    std::vector<int> lengths(static_cast<size_t>(world_)), offsets(lengths.size());
    MPI_Request r;
    mpi_check(MPI_Iallgather(&length, 1, MPI_INT, lengths.data(), 1, MPI_INT, comm_, &r),
              "mpi: all_gather_host");
    wait(r, "all_gather_host");
    int64_t total = 0;
    for (size_t i = 0; i < lengths.size(); ++i) {
      offsets[i] = static_cast<int>(total);
      total += lengths[i];
      SMOL_CHECK(total <= INT_MAX, "mpi: all_gather_host of ", total, " bytes in all is too large");
    }
    std::string joined(static_cast<size_t>(total), '\0');
    mpi_check(MPI_Iallgatherv(bytes.data(), length, MPI_BYTE, joined.data(), lengths.data(),
                              offsets.data(), MPI_BYTE, comm_, &r),
              "mpi: all_gather_host");
    wait(r, "all_gather_host");
    std::vector<std::string> out;
    for (size_t i = 0; i < lengths.size(); ++i)
      out.push_back(
          joined.substr(static_cast<size_t>(offsets[i]), static_cast<size_t>(lengths[i])));
    return out;
  }

  [[noreturn]] void abort(int exit_code) override { comm::MpiSession::abort(exit_code); }

 private:
  struct Pending {
    MPI_Request request;
    const char* op;
  };
  // An op's request: collected inside an overlap region, else waited for now.
  void finish(MPI_Request& r, const char* op) {
    if (overlapping_)
      pending_.push_back({r, op});
    else
      wait(r, op);
  }
  void wait(MPI_Request& r, const char* op) {
    if (comm::wait_until(r, comm::deadline_after(timeout_))) return;
    abandoned_.push_back(r);
    comm::throw_timeout(rank_, world_, op, timeout_);
  }

  std::shared_ptr<comm::MpiSession> session_;  // first member: MPI outlives comm_
  MPI_Comm comm_ = MPI_COMM_NULL;
  double timeout_;
  int rank_ = 0, world_ = 1, local_rank_ = 0;
  bool overlapping_ = false;
  std::vector<Pending> pending_;
  std::vector<MPI_Request> abandoned_;  // timed out: their buffers may still be written
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator(const LaunchInfo& launch,
                                                    const CommunicatorOptions& options) {
  SMOL_CHECK(launch.launcher == LaunchInfo::Launcher::Mpi,
             "mpi communicator: the process was not started by an MPI launcher (", launch.source,
             "): launch with mpirun -np N");
  return std::make_unique<MpiCommunicator>(launch, options);
}

}  // namespace smol
