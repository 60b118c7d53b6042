// sentencepiece .model (a protobuf): SentencePieceTokenizer, as load_tokenizer builds it for a
// .model file, then one encode and decode.
#include "data/sentencepiece_tokenizer.h"
#include "fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path =
      smol::fuzz::scratch().write("tokenizer.model", smol::fuzz::as_text(data, size));
  smol::fuzz::run_parser([&] {
    const smol::SentencePieceTokenizer tokenizer(path);
    const std::vector<int32_t> ids = tokenizer.encode("Hi 12 <s> \xc3\xa9!");
    (void)tokenizer.decode(ids);
  });
  return 0;
}
