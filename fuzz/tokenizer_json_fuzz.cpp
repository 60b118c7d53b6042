// tokenizer.json (+ tokenizer_config.json beside it): load_tokenizer on the file, as every
// command that reads text does, then one encode and decode. Input: tokenizer.json, and after
// a part separator (fuzz/fuzz_support.h) an optional tokenizer_config.json.
#include "fuzz/fuzz_support.h"
#include "io/tokenizer_loader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto parts = smol::fuzz::split_parts(data, size, 2);
  const auto& dir = smol::fuzz::scratch();
  const std::string path = dir.write("tokenizer.json", parts[0]);
  if (parts.size() > 1 && !parts[1].empty())
    dir.write("tokenizer_config.json", parts[1]);
  else
    dir.remove("tokenizer_config.json");
  smol::fuzz::run_parser([&] {
    const auto tokenizer = smol::load_tokenizer(path);
    const std::vector<int32_t> ids = tokenizer->encode("Hi 12 <|im_start|>user\n\xc3\xa9!");
    (void)tokenizer->decode(ids);
  });
  return 0;
}
