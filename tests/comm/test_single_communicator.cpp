// make_communicator in one process: the single communicator (copies through the backend, so
// device memory works) and the refusals of distributed launches it cannot serve.
#include <gtest/gtest.h>

#include <vector>

#include "common/error.h"
#include "kernels/backend.h"
#include "kernels/communicator.h"

namespace smol {
namespace {

class SingleCommunicatorTest : public ::testing::TestWithParam<std::string> {};

TEST_P(SingleCommunicatorTest, OpsAreCopiesOrNothing) {
  std::vector<std::string> devices = available_devices();
  if (std::find(devices.begin(), devices.end(), GetParam()) == devices.end())
    GTEST_SKIP() << GetParam() << " not built";
  auto backend = make_backend(GetParam());
  auto comm = make_communicator(*backend, LaunchInfo{});
  EXPECT_EQ(comm->name(), "single");
  EXPECT_EQ(comm->world_size(), 1);
  Buffer a = backend->allocate(16), b = backend->allocate(16);
  Tensor ta = a.view(DType::F32, Shape{4}), tb = b.view(DType::F32, Shape{4});
  const std::vector<float> values{1, -2, 3.5f, 4};
  backend->upload(ta, values.data());
  comm->all_reduce(ta, ReduceOp::Sum);
  comm->reduce_scatter(tb, ta, ReduceOp::Max);
  std::vector<float> got(4);
  backend->download(got.data(), tb);
  EXPECT_EQ(got, values);
  backend->upload(tb, std::vector<float>(4, 0.0f).data());
  comm->begin_overlap();
  comm->all_gather(tb, ta);
  comm->end_overlap();
  backend->download(got.data(), tb);
  EXPECT_EQ(got, values);
  std::vector<double> host{2.5};
  comm->all_reduce_host(host, ReduceOp::Sum);
  EXPECT_EQ(host[0], 2.5);
  EXPECT_EQ(comm->all_gather_host("abc"), std::vector<std::string>{"abc"});
  EXPECT_THROW(comm->reduce_scatter(tb, a.view(DType::F32, Shape{2}), ReduceOp::Sum), Error);
}

INSTANTIATE_TEST_SUITE_P(Backends, SingleCommunicatorTest, ::testing::Values("cpu", "cuda-emu"));

LaunchInfo env_launch() {
  LaunchInfo launch;
  launch.launcher = LaunchInfo::Launcher::Env;
  launch.rank = 0;
  launch.world_size = 2;
  launch.source = "RANK / WORLD_SIZE (torchrun)";
  launch.master_addr = "127.0.0.1";
  launch.master_port = 1;
  return launch;
}

std::string error_of(const std::string& device, const LaunchInfo& launch) {
  auto backend = make_backend(device);
  try {
    make_communicator(*backend, launch);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(MakeCommunicator, CpuNeedsAnMpiLaunch) {
  const std::string e = error_of("cpu", env_launch());
  EXPECT_NE(e.find("cpu data parallelism runs over MPI: launch with mpirun -np N"),
            std::string::npos)
      << e;
}

TEST(MakeCommunicator, CudaEmuNeedsAnMpiLaunch) {
  const auto devices = available_devices();
  if (std::find(devices.begin(), devices.end(), "cuda-emu") == devices.end())
    GTEST_SKIP() << "cuda-emu not built";
  const std::string e = error_of("cuda-emu", env_launch());
  EXPECT_NE(e.find("cuda-emu's NCCL runs over MPI: launch with mpirun"), std::string::npos) << e;
}

}  // namespace
}  // namespace smol
