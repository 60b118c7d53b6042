// The peak a cuda benchmark's achieved numbers are set against (issue 12 item 5a): dense bf16
// tensor-core FLOP/s and HBM bandwidth of the device found at run time, so every line of
// cuda_kernels_bench can say "% of peak" (docs/design.md §2.5, §2.6 use the same numbers).
//
// Known parts come from a small table of vendor figures (dense, no sparsity):
//   H100 SXM   989 TFLOP/s  3.35 TB/s        H100 PCIe  756 TFLOP/s  2.0 TB/s
//   H200       989 TFLOP/s  4.8 TB/s
// matched by the device name and SM count. For any other part the bandwidth is derived from
// the memory clock and bus width attributes (2 transfers per clock: HBM and GDDR are double
// data rate) and no compute peak is claimed (0: the "% of peak" counter is then 0, meaning
// unknown, not idle).
#pragma once

#include <string>

namespace smol::bench {

struct DevicePeak {
  std::string name;                  // the device's name, or why there is none
  int sm_count = 0;                  // multiprocessors
  double sm_clock_ghz = 0;           // peak SM clock
  double tensor_flops = 0;           // dense bf16 tensor-core FLOP/s; 0 = unknown
  double hbm_bytes_per_s = 0;        // from the table, else from the memory attributes; 0 = unknown
  double attribute_bytes_per_s = 0;  // memory clock × bus width × 2, as a cross-check
  std::string source;                // "table: H100 SXM", "memory attributes", or "none"
};

// The peaks of CUDA device `ordinal`, queried through the CUDA runtime. Without a driver or a
// device (cuda-emu, a CPU-only machine) every number is 0 and `name` says why.
DevicePeak query_device_peak(int ordinal);

// One line for the benchmark's context: name, SMs, clock and both peaks with their source.
std::string describe(const DevicePeak& peak);

}  // namespace smol::bench
