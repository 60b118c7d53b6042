// Device peaks for cuda_kernels_bench (device_peak.h): the CUDA runtime's properties and
// attributes, then the table of known parts.
#include "bench/cuda/device_peak.h"

#include <cuda_runtime.h>

#include <cstdio>
#include <string_view>

namespace smol::bench {
namespace {

bool contains(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

struct KnownPart {
  const char* label;
  double tensor_tflops, hbm_tb_per_s;
};

// Vendor datasheet figures, dense bf16 (H100 SXM5: 989.4 TFLOP/s, HBM3 3.35 TB/s; H100 PCIe:
// 756 TFLOP/s, HBM2e 2.0 TB/s; H200 SXM: 989 TFLOP/s, HBM3e 4.8 TB/s). The name alone is not
// enough for an H100 (the SXM part reports "NVIDIA H100 80GB HBM3"), so the SM count (132 on
// SXM and H200, 114 on PCIe) must agree too; NVL variants (other clocks) stay unknown.
const KnownPart* known_part(std::string_view name, int sms) {
  static const KnownPart h100_sxm{"H100 SXM", 989.0, 3.35};
  static const KnownPart h100_pcie{"H100 PCIe", 756.0, 2.0};
  static const KnownPart h200{"H200", 989.0, 4.8};
  if (contains(name, "NVL")) return nullptr;
  if (contains(name, "H200") && sms == 132) return &h200;
  if (contains(name, "H100") && contains(name, "PCIe") && sms == 114) return &h100_pcie;
  if (contains(name, "H100") && (contains(name, "HBM3") || contains(name, "SXM")) && sms == 132)
    return &h100_sxm;
  return nullptr;
}

int attribute(cudaDeviceAttr attr, int ordinal) {
  int value = 0;
  return cudaDeviceGetAttribute(&value, attr, ordinal) == cudaSuccess ? value : 0;
}

}  // namespace

DevicePeak query_device_peak(int ordinal) {
  DevicePeak peak;
  peak.source = "none";
  cudaDeviceProp prop{};
  const cudaError_t status = cudaGetDeviceProperties(&prop, ordinal);
  if (status != cudaSuccess) {
    (void)cudaGetLastError();
    peak.name = std::string("no CUDA device ") + std::to_string(ordinal) + " (" +
                cudaGetErrorString(status) + ")";
    return peak;
  }
  peak.name = prop.name;
  peak.sm_count = prop.multiProcessorCount;
  // Clocks are attributes since CUDA 13 removed them from cudaDeviceProp (kHz).
  peak.sm_clock_ghz = attribute(cudaDevAttrClockRate, ordinal) * 1e-6;
  const double memory_khz = attribute(cudaDevAttrMemoryClockRate, ordinal);
  const double bus_bits = attribute(cudaDevAttrGlobalMemoryBusWidth, ordinal);
  peak.attribute_bytes_per_s = 2.0 * memory_khz * 1e3 * bus_bits / 8.0;
  if (const KnownPart* part = known_part(peak.name, peak.sm_count)) {
    peak.tensor_flops = part->tensor_tflops * 1e12;
    peak.hbm_bytes_per_s = part->hbm_tb_per_s * 1e12;
    peak.source = std::string("table: ") + part->label;
  } else if (peak.attribute_bytes_per_s > 0) {
    peak.hbm_bytes_per_s = peak.attribute_bytes_per_s;
    peak.source = "memory attributes (no compute peak known for this part)";
  }
  return peak;
}

std::string describe(const DevicePeak& peak) {
  char line[512];
  std::snprintf(line, sizeof line,
                "%s, %d SMs at %.2f GHz; peak %.0f TFLOP/s dense bf16, %.2f TB/s HBM (%s; "
                "memory clock x bus width gives %.2f TB/s); 0 = unknown",
                peak.name.c_str(), peak.sm_count, peak.sm_clock_ghz, peak.tensor_flops / 1e12,
                peak.hbm_bytes_per_s / 1e12, peak.source.c_str(),
                peak.attribute_bytes_per_s / 1e12);
  return line;
}

}  // namespace smol::bench
