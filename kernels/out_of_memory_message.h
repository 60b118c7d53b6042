// The message a failed device allocation ends the run with (docs/design.md §9): what was asked
// for, what the device had free, and the config keys that shrink a step's memory, so that an
// out-of-memory names its cure instead of only "out of memory". Used by the cuda and cuda-emu
// allocators (kernels/cuda/cuda_backend.cu); plain C++ so the cpu build tests it.
#pragma once

#include <cstddef>
#include <cstdio>
#include <string>

namespace smol {

// "1.50 GiB", "12.0 MiB", "512 bytes".
inline std::string format_bytes(std::size_t bytes) {
  char text[32];
  const double b = static_cast<double>(bytes);
  if (bytes >= (std::size_t{1} << 30))
    std::snprintf(text, sizeof(text), "%.2f GiB", b / (1u << 30));
  else if (bytes >= (std::size_t{1} << 20))
    std::snprintf(text, sizeof(text), "%.1f MiB", b / (1u << 20));
  else
    std::snprintf(text, sizeof(text), "%zu bytes", bytes);
  return text;
}

// `device` names the device ("cuda:0"); `what` the allocation ("a tensor", "scratch");
// free_bytes / total_bytes as cudaMemGetInfo reported them after the failure.
inline std::string out_of_memory_message(const std::string& device, const std::string& what,
                                         std::size_t requested_bytes, std::size_t free_bytes,
                                         std::size_t total_bytes, const std::string& reason) {
  return device + ": out of device memory allocating " + what + " of " +
         format_bytes(requested_bytes) + " (" + std::to_string(requested_bytes) + " bytes) with " +
         format_bytes(free_bytes) + " free of " + format_bytes(total_bytes) + " (" + reason +
         "); to need less, lower training.per_device_train_batch_size (raise "
         "training.gradient_accumulation_steps to keep the batch), dataset.max_length, or "
         "evaluation.batch_size / training.per_device_eval_batch_size when it happens during "
         "evaluation";
}

}  // namespace smol
