// Shared by model_device_tests: the device under test (SMOL_TEST_DEVICE, default cuda-emu) and
// a backend for it, or null when this build or machine does not have it (tests then skip).
#pragma once

#include <cstdlib>
#include <memory>
#include <string>

#include "kernels/backend.h"

namespace smol::test {

inline std::string device_under_test() {
  const char* env = std::getenv("SMOL_TEST_DEVICE");
  return env && *env ? env : "cuda-emu";
}

// The backend `name`, or null when this build does not have it.
inline std::unique_ptr<Backend> backend_if_built(const std::string& name) {
  try {
    return make_backend(name);
  } catch (const Error&) {
    return nullptr;
  }
}

inline std::unique_ptr<Backend> device_backend() {
  return backend_if_built(device_under_test());
}

}  // namespace smol::test
