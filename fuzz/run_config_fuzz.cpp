// The YAML run config: parse_run_config_text (what load_run_config does after reading the file)
// with the `--set key=value` strings of the command line. Input: the YAML document, then one
// --set assignment per further part (fuzz/fuzz_support.h). to_yaml of an accepted config is
// parsed back too (the `config` command's round trip).
#include "engine/config/run_config.h"
#include "fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto parts = smol::fuzz::split_parts(data, size, 1);
  const std::vector<std::string> overrides(parts.begin() + 1, parts.end());
  smol::fuzz::run_parser([&] {
    const smol::RunConfig config = smol::parse_run_config_text(parts[0], "fuzz.yaml", overrides);
    (void)smol::parse_run_config_text(smol::to_yaml(config), "fuzz-roundtrip.yaml");
  });
  return 0;
}
