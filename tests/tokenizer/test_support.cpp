// The SmolLM2 tokenizer, loaded once per test binary through the weights engineer's GGUF
// reader (io/gguf_tokenizer.h) — tests never parse GGUF themselves.
#include "tests/tokenizer/test_support.h"

#include "io/gguf_reader.h"
#include "io/gguf_tokenizer.h"

namespace smol::test {

const BpeSpec* smollm_spec() {
  static const std::unique_ptr<BpeSpec> spec = []() -> std::unique_ptr<BpeSpec> {
    if (!std::filesystem::exists(gguf_path())) return nullptr;
    return std::make_unique<BpeSpec>(bpe_spec_from_gguf(GgufFile::open(gguf_path().string())));
  }();
  return spec.get();
}

const BpeTokenizer* smollm_tokenizer() {
  static const std::unique_ptr<BpeTokenizer> tokenizer = []() -> std::unique_ptr<BpeTokenizer> {
    const BpeSpec* spec = smollm_spec();
    if (spec == nullptr) return nullptr;
    return std::make_unique<BpeTokenizer>(*spec, gguf_path().string());
  }();
  return tokenizer.get();
}

}  // namespace smol::test
