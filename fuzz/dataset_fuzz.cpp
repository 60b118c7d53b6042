// Dataset files: read_dataset_file, which picks the JSON-array or the JSONL reader by content
// (docs/formats.md §6).
#include "data/dataset.h"
#include "fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path =
      smol::fuzz::scratch().write("rows.jsonl", smol::fuzz::as_text(data, size));
  smol::fuzz::run_parser([&] {
    const smol::Dataset dataset = smol::read_dataset_file(path);
    for (int64_t row = 0; row < dataset.size(); ++row) (void)dataset.where(row);
  });
  return 0;
}
