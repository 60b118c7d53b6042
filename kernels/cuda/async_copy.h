// Asynchronous global → shared copies (cp.async, sm_80+) for the flash-attention kernels
// (docs/design.md §2.5): a block issues the loads of its next tile, computes on the current one,
// and waits only when it needs the next, so memory latency hides behind tensor-core work.
// Under nvcc each call is one PTX instruction: cp.async.cg.shared.global (16 bytes, zero-fill
// when the source row does not exist), cp.async.commit_group, cp.async.wait_group N.
//
// Under cuda-emu the copies are emulated so that the two races the pattern invites show up as
// wrong results rather than passing by luck: a copy poisons its destination (0xFF bytes: NaN in
// bf16) when it is issued, and the data lands only when the thread's wait_group completes its
// group. A kernel that reads a tile before waiting for it (or before the barrier that publishes
// every thread's copies), or that issues a refill of a tile other warps are still reading, then
// reads NaN — on a GPU the same bug reads whatever happens to be there.
#pragma once

#include <cstdint>

#include "kernels/cuda/cuda_compat.h"

#if defined(SMOL_CUDA_EMU)
#include <cstring>
#include <vector>
#endif

namespace smol::SMOL_GPU_NS {

// One thread's outstanding cp.async groups. Declare one per thread in the kernel.
class AsyncCopies {
 public:
#if defined(SMOL_CUDA_EMU)
  // 16 bytes from `src` (16-byte aligned, global) to `dst` (16-byte aligned, shared); when
  // `exists` is false the 16 bytes become zeros and src is not read.
  void copy16(void* dst, const void* src, bool exists) {
    check_aligned16(dst);
    if (exists) check_aligned16(src);
    std::memset(dst, 0xFF, 16);
    open_.push_back(
        {static_cast<unsigned char*>(dst), static_cast<const unsigned char*>(src), exists});
  }
  void commit() {
    groups_.push_back(std::move(open_));
    open_.clear();
  }
  // Completes every committed group but the `kPending` most recent ones.
  template <int kPending>
  void wait() {
    while (static_cast<int>(groups_.size()) > kPending) {
      for (const Copy& c : groups_.front()) {
        if (c.exists)
          std::memcpy(c.dst, c.src, 16);
        else
          std::memset(c.dst, 0, 16);
      }
      groups_.erase(groups_.begin());
    }
  }

 private:
  struct Copy {
    unsigned char* dst;
    const unsigned char* src;
    bool exists;
  };
  std::vector<Copy> open_;
  std::vector<std::vector<Copy>> groups_;
#else
  __device__ __forceinline__ void copy16(void* dst, const void* src, bool exists) {
    const uint32_t shared = static_cast<uint32_t>(__cvta_generic_to_shared(dst));
    const int src_bytes = exists ? 16 : 0;  // fewer source bytes than 16: the rest are zeros
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(shared), "l"(src),
                 "r"(src_bytes)
                 : "memory");
  }
  __device__ __forceinline__ void commit() {
    asm volatile("cp.async.commit_group;\n" ::: "memory");
  }
  template <int kPending>
  __device__ __forceinline__ void wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");
  }
#endif
};

}  // namespace smol::SMOL_GPU_NS
