// model_bench: CPU throughput of LlamaModel at SmolLM2-135M shape (docs/formats.md §1).
//   prefill  one 256-token prompt through decode() (KV cache), tokens/s
//   decode   64 greedy steps for 1 and for 8 sequences, tokens/s (all sequences together)
//   train    forward_backward at 4 × 512 tokens, every token supervised: LoRA r=8 on q,v and
//            full fine-tuning (model only: the optimizer is bench/training's concern)
// Each row also shows the share of wall time spent in matmuls (OpTimer, an OpHook that
// synchronises after each op, which costs nothing on cpu). Weights: the real GGUF when present
// (--model PATH, default models/SmolLM2-135M-Instruct.Q4_1.gguf), else init_random.
//   model_bench [--model PATH] [--quick] [--device D]
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "bench_clock.h"
#include "common/error.h"
#include "io/model_loader.h"
#include "model/llama_model.h"
#include "op_timer.h"

namespace {

using smol::bench::Clock;
using smol::bench::since;
using smol::bench::tokens;

struct Row {
  std::string what;
  double tokens, seconds, matmul_share;
};

void print(const Row& r) {
  std::printf("| %-38s | %8.0f | %8.3f | %10.1f | %6.1f%% |\n", r.what.c_str(), r.tokens, r.seconds,
              r.tokens / r.seconds, 100 * r.matmul_share);
  std::fflush(stdout);
}

double matmul_share(const smol::OpTimer& t, double total) {
  auto it = t.seconds.find("matmul");
  return it == t.seconds.end() ? 0 : it->second / total;
}

}  // namespace

int main(int argc, char** argv) try {
  std::string model_path = std::string(SMOL_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
  std::string device = "cpu";
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--model") && i + 1 < argc)
      model_path = argv[++i];
    else if (!std::strcmp(argv[i], "--device") && i + 1 < argc)
      device = argv[++i];
    else if (!std::strcmp(argv[i], "--quick"))
      quick = true;
    else
      smol::throw_error("unknown argument '", argv[i],
                        "' (model_bench [--model PATH] [--quick] [--device D])");
  }
  auto owned = smol::make_backend(device);
  smol::Backend& backend = *owned;
  smol::OpTimer timer(backend);
  smol::LlamaConfig config = smol::smollm2_135m_config();
  smol::HostTensorMap weights;
  std::string source = "random weights (init_random)";
  if (std::ifstream(model_path).good()) {
    smol::LoadedModel loaded = smol::load_model(model_path);
    config = loaded.config;
    weights = std::move(loaded.weights);
    source = model_path;
  }
  std::printf("model_bench: SmolLM2-135M shape, %s, device %s\n\n", source.c_str(),
              backend.name().c_str());
  std::printf("| %-38s | %8s | %8s | %10s | %7s |\n", "phase", "tokens", "seconds", "tokens/s",
              "matmul");
  std::printf("|%s|%s|%s|%s|%s|\n", std::string(40, '-').c_str(), std::string(10, '-').c_str(),
              std::string(10, '-').c_str(), std::string(12, '-').c_str(),
              std::string(9, '-').c_str());
  {
    smol::LlamaModel model(backend, config, smol::TrainMode::Frozen);
    if (weights.empty())
      model.init_random(1);
    else
      model.load_weights(weights);
    const int steps = quick ? 16 : 64;
    for (int batch : {1, 8}) {
      model.reset_cache(batch, 256 + steps + 1);
      std::vector<int32_t> slots;
      std::vector<std::vector<int32_t>> prompts;
      for (int b = 0; b < batch; ++b) slots.push_back(b), prompts.push_back(tokens(256, b));
      if (batch == 1) model.decode(slots, {tokens(8, 99)}), model.truncate_cache(0, 0);  // warm-up
      timer.clear();
      auto t = Clock::now();
      std::vector<float> logits = model.decode(slots, prompts);
      double s = since(t);
      print({"prefill " + std::to_string(batch) + " x 256 (KV cache)", 256.0 * batch, s,
             matmul_share(timer, s)});
      timer.clear();
      t = Clock::now();
      for (int step = 0; step < steps; ++step) {
        std::vector<std::vector<int32_t>> next;
        for (int b = 0; b < batch; ++b)
          next.push_back({static_cast<int32_t>((step * 131 + b) % 49152)});
        logits = model.decode(slots, next);
      }
      s = since(t);
      print({"decode " + std::to_string(batch) + " seq x " + std::to_string(steps) +
                 " steps (ctx 256+)",
             double(batch) * steps, s, matmul_share(timer, s)});
    }
  }
  std::vector<smol::TokenRow> rows;
  for (int r = 0; r < 4; ++r) {
    const std::vector<int32_t> ids = tokens(512, 1000 + r);
    rows.push_back({ids, ids});
  }
  const int timed_steps = quick ? 1 : 2;
  for (smol::TrainMode mode : {smol::TrainMode::Lora, smol::TrainMode::Full}) {
    std::optional<smol::LoraSettings> lora;
    if (mode == smol::TrainMode::Lora) lora = smol::LoraSettings{};  // r 8, α 16, q_proj v_proj
    smol::LlamaModel model(backend, config, mode, lora);
    if (weights.empty())
      model.init_random(1);
    else
      model.load_weights(weights);
    model.zero_grads();
    model.forward_backward(rows, 1.0f / 2044, 0, true);  // warm-up: allocates activations
    timer.clear();
    const auto t = Clock::now();
    for (int i = 0; i < timed_steps; ++i) model.forward_backward(rows, 1.0f / 2044, i + 1, true);
    const double s = since(t);
    print({std::string(mode == smol::TrainMode::Lora ? "train fwd+bwd LoRA r8 q,v"
                                                     : "train fwd+bwd full FT") +
               " 4x512",
           4.0 * 512 * timed_steps, s, matmul_share(timer, s)});
    if (mode == smol::TrainMode::Full) {
      std::printf("\nfull FT step time by op:");
      for (const auto& [op, sec] : timer.seconds)
        std::printf(" %s %.0f%%", op.c_str(), 100 * sec / s);
      std::printf("\n");
    }
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "model_bench: error: %s\n", e.what());
  return 1;
}
