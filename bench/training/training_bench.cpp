// training_bench: tokens/s of one full optimizer step (forward + backward over the rows,
// global-norm clip, AdamW, schedule) on the cpu backend at SmolLM2-135M shape with random
// weights, for LoRA r=8 on q,v and for full fine-tuning.
//   training_bench [--rows N] [--length L] [--steps S] [--device D] [--mode lora|full|both]
// Default 4 × 512 tokens, 2 timed steps after one warm-up step.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "common/error.h"
#include "engine/lr_schedule.h"
#include "engine/optimizer.h"
#include "engine/train_step.h"
#include "model/random_init.h"

namespace {

void bench(smol::Backend& backend, smol::TrainMode mode, int rows, int length, int steps) {
  const smol::LlamaConfig config = smol::smollm2_135m_config();
  std::optional<smol::LoraSettings> lora;
  if (mode == smol::TrainMode::Lora) lora = smol::LoraSettings{};  // r 8, α 16, q and v
  smol::LlamaModel model(backend, config, mode, lora);
  model.init_random(42);
  smol::AdamWSettings settings;
  settings.weight_decay = 0.01;
  smol::AdamW optimizer(backend, model.trainable_params(), settings);
  const smol::LrSchedule schedule(smol::LrScheduleKind::Cosine, 2e-4, steps + 1, 0);
  smol::SeededRng rng(7);
  std::vector<smol::TokenRow> batch(rows);
  for (smol::TokenRow& row : batch) {
    for (int t = 0; t < length; ++t)
      row.input_ids.push_back(static_cast<int32_t>(rng.next_u64() % config.vocab_size));
    row.labels = row.input_ids;
    for (int t = 0; t < length / 4; ++t) row.labels[t] = -100;  // a masked prompt quarter
  }
  int64_t trainable = 0;
  for (const auto& p : model.trainable_params()) trainable += p.value.numel();
  smol::train_step(model, optimizer, schedule, {batch}, 0);  // warm-up: buffers, caches
  backend.synchronize();
  const auto start = std::chrono::steady_clock::now();
  for (int s = 0; s < steps; ++s) smol::train_step(model, optimizer, schedule, {batch}, s + 1);
  backend.synchronize();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / steps;
  std::printf("%-5s %-10s trainable %11lld  batch %d x %d  step %8.3f s  %10.1f tokens/s\n",
              mode == smol::TrainMode::Lora ? "lora" : "full", backend.name().c_str(),
              static_cast<long long>(trainable), rows, length, seconds, rows * length / seconds);
}

}  // namespace

int main(int argc, char** argv) {
  int rows = 4, length = 512, steps = 2;
  std::string device = "cpu", mode = "both";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i], value = argv[i + 1];
    if (key == "--rows")
      rows = std::atoi(value.c_str());
    else if (key == "--length")
      length = std::atoi(value.c_str());
    else if (key == "--steps")
      steps = std::atoi(value.c_str());
    else if (key == "--device")
      device = value;
    else if (key == "--mode")
      mode = value;
    else {
      std::fprintf(stderr, "unknown option %s\n", key.c_str());
      return 2;
    }
  }
  try {
    auto backend = smol::make_backend(device);
    if (mode == "lora" || mode == "both")
      bench(*backend, smol::TrainMode::Lora, rows, length, steps);
    if (mode == "full" || mode == "both")
      bench(*backend, smol::TrainMode::Full, rows, length, steps);
  } catch (const smol::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
