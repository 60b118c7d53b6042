// decode_bench: inference speed of the real GGUF on cpu with fp32 vs quantised weights
// (docs/cpu-speed.md "Quantised inference"), against the machine's streaming read bandwidth.
//   bandwidth   Σ over a 512 MB buffer (≫ L3) with the OpenMP threads, best of 5 passes
//   prefill     a 43-token and a 512-token prompt through decode() (KV cache), tokens/s
//   decode      greedy steps (decode_greedy, as `generate`) for batch 1, 4 and 16: tokens/s of
//               all sequences together, the weight bytes each step reads, and
//               tokens/s × bytes/token as a share of the bandwidth
// Timings: best of --repeats runs. With --profile, decode's time by op (OpTimer).
//   decode_bench [--model GGUF] [--steps N] [--repeats N] [--profile]
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "common/error.h"
#include "io/model_loader.h"
#include "kernels/backend.h"
#include "model/llama_model.h"
#include "op_timer.h"

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::vector<int32_t> tokens(size_t n, uint32_t salt) {
  std::vector<int32_t> ids(n);
  for (size_t i = 0; i < n; ++i)
    ids[i] = static_cast<int32_t>((i * 2654435761u + salt) % 49000) + 17;
  return ids;
}

// Streaming read bandwidth, bytes/s: a reduction over a buffer far larger than the caches.
double read_bandwidth() {
  const size_t n = (size_t{512} << 20) / sizeof(float);
  std::vector<float> buffer(n);
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; ++i) buffer[i] = static_cast<float>(i & 7);
  double best = 0;
  volatile float sink = 0;
  for (int pass = 0; pass < 5; ++pass) {
    const auto t = Clock::now();
    float sum = 0;
#pragma omp parallel for schedule(static) reduction(+ : sum)
    for (size_t i = 0; i < n; ++i) sum += buffer[i];
    best = std::max(best, n * sizeof(float) / since(t));
    sink = sink + sum;
  }
  return best;
}

// Bytes of weights one forward step reads: the 7 projections and the LM head (the embedding
// lookup and the norms are a few KB).
double weight_bytes(const smol::LoadedModel& m) {
  double bytes = 0;
  auto add = [&](const std::string& name) {
    if (auto q = m.quantized.find(name); q != m.quantized.end())
      bytes += static_cast<double>(q->second.matrix().bytes());
    else if (auto w = m.weights.find(name); w != m.weights.end())
      bytes += 4.0 * static_cast<double>(w->second.shape.numel());
  };
  for (const auto& [name, shape] : smol::expected_llama_tensors(m.config))
    if (shape.rank == 2 && name != "model.embed_tokens.weight") add(name);
  add(m.config.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight");
  return bytes;
}

struct Options {
  std::string model = std::string(SMOL_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
  int steps = 32, repeats = 3;
  bool profile = false;
};

void run(const Options& o, bool quantized, double bandwidth) {
  const smol::LoadedModel loaded = smol::load_model(o.model, smol::LoadOptions{quantized});
  auto backend = smol::make_backend("cpu");
  smol::LlamaModel model(*backend, loaded.config, smol::TrainMode::Frozen, std::nullopt,
                         &loaded.quantized);
  model.load_weights(loaded.weights);
  const double bytes = weight_bytes(loaded);
  const char* kind = quantized ? "quantized" : "fp32";
  auto row = [&](const std::string& what, double tokens_per_s, double bytes_per_token) {
    std::printf("| %-9s | %-28s | %10.1f |", kind, what.c_str(), tokens_per_s);
    if (bytes_per_token > 0)
      std::printf(" %9.1f | %6.1f%% |\n", bytes_per_token / 1e6,
                  100 * tokens_per_s * bytes_per_token / bandwidth);
    else
      std::printf(" %9s | %7s |\n", "", "");
    std::fflush(stdout);
  };
  for (int length : {43, 512}) {
    double best = 0;
    for (int r = 0; r < o.repeats; ++r) {
      model.reset_cache(1, length + 1);
      const auto t = Clock::now();
      model.decode_greedy({0}, {tokens(static_cast<size_t>(length), 5)});
      best = std::max(best, length / since(t));
    }
    row("prefill " + std::to_string(length) + " tokens", best, 0);
  }
  for (int batch : {1, 4, 16}) {
    const int prompt = 32;
    double best = 0;
    smol::OpTimer* timer = nullptr;
    for (int r = 0; r < o.repeats; ++r) {
      model.reset_cache(batch, prompt + o.steps + 1);
      std::vector<int32_t> slots;
      std::vector<std::vector<int32_t>> next;
      for (int b = 0; b < batch; ++b) slots.push_back(b), next.push_back(tokens(prompt, b));
      std::vector<int32_t> ids = model.decode_greedy(slots, next);
      if (o.profile && batch == 1 && r == o.repeats - 1) timer = new smol::OpTimer(*backend);
      const auto t = Clock::now();
      for (int step = 0; step < o.steps; ++step) {
        for (int b = 0; b < batch; ++b) next[b] = {ids[b]};
        ids = model.decode_greedy(slots, next);
      }
      const double s = since(t);
      if (!timer) best = std::max(best, batch * o.steps / s);
      if (timer) {
        std::printf("|           | decode op profile (batch 1):");
        for (const auto& [op, sec] : timer->seconds)
          std::printf(" %s %.1f%%", op.c_str(), 100 * sec / s);
        std::printf("\n");
        delete timer;
        timer = nullptr;
      }
    }
    row("decode batch " + std::to_string(batch), best, bytes / batch);
  }
}

}  // namespace

int main(int argc, char** argv) try {
  Options o;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--model") && i + 1 < argc)
      o.model = argv[++i];
    else if (!std::strcmp(argv[i], "--steps") && i + 1 < argc)
      o.steps = std::max(1, std::atoi(argv[++i]));
    else if (!std::strcmp(argv[i], "--repeats") && i + 1 < argc)
      o.repeats = std::max(1, std::atoi(argv[++i]));
    else if (!std::strcmp(argv[i], "--profile"))
      o.profile = true;
    else
      smol::throw_error("unknown argument '", argv[i],
                        "' (decode_bench [--model GGUF] [--steps N] [--repeats N] [--profile])");
  }
  SMOL_CHECK(std::ifstream(o.model).good(), o.model,
             ": no such model (scripts/fetch-model.sh fetches the Q4_1 SmolLM2 GGUF)");
  const double bandwidth = read_bandwidth();
  std::printf("decode_bench: %s, %d OpenMP threads, best of %d runs, %d decode steps\n",
              o.model.c_str(), omp_get_max_threads(), o.repeats, o.steps);
  std::printf("streaming read bandwidth: %.1f GB/s (512 MB buffer)\n\n", bandwidth / 1e9);
  std::printf("| %-9s | %-28s | %10s | %9s | %7s |\n", "weights", "phase", "tokens/s", "MB/token",
              "% BW");
  std::printf("|-----------|------------------------------|------------|-----------|---------|\n");
  run(o, false, bandwidth);
  run(o, true, bandwidth);
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "decode_bench: error: %s\n", e.what());
  return 1;
}
