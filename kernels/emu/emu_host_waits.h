// The emulated device's count of host waits, for tests that hold a training step to a budget
// (no CUDA headers needed to read it).
//
// A host wait is a call after which the host would sit idle until the device catches up on a
// GPU: cudaStreamSynchronize, cudaDeviceSynchronize, cudaEventSynchronize, a synchronous
// cudaMemcpy touching host memory, a cudaMemcpyAsync whose host side is pageable (not from
// cudaMallocHost: the CUDA runtime synchronises for it), and cudaFree (which synchronises the
// device). The emulator runs every kernel at once, so it only counts them.
#pragma once

#include <cstdint>

namespace smol::emu {

struct HostWaitCounts {
  uint64_t stream_sync = 0, device_sync = 0, event_sync = 0, memcpy_sync = 0, free_sync = 0;
  uint64_t total() const {
    return stream_sync + device_sync + event_sync + memcpy_sync + free_sync;
  }
};
// Counts since the process started (never reset: take differences).
HostWaitCounts host_wait_counts();

}  // namespace smol::emu
