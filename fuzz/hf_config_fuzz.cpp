// HF config.json: read_hf_config_file, as the model loader reads a model directory's config
// (docs/formats.md §1), then the parameter count the engine prints from it.
#include "fuzz/fuzz_support.h"
#include "io/hf_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path =
      smol::fuzz::scratch().write("config.json", smol::fuzz::as_text(data, size));
  smol::fuzz::run_parser([&] {
    const smol::LlamaConfig config = smol::read_hf_config_file(path);
    (void)config.num_parameters();
    (void)smol::llama_config_to_hf_json(config).dump();
  });
  return 0;
}
