// Memory ops: allocation is zero-filled and 64-byte aligned, upload/download round-trip,
// copy (incl. F32 <-> BF16), fill_zero, axpy, scale.
#include <cstring>

#include "tests/kernels_cpu/test_util.h"

namespace smol::test {
namespace {

TEST(CpuMemory, AllocateIsZeroFilledAndAligned) {
  Device dev;
  for (size_t bytes : {1, 4, 63, 64, 100, 4096 + 12}) {
    Buffer buf = dev->allocate(bytes);
    ASSERT_NE(buf.data(), nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(buf.data()) % 64, 0u) << bytes;
    const auto* p = static_cast<const unsigned char*>(buf.data());
    for (size_t i = 0; i < bytes; ++i) ASSERT_EQ(p[i], 0) << "byte " << i << " of " << bytes;
  }
}

TEST(CpuMemory, UploadDownloadCopyFillZero) {
  Device dev;
  const auto host = random_floats(35, 7);
  Tensor a = dev.f32({5, 7}, host);
  EXPECT_EQ(dev.get(a), host);
  Tensor b = dev.zeros({5, 7});
  dev->copy(b, a);
  EXPECT_EQ(dev.get(b), host);
  dev->fill_zero(b);
  EXPECT_EQ(dev.get(b), std::vector<float>(35, 0.0f));
  Tensor wrong = dev.zeros({6, 7});
  EXPECT_THROW(dev->copy(wrong, a), Error);
}

TEST(CpuMemory, CopyCastsF32ToBf16RoundToNearestEven) {
  Device dev;
  // 1 + 2^-8 is halfway between bf16 neighbours 1 and 1 + 2^-7: ties to even -> 1.
  // 1 + 3·2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: ties to even -> 1 + 2^-6.
  const std::vector<float> host{1.0f + 1.0f / 256, 1.0f + 3.0f / 256, -2.5f, 0.0f};
  Tensor f = dev.f32({4}, host);
  Tensor h = dev.zeros({4}, DType::BF16);
  dev->copy(h, f);
  Tensor back = dev.zeros({4});
  dev->copy(back, h);
  EXPECT_EQ(dev.get(back), (std::vector<float>{1.0f, 1.0f + 1.0f / 64, -2.5f, 0.0f}));
}

TEST(CpuMemory, AxpyAndScale) {
  Device dev;
  Tensor y = dev.f32({3}, {1, 2, 3});
  Tensor x = dev.f32({3}, {10, 20, 30});
  dev->axpy(y, x, 0.5f);
  EXPECT_EQ(dev.get(y), (std::vector<float>{6, 12, 18}));
  dev->scale(y, -2.0f);
  EXPECT_EQ(dev.get(y), (std::vector<float>{-12, -24, -36}));
  Tensor z = dev.zeros({4});
  EXPECT_THROW(dev->axpy(z, x, 1.0f), Error);
}

}  // namespace
}  // namespace smol::test
