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

inline std::unique_ptr<Backend> device_backend() {
  try {
    return make_backend(device_under_test());
  } catch (const Error&) {
    return nullptr;
  }
}

}  // namespace smol::test
