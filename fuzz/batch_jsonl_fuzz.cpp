// Micro-batch JSON lines (engine/batch_jsonl.h): read_token_rows_jsonl with SmolLM2's vocabulary.
#include "engine/batch_jsonl.h"
#include "fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path =
      smol::fuzz::scratch().write("batch.jsonl", smol::fuzz::as_text(data, size));
  smol::fuzz::run_parser([&] { (void)smol::read_token_rows_jsonl(path, 49152); });
  return 0;
}
