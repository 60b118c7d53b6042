// GGUF: GgufFile::open as the engine calls it (a mapped file), then what the loader and the
// tokenizer read from it: load_model (config, tensor checks, dequantisation) and the BPE
// tokenizer built from tokenizer.ggml.* (docs/formats.md §3).
#include "data/bpe_tokenizer.h"
#include "fuzz/fuzz_support.h"
#include "io/gguf_reader.h"
#include "io/gguf_tokenizer.h"
#include "io/model_loader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path =
      smol::fuzz::scratch().write("model.gguf", smol::fuzz::as_text(data, size));
  smol::fuzz::run_parser([&] {
    const smol::GgufFile gguf = smol::GgufFile::open(path);
    for (const auto& [key, value] : gguf.metadata())
      if (value.type == smol::GgufType::Array && value.element_type != smol::GgufType::String &&
          value.element_type != smol::GgufType::Array && value.count > 0)
        (void)value.float_at(value.count - 1);
    if (smol::gguf_has_tokenizer(gguf)) {
      const smol::BpeTokenizer tokenizer(smol::bpe_spec_from_gguf(gguf), path);
      (void)tokenizer.encode("Hello 123 <|im_start|>");
    }
  });
  smol::fuzz::run_parser([&] { (void)smol::load_model(path); });
  return 0;
}
