// decode_bench: inference speed of the real GGUF on cpu with fp32 vs quantised weights
// (docs/cpu-speed.md "Quantised inference"), against the machine's streaming read bandwidth.
//   bandwidth   Σ over a 512 MB buffer (≫ L3) with the OpenMP threads, best of 5 passes
//   prefill     a 43-token and a 512-token prompt through decode() (KV cache), tokens/s
//   decode      greedy steps (decode_greedy, as `generate`) for batch 1, 4 and 16: tokens/s of
//               all sequences together, the weight bytes each step reads, and
//               tokens/s × bytes/token as a share of the bandwidth
// Timings: best of --repeats runs. With --profile, decode's time by op (OpTimer).
// With --kernels instead: the quantised matmul's two methods against dense sgemm, by T.
// With --paired N instead: N rounds of (bandwidth pass, quantised batch-1 decode), the share of
// the bandwidth per round and its median (run_paired).
// With --device D (cuda, cuda-emu) instead: the GPU decode path (docs/design.md §2.8) —
// greedy decode steps for each --batches size (default 1,16,64; 32-token prompts), tokens/s of
// all sequences together and ms per step, with the decode step as a CUDA graph and eagerly,
// A/B in one process (Backend::set_graphs_enabled; SMOL_CUDA_GRAPHS only sets the default),
// beside the step's floor: its bf16 weight bytes at 3.35 TB/s (H100 SXM). Weights: the GGUF
// when present (dequantised), else init_random at SmolLM2-135M's shape. With --temperature T the
// steps are sampled on the device (top_p 0.9) instead of greedy.
//   decode_bench [--model GGUF] [--steps N] [--repeats N] [--profile] [--kernels] [--paired N]
//                [--device D] [--batches 1,16,64] [--temperature T]
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "bench_clock.h"
#include "common/error.h"
#include "io/model_loader.h"
#include "kernels/backend.h"
#include "kernels/cpu/cpu_quant_matmul.h"
#include "model/llama_model.h"
#include "model/sampling.h"
#include "op_timer.h"

namespace {

using smol::bench::Clock;
using smol::bench::since;
using smol::bench::tokens;

// Streaming read bandwidth, bytes/s: a reduction over a buffer far larger than the caches.
// Integer sums, so the compiler vectorises the loop (a float sum would be a serial chain).
class BandwidthProbe {
 public:
  BandwidthProbe() : buffer_((size_t{512} << 20) / sizeof(uint32_t)) {
    const size_t n = buffer_.size();
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; ++i) buffer_[i] = static_cast<uint32_t>(i & 7);
  }
  // Best of `passes` passes over the buffer.
  double measure(int passes) {
    const size_t n = buffer_.size();
    const uint32_t* data = buffer_.data();
    double best = 0;
    for (int pass = 0; pass < passes; ++pass) {
      const auto t = Clock::now();
      uint32_t sum = 0;
#pragma omp parallel for schedule(static) reduction(+ : sum)
      for (size_t i = 0; i < n; ++i) sum += data[i];
      best = std::max(best, n * sizeof(uint32_t) / since(t));
      sink_ = sink_ + sum;
    }
    return best;
  }

 private:
  std::vector<uint32_t> buffer_;
  volatile uint32_t sink_ = 0;
};

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

// --kernels: one matmul of SmolLM2's shapes, by rows of x: the int8 kernel, the
// dequantise-tile + sgemm path, and sgemm on a dense fp32 copy (ms per call, best of 5).
void kernel_table(const smol::LoadedModel& m) {
  using smol::cpu::QuantIsa;
  const QuantIsa isa = smol::cpu::detect_quant_isa();
  std::printf("kernel: %s\n| %-34s | %5s | %9s | %9s | %9s | %9s |\n",
              smol::cpu::quant_isa_name(isa), "matrix", "T", "int8 ms", "int8 pair", "deq+sgemm",
              "fp32 sgemm");
  for (const char* name : {"model.layers.0.mlp.up_proj.weight",
                           "model.layers.0.mlp.down_proj.weight", "model.embed_tokens.weight"}) {
    const smol::QuantizedHostTensor& q = m.quantized.at(name);
    const smol::QuantMatrix w = q.matrix();
    std::vector<float> dense(static_cast<size_t>(w.rows * w.cols));
    for (int64_t r = 0; r < w.rows; ++r)
      smol::dequantize_quant_row(w.format, w.row(r), dense.data() + r * w.cols, w.cols);
    // Q4_1 also in block pairs (kernels/quant_matrix.h), the layout the cpu backend loads it in.
    std::vector<uint8_t> paired_bytes;
    smol::QuantMatrix paired;
    if (w.format == smol::QuantFormat::Q4_1 && smol::can_pair_q4_1(w.cols)) {
      paired_bytes.resize(static_cast<size_t>(w.bytes()));
      smol::repack_q4_1_pairs(static_cast<const uint8_t*>(w.blocks), w.rows, w.cols,
                              paired_bytes.data());
      paired = smol::QuantMatrix{smol::QuantFormat::Q4_1_R2, w.rows, w.cols, paired_bytes.data()};
    }
    std::vector<smol::cpu::ActBlock> scratch;
    for (int64_t T : {1, 4, 16, 32, 43, 64, 128, 512}) {
      std::vector<float> x(static_cast<size_t>(T * w.cols), 0.5f),
          y(static_cast<size_t>(T * w.rows));
      for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>((i * 7919) % 113) / 50 - 1;
      auto best_ms = [&](auto&& f) {
        double best = 1e30;
        for (int r = 0; r < 5; ++r) {
          const auto t = Clock::now();
          f();
          best = std::min(best, since(t) * 1e3);
        }
        return best;
      };
      const double int8 = best_ms([&] {
        float* out = y.data();
        smol::cpu::matmul_quantized_int8(std::span<float* const>(&out, 1), x.data(), T,
                                         std::span<const smol::QuantMatrix>(&w, 1), isa, scratch);
      });
      const double pair = paired.empty() ? 0.0 : best_ms([&] {
        float* out = y.data();
        smol::cpu::matmul_quantized_int8(std::span<float* const>(&out, 1), x.data(), T,
                                         std::span<const smol::QuantMatrix>(&paired, 1), isa,
                                         scratch);
      });
      const double deq =
          best_ms([&] { smol::cpu::matmul_quantized_via_sgemm(y.data(), x.data(), T, w); });
      const double f32 = best_ms([&] {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(T),
                    static_cast<int>(w.rows), static_cast<int>(w.cols), 1.0f, x.data(),
                    static_cast<int>(w.cols), dense.data(), static_cast<int>(w.cols), 0.0f,
                    y.data(), static_cast<int>(w.rows));
      });
      std::printf("| %-34s | %5lld | %9.3f | %9.3f | %9.3f | %9.3f |\n", name,
                  static_cast<long long>(T), int8, pair, deq, f32);
    }
  }
}

struct Options {
  std::string model = std::string(SMOL_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
  int steps = 32, repeats = 3;
  int paired = 0;  // --paired N: N rounds of (bandwidth pass, quantised batch-1 decode run)
  bool profile = false, kernels = false;
  std::string device = "cpu";
  std::vector<int> batches{1, 16, 64};
  float temperature = 0.0f;  // --temperature T (with --device): sampled steps, top_p 0.9
};

// --device: graph vs eager decode steps on a GPU backend, one table row per (batch, mode).
void run_device(const Options& o) {
  auto backend = smol::make_backend(o.device);
  smol::LlamaConfig config = smol::smollm2_135m_config();
  smol::HostTensorMap weights;
  std::string source = "random weights (init_random)";
  if (std::ifstream(o.model).good()) {
    smol::LoadedModel loaded = smol::load_model(o.model);
    config = loaded.config;
    weights = std::move(loaded.weights);
    source = o.model;
  }
  smol::LlamaModel model(*backend, config, smol::TrainMode::Frozen);
  if (weights.empty())
    model.init_random(1);
  else
    model.load_weights(weights);
  // What a step must read at least: every projection and the LM head, in bf16, once.
  const double C = static_cast<double>(config.hidden_size);
  const double per_layer = C * (config.q_dim() + 2.0 * config.kv_dim()) + config.q_dim() * C +
                           3.0 * C * config.intermediate_size;
  const double weight_bytes = 2.0 * (config.num_hidden_layers * per_layer + config.vocab_size * C);
  const double floor_ms = weight_bytes / 3.35e12 * 1e3;
  // Greedy steps pick by argmax on the device; sampled ones (--temperature) by
  // Backend::sample_tokens, also on the device (docs/design.md §3 "Sampling").
  const smol::SamplingParams sampling{o.temperature, 0.9f, 7};
  auto pick = [&](const std::vector<int32_t>& slots, const std::vector<std::vector<int32_t>>& next,
                  uint64_t step) {
    if (o.temperature <= 0.0f) return model.decode_greedy(slots, next);
    std::vector<float> uniforms;
    for (size_t b = 0; b < slots.size(); ++b)
      uniforms.push_back(smol::sampling_uniform(sampling, b, step));
    return model.decode_sampled(slots, next, uniforms, sampling.temperature, sampling.top_p);
  };
  char kind[64] = "greedy";
  if (o.temperature > 0.0f)
    std::snprintf(kind, sizeof kind, "sampled (temperature %.2f, top_p 0.90)", o.temperature);
  std::printf(
      "decode_bench: %s, device %s, best of %d runs of %d %s steps after a 32-token "
      "prompt\nstep floor: %.1f MB of bf16 weights at 3.35 TB/s = %.3f ms\n\n",
      source.c_str(), backend->name().c_str(), o.repeats, o.steps, kind, weight_bytes / 1e6,
      floor_ms);
  std::printf("| %-6s | %5s | %10s | %8s | %8s | %11s |\n", "graphs", "batch", "tokens/s",
              "ms/step", "x floor", "graph nodes");
  std::printf("|--------|-------|------------|----------|----------|-------------|\n");
  const bool graphs_default = backend->graphs_enabled();
  for (int batch : o.batches) {
    for (bool graphs : {false, true}) {
      backend->set_graphs_enabled(graphs);
      const int prompt = 32;
      double best = 0;
      uint64_t launches = 0, nodes = 0;
      for (int r = 0; r < o.repeats; ++r) {
        model.reset_cache(batch, prompt + o.steps + 2);
        std::vector<int32_t> slots;
        std::vector<std::vector<int32_t>> next;
        for (int b = 0; b < batch; ++b) slots.push_back(b), next.push_back(tokens(prompt, b));
        std::vector<int32_t> ids = pick(slots, next, 0);
        for (int b = 0; b < batch; ++b) next[b] = {ids[b]};
        ids = pick(slots, next, 1);  // warm-up: the first one-token step
        const uint64_t before = backend->graph_stats().launches;
        const auto t = Clock::now();
        for (int step = 0; step < o.steps; ++step) {
          for (int b = 0; b < batch; ++b) next[b] = {ids[b]};
          ids = pick(slots, next, 2 + step);  // ends with a download: the step is done
        }
        const double s = since(t);
        best = std::max(best, batch * o.steps / s);
        launches = backend->graph_stats().launches - before;
        nodes = backend->graph_stats().last_nodes;
      }
      const double ms = batch / best * 1e3;
      // Graph nodes: the kernels, copies and memsets one launch replaced (in every step when
      // each step launched a graph; "-" when steps ran eagerly).
      const std::string node_text =
          graphs && launches == static_cast<uint64_t>(o.steps) ? std::to_string(nodes) : "-";
      std::printf("| %-6s | %5d | %10.1f | %8.3f | %8.1f | %11s |\n", graphs ? "on" : "off", batch,
                  best, ms, ms / floor_ms, node_text.c_str());
      std::fflush(stdout);
    }
  }
  backend->set_graphs_enabled(graphs_default);
}

// The GGUF on the cpu backend for inference, its weights fp32 or kept quantised. The model
// points into `loaded` (the quantised matrices), so both live on the heap and move together.
struct CpuModel {
  std::unique_ptr<smol::LoadedModel> loaded;
  std::unique_ptr<smol::Backend> backend;
  std::unique_ptr<smol::LlamaModel> model;
};
CpuModel load_cpu_model(const std::string& path, bool quantized) {
  CpuModel m;
  m.loaded =
      std::make_unique<smol::LoadedModel>(smol::load_model(path, smol::LoadOptions{quantized}));
  m.backend = smol::make_backend("cpu");
  m.model = std::make_unique<smol::LlamaModel>(
      *m.backend, m.loaded->config, smol::TrainMode::Frozen, std::nullopt,
      smol::FrozenWeights::ActivationDtype, &m.loaded->quantized);
  m.model->load_weights(m.loaded->weights);
  return m;
}

void run(const Options& o, bool quantized, double bandwidth) {
  CpuModel m = load_cpu_model(o.model, quantized);
  smol::Backend* backend = m.backend.get();
  smol::LlamaModel& model = *m.model;
  const double bytes = weight_bytes(*m.loaded);
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

// --paired: the share of the bandwidth measured in pairs, each decode run next to its own
// bandwidth pass, so that a virtual machine whose bandwidth drifts between minutes (this
// project's development machine: 22–43 GB/s) compares like with like. Quantised weights,
// batch 1, `steps` greedy steps after a 32-token prompt; rounds alternate probe and decode and
// the median ratio is the result.
void run_paired(const Options& o, BandwidthProbe& probe) {
  CpuModel m = load_cpu_model(o.model, /*quantized=*/true);
  smol::LlamaModel& model = *m.model;
  const double bytes = weight_bytes(*m.loaded);
  std::printf(
      "decode_bench --paired: %s, %d OpenMP threads, quantised weights, batch 1, %d "
      "steps per run, %.1f MB of weights per step\n\n",
      o.model.c_str(), omp_get_max_threads(), o.steps, bytes / 1e6);
  std::printf("| round | bandwidth GB/s | tokens/s | weights GB/s | %% of bandwidth |\n");
  std::printf("|-------|----------------|----------|--------------|----------------|\n");
  std::vector<double> shares;
  for (int round = 0; round < o.paired; ++round) {
    const double bandwidth = probe.measure(2);
    model.reset_cache(1, 32 + o.steps + 1);
    std::vector<int32_t> ids = model.decode_greedy({0}, {tokens(32, 0)});
    const auto t = Clock::now();
    for (int step = 0; step < o.steps; ++step) ids = model.decode_greedy({0}, {{ids[0]}});
    const double tokens_per_s = o.steps / since(t);
    shares.push_back(tokens_per_s * bytes / bandwidth);
    std::printf("| %5d | %14.1f | %8.1f | %12.1f | %13.1f%% |\n", round + 1, bandwidth / 1e9,
                tokens_per_s, tokens_per_s * bytes / 1e9, 100 * shares.back());
    std::fflush(stdout);
  }
  std::sort(shares.begin(), shares.end());
  std::printf("\nmedian share of the bandwidth: %.1f%% (range %.1f%% to %.1f%%)\n",
              100 * shares[shares.size() / 2], 100 * shares.front(), 100 * shares.back());
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
    else if (!std::strcmp(argv[i], "--paired") && i + 1 < argc)
      o.paired = std::max(1, std::atoi(argv[++i]));
    else if (!std::strcmp(argv[i], "--profile"))
      o.profile = true;
    else if (!std::strcmp(argv[i], "--kernels"))
      o.kernels = true;
    else if (!std::strcmp(argv[i], "--temperature") && i + 1 < argc)
      o.temperature = std::stof(argv[++i]);
    else if (!std::strcmp(argv[i], "--device") && i + 1 < argc)
      o.device = argv[++i];
    else if (!std::strcmp(argv[i], "--batches") && i + 1 < argc) {
      o.batches.clear();
      for (std::string list = argv[++i]; !list.empty();) {
        const size_t comma = list.find(',');
        o.batches.push_back(std::max(1, std::atoi(list.substr(0, comma).c_str())));
        list = comma == std::string::npos ? "" : list.substr(comma + 1);
      }
    } else
      smol::throw_error("unknown argument '", argv[i],
                        "' (decode_bench [--model GGUF] [--steps N] [--repeats N] [--profile] "
                        "[--kernels] [--paired N] [--device D] [--batches 1,16,64])");
  }
  if (o.device != "cpu") {
    run_device(o);
    return 0;
  }
  SMOL_CHECK(std::ifstream(o.model).good(), o.model,
             ": no such model (scripts/fetch-model.sh fetches the Q4_1 SmolLM2 GGUF)");
  if (o.kernels) {
    kernel_table(smol::load_model(o.model, smol::LoadOptions{true}));
    return 0;
  }
  BandwidthProbe probe;
  if (o.paired > 0) {
    run_paired(o, probe);
    return 0;
  }
  const double bandwidth = probe.measure(5);
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
