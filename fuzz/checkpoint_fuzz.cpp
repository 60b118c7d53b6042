// Checkpoint directories: load_checkpoint, as `--resume` and `eval --checkpoint` call it, on a
// directory assembled from the input's parts (fuzz/fuzz_support.h): training_state.safetensors,
// trainer_state.json and, when present, model.safetensors (full fine-tuning).
#include "engine/train/checkpoint.h"
#include "fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto parts = smol::fuzz::split_parts(data, size, 3);
  const auto& dir = smol::fuzz::scratch();
  dir.write("training_state.safetensors", parts[0]);
  dir.write("trainer_state.json", parts[1]);
  if (!parts[2].empty())
    dir.write("model.safetensors", parts[2]);
  else
    dir.remove("model.safetensors");
  smol::fuzz::run_parser([&] { (void)smol::load_checkpoint(dir.path(), true); });
  return 0;
}
