// Every Communicator op on two ranks with known values, on the cpu backend (mpi) and on
// cuda-emu (nccl over emu-MPI). Each rank computes what every rank contributed, so a wrong
// block, root or reduction shows. Timeouts are short so a failing rank ends the peer's wait
// with an Error instead of a hang.
#include <gtest/gtest.h>
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <vector>

#include "common/error.h"
#include "kernels/backend.h"
#include "kernels/communicator.h"

namespace smol {
namespace {

struct Fixture {
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Communicator> comm;
  int rank = 0, world = 1;

  explicit Fixture(const std::string& device, double timeout = 30) {
    backend = make_backend(device);
    CommunicatorOptions options;
    options.timeout_seconds = timeout;
    comm = make_communicator(*backend, read_launch_environment(), options);
    rank = comm->rank();
    world = comm->world_size();
  }
  Buffer upload(const std::vector<float>& values, DType dtype = DType::F32) {
    Buffer b = backend->allocate(values.size() * dtype_size(dtype));
    if (dtype == DType::F32) {
      backend->upload(tensor(b, values.size()), values.data());
    } else {
      Buffer f = backend->allocate(values.size() * 4);
      backend->upload(tensor(f, values.size()), values.data());
      backend->copy(tensor(b, values.size(), dtype), tensor(f, values.size()));
    }
    return b;
  }
  static Tensor tensor(const Buffer& b, size_t n, DType dtype = DType::F32) {
    return b.view(dtype, Shape{static_cast<int64_t>(n)});
  }
  std::vector<float> download(const Buffer& b, size_t n, DType dtype = DType::F32) {
    std::vector<float> out(n);
    if (dtype == DType::F32) {
      backend->download(out.data(), tensor(b, n));
    } else {
      Buffer f = backend->allocate(n * 4);
      backend->copy(tensor(f, n), tensor(b, n, dtype));
      backend->download(out.data(), tensor(f, n));
    }
    return out;
  }
};

class CommOps : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    const auto devices = available_devices();
    if (std::find(devices.begin(), devices.end(), GetParam()) == devices.end())
      GTEST_SKIP() << GetParam() << " not built";
    f_ = std::make_unique<Fixture>(GetParam());
    ASSERT_EQ(f_->world, 2) << "run under mpirun -np 2";
  }
  std::unique_ptr<Fixture> f_;
};

TEST_P(CommOps, NameMatchesTheBackend) {
  EXPECT_EQ(f_->comm->name(), GetParam() == "cpu" ? "mpi" : "nccl");
  EXPECT_EQ(f_->comm->rank(), f_->rank);
}

TEST_P(CommOps, AllReduceSumAndMax) {
  const size_t n = 1000;  // not a multiple of anything NCCL would like
  std::vector<float> x(n);
  for (size_t i = 0; i < n; ++i) x[i] = static_cast<float>((f_->rank + 1) * (i % 17) - 8);
  Buffer sum = f_->upload(x), max = f_->upload(x);
  f_->comm->all_reduce(Fixture::tensor(sum, n), ReduceOp::Sum);
  f_->comm->all_reduce(Fixture::tensor(max, n), ReduceOp::Max);
  const auto s = f_->download(sum, n), m = f_->download(max, n);
  for (size_t i = 0; i < n; ++i) {
    const float r0 = static_cast<float>(1 * (i % 17) - 8),
                r1 = static_cast<float>(2 * (i % 17) - 8);
    ASSERT_EQ(s[i], r0 + r1) << i;
    ASSERT_EQ(m[i], std::max(r0, r1)) << i;
  }
}

TEST_P(CommOps, AllReduceBf16OnNccl) {
  if (GetParam() == "cpu") GTEST_SKIP() << "mpi reduces F32 only";
  const size_t n = 64;
  std::vector<float> x(n);
  for (size_t i = 0; i < n; ++i) x[i] = static_cast<float>(i) * (f_->rank == 0 ? 1.0f : 0.5f);
  Buffer b = f_->upload(x, DType::BF16);
  f_->comm->all_reduce(Fixture::tensor(b, n, DType::BF16), ReduceOp::Sum);
  const auto got = f_->download(b, n, DType::BF16);
  for (size_t i = 0; i < n; ++i) ASSERT_EQ(got[i], 1.5f * static_cast<float>(i)) << i;
}

TEST_P(CommOps, ReduceScatter) {
  const size_t n = 5;
  std::vector<float> in(2 * n);
  for (size_t j = 0; j < in.size(); ++j) in[j] = static_cast<float>((f_->rank + 1) * (j + 1));
  Buffer bin = f_->upload(in), bout = f_->upload(std::vector<float>(n, -1.0f));
  f_->comm->reduce_scatter(Fixture::tensor(bout, n), Fixture::tensor(bin, 2 * n), ReduceOp::Sum);
  const auto out = f_->download(bout, n);
  for (size_t i = 0; i < n; ++i)
    EXPECT_EQ(out[i], 3.0f * static_cast<float>(f_->rank * n + i + 1)) << i;
}

TEST_P(CommOps, AllGatherOutOfPlaceAndInPlace) {
  const size_t n = 3;
  std::vector<float> mine(n);
  for (size_t i = 0; i < n; ++i) mine[i] = static_cast<float>(10 * f_->rank + i);
  std::vector<float> expected;
  for (int r = 0; r < 2; ++r)
    for (size_t i = 0; i < n; ++i) expected.push_back(static_cast<float>(10 * r + i));

  Buffer in = f_->upload(mine), out = f_->upload(std::vector<float>(2 * n, -1.0f));
  f_->comm->all_gather(Fixture::tensor(out, 2 * n), Fixture::tensor(in, n));
  EXPECT_EQ(f_->download(out, 2 * n), expected);

  std::vector<float> whole(2 * n, -1.0f);
  std::copy(mine.begin(), mine.end(), whole.begin() + f_->rank * n);
  Buffer in_place = f_->upload(whole);
  const Tensor all = Fixture::tensor(in_place, 2 * n);
  const Tensor block = all.reshaped(Shape{2, static_cast<int64_t>(n)}).rows(f_->rank, 1);
  f_->comm->all_gather(all, block.reshaped(Shape{static_cast<int64_t>(n)}));
  EXPECT_EQ(f_->download(in_place, 2 * n), expected);
}

TEST_P(CommOps, BroadcastFromEachRoot) {
  for (int root = 0; root < 2; ++root) {
    std::vector<float> x{static_cast<float>(100 * f_->rank), 1.0f + f_->rank};
    Buffer b = f_->upload(x);
    f_->comm->broadcast(Fixture::tensor(b, 2), root);
    EXPECT_EQ(f_->download(b, 2), (std::vector<float>{100.0f * root, 1.0f + root})) << root;
  }
}

TEST_P(CommOps, BarrierWaitsForTheSlowRank) {
  const auto t0 = std::chrono::steady_clock::now();
  if (f_->rank == 0) std::this_thread::sleep_for(std::chrono::milliseconds(400));
  f_->comm->barrier();
  if (f_->rank == 1) {
    EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(300));
  }
}

TEST_P(CommOps, OverlapRegionWithSeveralOps) {
  const size_t n = 8;
  std::vector<float> x(n, static_cast<float>(f_->rank + 1));
  Buffer a = f_->upload(x), b = f_->upload(x), in = f_->upload(x),
         out = f_->upload(std::vector<float>(2 * n, 0.0f)),
         rs = f_->upload(std::vector<float>(n / 2));
  f_->comm->begin_overlap();
  f_->comm->all_reduce(Fixture::tensor(a, n), ReduceOp::Sum);
  f_->comm->all_reduce(Fixture::tensor(b, n), ReduceOp::Max);
  f_->comm->all_gather(Fixture::tensor(out, 2 * n), Fixture::tensor(in, n));
  f_->comm->reduce_scatter(Fixture::tensor(rs, n / 2), Fixture::tensor(in, n), ReduceOp::Sum);
  f_->comm->end_overlap();
  EXPECT_EQ(f_->download(a, n), std::vector<float>(n, 3.0f));
  EXPECT_EQ(f_->download(b, n), std::vector<float>(n, 2.0f));
  std::vector<float> gathered(n, 1.0f);
  gathered.resize(2 * n, 2.0f);
  EXPECT_EQ(f_->download(out, 2 * n), gathered);
  EXPECT_EQ(f_->download(rs, n / 2), std::vector<float>(n / 2, 3.0f));
  EXPECT_THROW(f_->comm->end_overlap(), Error);  // no region open
}

TEST_P(CommOps, AllReduceHost) {
  std::vector<double> v{f_->rank + 1.5, -1.0 * f_->rank, 1e300};
  f_->comm->all_reduce_host(v, ReduceOp::Sum);
  EXPECT_EQ(v[0], 4.0);
  EXPECT_EQ(v[1], -1.0);
  EXPECT_EQ(v[2], 2e300);  // doubles stay doubles
  std::vector<double> m{f_->rank + 1.5, -1.0 * f_->rank};
  f_->comm->all_reduce_host(m, ReduceOp::Max);
  EXPECT_EQ(m, (std::vector<double>{2.5, 0.0}));
}

TEST_P(CommOps, AllGatherHostWithDifferentLengths) {
  const std::string mine = f_->rank == 0 ? std::string() : std::string("he\0llo!", 7);
  const auto all = f_->comm->all_gather_host(mine);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0], "");
  EXPECT_EQ(all[1], std::string("he\0llo!", 7));
  const auto again = f_->comm->all_gather_host(std::string(3 + 1000 * f_->rank, 'a' + f_->rank));
  EXPECT_EQ(again[0], "aaa");
  EXPECT_EQ(again[1], std::string(1003, 'b'));
}

INSTANTIATE_TEST_SUITE_P(Backends, CommOps, ::testing::Values("cpu", "cuda-emu"),
                         [](const auto& info) {
                           return info.param == "cpu" ? std::string("cpu") : "cuda_emu";
                         });

// Rank 1 skips an all_reduce that rank 0 calls: rank 0 gets an Error after its 1 s timeout.
// Then the ranks resynchronise: rank 1 makes the late all_reduce (which completes rank 0's
// abandoned request), so both exit cleanly through MPI_Finalize.
TEST(CommTimeout, AllReduceThatAPeerSkipsThrowsAfterTheTimeout) {
  Fixture f("cpu", /*timeout=*/1);
  ASSERT_EQ(f.world, 2);
  Buffer x = f.upload({static_cast<float>(f.rank + 1)});
  if (f.rank == 0) {
    const auto t0 = std::chrono::steady_clock::now();
    std::string message;
    try {
      f.comm->all_reduce(Fixture::tensor(x, 1), ReduceOp::Sum);
    } catch (const Error& e) {
      message = e.what();
    }
    const double waited =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_NE(message.find("rank 0 of 2: all_reduce did not complete within 1 s"),
              std::string::npos)
        << message;
    EXPECT_GE(waited, 0.9);
    EXPECT_LT(waited, 5.0);
  } else {
    std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  }
  MPI_Barrier(MPI_COMM_WORLD);  // rank 0 has given up by now
  if (f.rank == 1) {
    f.comm->all_reduce(Fixture::tensor(x, 1), ReduceOp::Sum);  // matches rank 0's abandoned one
    EXPECT_EQ(f.download(x, 1)[0], 3.0f);
  }
  f.comm->barrier();
  f.comm->barrier();
}

}  // namespace
}  // namespace smol
