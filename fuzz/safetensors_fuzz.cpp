// safetensors: SafetensorsFile::open, then every entry read as the loaders read them (read_f32
// for floats, read_i64 for integers; docs/formats.md §4).
#include "fuzz/fuzz_support.h"
#include "io/safetensors_io.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path =
      smol::fuzz::scratch().write("model.safetensors", smol::fuzz::as_text(data, size));
  smol::fuzz::run_parser([&] {
    const smol::SafetensorsFile file = smol::SafetensorsFile::open(path);
    for (const smol::SafetensorsEntry& entry : file.entries()) {
      smol::fuzz::run_parser([&] { (void)file.read_f32(entry.name); });
      smol::fuzz::run_parser([&] { (void)file.read_i32(entry.name); });
    }
  });
  return 0;
}
