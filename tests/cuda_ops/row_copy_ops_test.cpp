// scatter_rows / gather_rows (kernels/cuda/row_copy.cu) against cpu: bit for bit (rows are copied
// as bytes, no tolerance), on the 16-byte-word path (384-byte bf16 rows: a SmolLM2 KV row) and
// the byte path (odd widths, views starting off a 16-byte boundary), both pairs of one launch, and
// the device-checks error naming a bad index.
#include <gtest/gtest.h>

#include <cstring>

#include "cuda_ops_test_util.h"

namespace smol::test {
namespace {

// Raw bytes of a tensor (bit-exact comparison whatever the dtype).
std::vector<uint8_t> bytes_of(Backend& b, const Tensor& t) {
  std::vector<uint8_t> host(t.bytes());
  b.download(host.data(), t);
  return host;
}

struct RowCopyCase {
  const char* name;
  DType dtype;
  int64_t width;           // elements per row
  size_t view_offset = 0;  // bytes into the allocation where every view starts
};

class RowCopyOps : public CudaOpsTest, public ::testing::WithParamInterface<RowCopyCase> {};

TEST_P(RowCopyOps, ScatterAndGatherEqualCpuBitForBit) {
  const RowCopyCase c = GetParam();
  constexpr int64_t kRows = 37, kNew = 11;  // cache rows, new rows
  // Distinct destination rows in no particular order, as a ragged decode step writes them.
  const std::vector<int32_t> index{3, 36, 0, 17, 18, 19, 5, 30, 31, 12, 9};
  ASSERT_EQ(static_cast<int64_t>(index.size()), kNew);
  const size_t elem = dtype_size(c.dtype);
  auto make_rows = [&](Backend& b, int64_t rows, uint32_t seed) {
    Owned o;
    o.buffer = b.allocate(c.view_offset + static_cast<size_t>(rows * c.width) * elem);
    o.tensor = o.buffer.view(c.dtype, Shape{rows, c.width}, c.view_offset);
    std::vector<uint8_t> host(o.tensor.bytes());
    std::mt19937 rng(seed);
    for (uint8_t& x : host) x = static_cast<uint8_t>(rng());
    b.upload(o.tensor, host.data());
    return o;
  };
  auto run = [&](Backend& b) {
    Owned k_cache = make_rows(b, kRows, 1), v_cache = make_rows(b, kRows, 2);
    Owned k_new = make_rows(b, kNew, 3), v_new = make_rows(b, kNew, 4);
    Owned rows =
        make_tensor(b, std::vector<float>(index.begin(), index.end()), Shape{kNew}, DType::I32);
    const std::array<Backend::RowScatter, 2> pairs{
        Backend::RowScatter{k_cache.tensor, k_new.tensor},
        Backend::RowScatter{v_cache.tensor, v_new.tensor}};
    b.scatter_rows(pairs, rows.tensor);
    Owned gathered = make_rows(b, kNew, 5);
    b.gather_rows(gathered.tensor, v_cache.tensor, rows.tensor);
    return std::array{bytes_of(b, k_cache.tensor), bytes_of(b, v_cache.tensor),
                      bytes_of(b, gathered.tensor)};
  };
  const auto want = run(*cpu_), got = run(*dev_);
  EXPECT_EQ(got[0], want[0]) << c.name << ": keys after scatter_rows";
  EXPECT_EQ(got[1], want[1]) << c.name << ": values after scatter_rows";
  EXPECT_EQ(got[2], want[2]) << c.name << ": gather_rows";
  // gather_rows of scattered rows gives back the new rows: the two ops are inverse here.
  std::printf("[ max-err  ] %-48s exact\n", c.name);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, RowCopyOps,
    ::testing::Values(RowCopyCase{"bf16 384-byte rows (16-byte words)", DType::BF16, 192},
                      RowCopyCase{"f32 rows of 5 (bytes)", DType::F32, 5},
                      RowCopyCase{"bf16 rows off a 16-byte boundary", DType::BF16, 64, 2},
                      RowCopyCase{"i32 rows of 8", DType::I32, 8}),
    [](const auto& info) { return "case" + std::to_string(info.index); });

TEST_F(CudaOpsTest, RowCopyIndexOutsideTheRowsIsAnErrorWithDeviceChecks) {
  for (Backend* b : {cpu_.get(), dev_.get()}) {
    b->set_device_checks(true);
    Owned dst = make_tensor(*b, std::vector<float>(4 * 8, 0.0f), Shape{4, 8}, DType::F32);
    Owned src = make_tensor(*b, std::vector<float>(2 * 8, 1.0f), Shape{2, 8}, DType::F32);
    Owned rows = make_tensor(*b, {1.0f, 4.0f}, Shape{2}, DType::I32);
    const std::array<Backend::RowScatter, 1> pair{Backend::RowScatter{dst.tensor, src.tensor}};
    try {
      b->scatter_rows(pair, rows.tensor);
      ADD_FAILURE() << b->name() << ": an index of 4 into 4 rows was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("index[1] = 4 is outside [0, 4)"), std::string::npos)
          << b->name() << ": " << e.what();
    }
    // The contract is checked on the host for every backend: a src of the wrong width.
    Owned narrow = make_tensor(*b, std::vector<float>(2 * 7, 1.0f), Shape{2, 7}, DType::F32);
    EXPECT_THROW(b->gather_rows(narrow.tensor, dst.tensor, rows.tensor), Error);
  }
}

}  // namespace
}  // namespace smol::test
