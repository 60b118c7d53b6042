// PEFT adapter directories: read_peft_adapter on adapter_config.json + adapter_model.safetensors
// (the input's two parts, fuzz/fuzz_support.h), as `--adapter` and checkpoint export read them.
#include "fuzz/fuzz_support.h"
#include "io/peft_adapter.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto parts = smol::fuzz::split_parts(data, size, 2);
  const auto& dir = smol::fuzz::scratch();
  dir.write("adapter_config.json", parts[0]);
  dir.write("adapter_model.safetensors", parts[1]);
  smol::fuzz::run_parser([&] { (void)smol::read_peft_adapter(dir.path()); });
  return 0;
}
