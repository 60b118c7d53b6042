// SingleCommunicator: the communicator of a one-process run. Every reduction over one rank is the
// identity, so ops are copies (when in and out differ) or nothing; no MPI, no launcher.
#include <cstring>

#include "kernels/comm/collective_checks.h"
#include "kernels/comm/communicators.h"

namespace smol {
namespace {

class SingleCommunicator final : public Communicator {
 public:
  SingleCommunicator(Backend& backend, const LaunchInfo& launch)
      : backend_(backend), local_rank_(launch.local_rank) {}
  std::string name() const override { return "single"; }
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  int local_rank() const override { return local_rank_; }

  void all_reduce(Tensor x, ReduceOp) override {
    comm::check_all_reduce_dtype("single", x.dtype, true);
  }
  void reduce_scatter(Tensor out, const Tensor& in, ReduceOp) override {
    comm::check_reduce_scatter("single", out, in, 1, true);
    if (out.data != in.data) backend_.copy(out, in);
  }
  void all_gather(Tensor out, const Tensor& in) override {
    comm::check_all_gather("single", out, in, 1, true);
    if (out.data != in.data) backend_.copy(out, in);
  }
  void broadcast(Tensor x, int root) override {
    comm::check_dtype("single", "broadcast", x.dtype, true);
    comm::check_root("single", root, 1);
  }
  void barrier() override {}
  void begin_overlap() override {}
  void end_overlap() override {}
  void all_reduce_host(std::span<double>, ReduceOp) override {}
  std::vector<std::string> all_gather_host(const std::string& bytes) override { return {bytes}; }
  [[noreturn]] void abort(int exit_code) override { std::exit(exit_code); }

 private:
  Backend& backend_;
  int local_rank_;
};

}  // namespace

std::unique_ptr<Communicator> make_single_communicator(Backend& backend, const LaunchInfo& launch) {
  return std::make_unique<SingleCommunicator>(backend, launch);
}

}  // namespace smol
