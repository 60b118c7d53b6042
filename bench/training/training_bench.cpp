// training_bench: one full optimizer step (forward + backward over the rows, global-norm clip,
// AdamW, schedule) at SmolLM2-135M shape with random weights, on any backend:
//   training_bench [--rows N] [--length L] [--steps S] [--device D] [--mode lora|lora-all|full|all]
//                  [--peak-tflops P] [--peak-gbps B] [--breakdown] [--cpu-precision fp32|bf16]
//                  [--graphs default|on|off|both] [--lora-dropout P] [--lora-grouping on|off]
// Default 4 × 512 tokens, 2 timed steps after one warm-up step; modes: LoRA r 8 on q,v
// (`lora`), LoRA r 8 on all seven projections (`lora-all`), full fine-tuning (`full`).
//
// Each line: tokens/s, the FLOPs a step needs per token, the achieved TFLOP/s and (with a peak)
// MFU, and the peak memory the backend allocated (Backend::memory_stats). FLOPs per token,
// matmuls of the projections and the LM head (N_mm weights) plus causal attention:
//   forward          2·N_mm + 4·Hq·D·k̄·layers         k̄ = (L + 1) / 2 keys seen on average
//   full fine-tune   3 × forward                       (backward: dX and dW, 2 × forward)
//   LoRA             2 × forward's matmul part + 3 × attention + LoRA's own 6·N_lora
//                    (frozen weights need dX only; attention has no weights but its backward
//                    costs twice its forward)
// The per-token FLOPs count what the step must compute, not recomputation, so MFU compares
// across implementations. --peak-tflops: the device's dense peak (default on cuda: the part
// found at run time, bench/cuda/device_peak.h — H100 SXM and H200 989, H100 PCIe 756 — and none
// for a part not in its table; none on cpu, where MFU is not printed unless a peak is given).
// --breakdown adds one eager step timed op by op (bench/model/op_timer.h): on cuda with device
// timing events around every op and one wait at the end, elsewhere by the wall clock after a
// synchronize per op (the shares are exact but that step is slower than the timed ones). Per
// category: exclusive ms, share of the step, ops run, and where docs/design.md §2.6's table
// has a row (matmul, attention, cross_entropy, rmsnorm, rope, swiglu, optimizer) the roofline
// floor at this shape (step_floors below), from --peak-tflops and --peak-gbps (the device's
// memory bandwidth in GB/s; default on cuda the part's, e.g. 3350 for an H100 SXM; no floors on
// cpu unless both are given).
// --lora-dropout P: LoRA dropout (default 0; the shipped configs train with 0.1): on cuda the
// masks are drawn inside the fused down-projection kernels (docs/design.md §2.7 "LoRA dropout on
// the fly"); --lora-grouping off runs every adapter per projection (dropout + matmul + axpy each,
// LlamaModel::set_lora_grouping(false)), the A/B of that fusion. LoRA lines then end with
// "lora dropout P grouping on|off".
// --cpu-precision bf16: frozen base weights stored in bf16 (training.cpu_precision: bf16,
// docs/cpu-speed.md "bf16 on cpu"); LoRA modes only (full fine-tuning is skipped with a note).
// Each step is the trainer's (engine/train_step.h with deferred losses: no host wait in the step;
// the losses are read once, after the timed steps), which on cuda runs as one CUDA graph
// (docs/design.md §2.8). --graphs: the backend's default (SMOL_CUDA_GRAPHS, on), on, off, or
// both — the same model timed with graphs off, then on, one line each ("graphs off" / "graphs
// on"), each after two warm-up steps (the first recording of a new shape runs eagerly while the
// scratch areas and the capture staging grow). A backend without graphs (cpu) prints "graphs off".
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "bench/model/op_timer.h"
#include "common/error.h"
#include "engine/lr_schedule.h"
#include "engine/optimizer.h"
#include "engine/train/step_losses.h"
#include "engine/train_step.h"
#if defined(SMOL_BENCH_DEVICE_PEAK)
#include "bench/cuda/device_peak.h"
#endif
#include "model/random_init.h"

namespace {

struct Options {
  int rows = 4, length = 512, steps = 2;
  std::string device = "cpu", mode = "all";
  double peak_tflops = 0;  // 0: the device's own (use_device_peaks), none on cpu
  double peak_gbps = 0;    // 0: the device's own (use_device_peaks), none on cpu
  bool breakdown = false;
  std::string cpu_precision = "fp32";
  std::string graphs = "default";  // default | on | off | both
  double lora_dropout = 0;
  std::string lora_grouping = "on";
};

struct Mode {
  const char* name;
  smol::TrainMode train;
  bool all_targets;
};

// The step's FLOPs per token (see the file comment).
double flops_per_token(const smol::LlamaConfig& c, const Mode& mode, int64_t lora_params,
                       int length) {
  const double C = static_cast<double>(c.hidden_size), F = static_cast<double>(c.intermediate_size);
  const double per_layer = C * c.q_dim() + 2 * C * c.kv_dim() + c.q_dim() * C + 3 * C * F;
  const double matmul_weights = per_layer * c.num_hidden_layers + C * c.vocab_size;
  const double mean_keys = (length + 1) / 2.0;
  const double attention =
      4.0 * c.num_attention_heads * c.head_dim * mean_keys * c.num_hidden_layers;
  if (mode.train == smol::TrainMode::Full) return 3 * (2 * matmul_weights + attention);
  return 2 * 2 * matmul_weights + 3 * attention + 6.0 * static_cast<double>(lora_params);
}

// The device's dense bf16 peak and memory bandwidth: --peak-tflops / --peak-gbps when given;
// on a real cuda device the part found at run time (bench/cuda/device_peak.h: H100 SXM 989
// TFLOP/s and 3.35 TB/s, H100 PCIe 756 and 2.0, H200 989 and 4.8; another part's bandwidth from
// its memory attributes and no compute peak, so no MFU is claimed); none elsewhere.
bool real_cuda(const smol::Backend& backend) {
  return backend.name().rfind("cuda", 0) == 0 && backend.name() != "cuda-emu";
}
// Fills the peaks the flags left unset from the device found at run time (a real cuda device
// only), and says which part and figures were used.
void use_device_peaks(const smol::Backend& backend, Options& o) {
#if defined(SMOL_BENCH_DEVICE_PEAK)
  if (!real_cuda(backend) || (o.peak_tflops > 0 && o.peak_gbps > 0)) return;
  const smol::bench::DevicePeak peak = smol::bench::query_device_peak(backend.device_ordinal());
  if (o.peak_tflops <= 0) o.peak_tflops = peak.tensor_flops / 1e12;
  if (o.peak_gbps <= 0) o.peak_gbps = peak.hbm_bytes_per_s / 1e9;
  std::printf("device: %s\n", smol::bench::describe(peak).c_str());
#else
  (void)backend, (void)o;
#endif
}

// The roofline floor of each breakdown category over one step (docs/design.md §2.6's rule: a
// kernel's floor is max(FLOPs / peak, bytes / bandwidth), each input read once and each output
// written once, activations in the backend's dtype, fp32 gradients of trainable weights), summed
// over the step's kernels at the bench's shape. Categories without a row in §2.6's table
// (embedding, fill/copy/axpy, the LM head's own slicing, dropout, uploads) get none.
struct Floors {
  double peak_flops, bytes_per_second, elem;  // elem: bytes of an activation
  std::map<std::string, double> seconds;      // category → floor seconds
  double kernel(double flops, double bytes) const {
    return std::max(flops / peak_flops, bytes / bytes_per_second);
  }
  // [M, K] × [K, N] → [M, N]; `accumulate`: the output is read too; `out_bytes`: its element size.
  void matmul(double M, double K, double N, bool accumulate = false, double out_bytes = 0) {
    if (out_bytes == 0) out_bytes = elem;
    const double bytes = elem * (M * K + K * N) + out_bytes * M * N * (accumulate ? 2 : 1);
    seconds["matmul"] += kernel(2 * M * K * N, bytes);
  }
};

Floors step_floors(const smol::LlamaConfig& c, const Mode& mode,
                   const std::optional<smol::LoraSettings>& lora, int rows, int length,
                   int64_t lm_head_chunk_rows, int64_t trainable, double peak_tflops,
                   double peak_gbps, double elem) {
  Floors f{peak_tflops * 1e12, peak_gbps * 1e9, elem, {}};
  const double T = static_cast<double>(rows) * length, C = static_cast<double>(c.hidden_size),
               F = static_cast<double>(c.intermediate_size), V = static_cast<double>(c.vocab_size);
  const double Q = static_cast<double>(c.q_dim()), KV = static_cast<double>(c.kv_dim());
  const bool full = mode.train == smol::TrainMode::Full;
  struct Projection {
    smol::Projection which;
    double in, out;
  };
  const Projection projections[] = {{smol::Projection::Q, C, Q},    {smol::Projection::K, C, KV},
                                    {smol::Projection::V, C, KV},   {smol::Projection::O, Q, C},
                                    {smol::Projection::Gate, C, F}, {smol::Projection::Up, C, F},
                                    {smol::Projection::Down, F, C}};
  for (int layer = 0; layer < c.num_hidden_layers; ++layer) {
    for (const Projection& p : projections) {
      f.matmul(T, p.in, p.out);                     // forward
      f.matmul(T, p.out, p.in);                     // dX
      if (full) f.matmul(p.in, T, p.out, true, 4);  // dW, fp32, accumulated
      if (lora && std::count(lora->targets.begin(), lora->targets.end(), p.which)) {
        const double r = static_cast<double>(lora->r);
        f.matmul(T, p.in, r);            // x·A
        f.matmul(T, r, p.out, true);     // + (x·A)·B
        f.matmul(r, T, p.out, true, 4);  // dB
        f.matmul(T, p.out, r);           // dY·Bᵀ
        f.matmul(p.in, T, r, true, 4);   // dA
        f.matmul(T, r, p.in, true);      // dX += (dY·Bᵀ)·Aᵀ
      }
    }
  }
  // The LM head, chunk by chunk (each chunk re-reads the weight; docs/design.md §2.6).
  const double chunk = std::min<double>(T, static_cast<double>(lm_head_chunk_rows));
  for (double done = 0; done < T; done += chunk) {
    const double R = std::min(chunk, T - done);
    f.matmul(R, C, V);                     // logits
    f.matmul(R, V, C);                     // dh
    if (full) f.matmul(V, R, C, true, 4);  // dW of the tied embedding, fp32
  }
  // Flash attention: causal, k̄ = (L + 1) / 2 keys a query; backward 2.5 × forward's FLOPs.
  const double attn_flops = 4.0 * c.num_attention_heads * c.head_dim * T * (length + 1) / 2.0;
  for (int layer = 0; layer < c.num_hidden_layers; ++layer) {
    f.seconds["attention"] += f.kernel(attn_flops, elem * T * (2 * Q + 2 * KV));  // q k v → o
    f.seconds["attention"] +=
        f.kernel(2.5 * attn_flops, elem * T * (4 * Q + 2 * KV) + elem * T * (Q + 2 * KV));
  }
  // Cross-entropy over the logits: two passes and the gradient written in place.
  f.seconds["cross_entropy"] += f.kernel(0, 3 * elem * T * V);
  // Elementwise, per layer (forward + backward): two residual add + RMSNorms (read residual
  // and delta, write the sum and the normed row; backward reads dy, x, the residual gradient
  // and writes dx), RoPE of q and k (read + write, both ways), SwiGLU (3 [T, F] forward, 5
  // backward); the final norm once.
  const double norms = 2.0 * c.num_hidden_layers + 1;
  f.seconds["rmsnorm"] += f.kernel(0, norms * 8 * elem * T * C);
  f.seconds["rope"] += f.kernel(0, c.num_hidden_layers * 4 * elem * T * (Q + KV));
  f.seconds["swiglu"] += f.kernel(0, c.num_hidden_layers * 8 * elem * T * F);
  // AdamW and the grad norm over the fp32 trainable weights: read p, g, m, v, write p, m, v,
  // and g once more for the norm.
  f.seconds["optimizer"] += f.kernel(0, 32.0 * static_cast<double>(trainable));
  return f;
}

void bench(smol::Backend& backend, const Mode& mode, const Options& o) {
  const smol::LlamaConfig config = smol::smollm2_135m_config();
  std::optional<smol::LoraSettings> lora;
  if (mode.train == smol::TrainMode::Lora) {
    lora = smol::LoraSettings{};  // r 8, α 16, q and v
    lora->dropout = o.lora_dropout;
    if (mode.all_targets)
      lora->targets = {smol::Projection::Q,   smol::Projection::K,    smol::Projection::V,
                       smol::Projection::O,   smol::Projection::Gate, smol::Projection::Up,
                       smol::Projection::Down};
  }
  backend.reset_peak_memory();
  const size_t memory_before = backend.memory_stats().in_use;
  const bool bf16 = o.cpu_precision == "bf16";
  if (bf16 && mode.train == smol::TrainMode::Full) {
    std::printf("%-8s skipped: --cpu-precision bf16 applies to frozen weights (LoRA modes)\n",
                mode.name);
    return;
  }
  smol::LlamaModel model(backend, config, mode.train, lora,
                         bf16 ? smol::FrozenWeights::BF16 : smol::FrozenWeights::ActivationDtype);
  model.init_random(42);
  model.set_lora_grouping(o.lora_grouping == "on");
  smol::AdamWSettings settings;
  settings.weight_decay = 0.01;
  smol::AdamW optimizer(backend, model.trainable_params(), settings);
  // Long enough for both --graphs settings, their warm-ups and the breakdown step.
  const smol::LrSchedule schedule(smol::LrScheduleKind::Cosine, 2e-4, 2 * (o.steps + 2) + 2, 0);
  smol::SeededRng rng(7);
  std::vector<smol::TokenRow> batch(o.rows);
  for (smol::TokenRow& row : batch) {
    for (int t = 0; t < o.length; ++t)
      row.input_ids.push_back(static_cast<int32_t>(rng.next_u64() % config.vocab_size));
    row.labels = row.input_ids;
    for (int t = 0; t < o.length / 4; ++t) row.labels[t] = -100;  // a masked prompt quarter
  }
  int64_t trainable = 0;
  for (const auto& p : model.trainable_params()) trainable += p.value.numel();
  smol::StepLosses losses(backend);
  int64_t step_seed = 0;
  auto step = [&] {
    smol::train_step(model, optimizer, schedule, {batch}, static_cast<uint64_t>(step_seed++),
                     nullptr, &losses);
  };
  std::vector<int> graph_settings;  // -1: the backend's default, 0 off, 1 on
  if (o.graphs == "both")
    graph_settings = {0, 1};
  else
    graph_settings = {o.graphs == "on" ? 1 : o.graphs == "off" ? 0 : -1};
  const bool default_graphs = backend.graphs_enabled();
  for (const int graphs : graph_settings) {
    if (graphs >= 0) backend.set_graphs_enabled(graphs == 1);
    const char* graphs_tag = backend.graphs_enabled() ? "on" : "off";  // cpu: always off
    // Warm-up: buffers, caches, and (graphs on) the first recordings, which run eagerly while a
    // scratch area or the capture staging grows.
    for (int w = 0; w < 2; ++w) step();
    backend.synchronize();
    const auto start = std::chrono::steady_clock::now();
    for (int s = 0; s < o.steps; ++s) step();
    backend.synchronize();
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / o.steps;
    losses.read();  // one download, outside the timed steps
    const double tokens = static_cast<double>(o.rows) * o.length;
    const double flops = flops_per_token(
        config, mode, mode.train == smol::TrainMode::Lora ? trainable : 0, o.length);
    const double achieved_tflops = flops * tokens / seconds / 1e12;
    const double peak_mb = static_cast<double>(backend.memory_stats().peak - memory_before) / 1e6;
    const double peak = o.peak_tflops;
    char mfu[32] = "";
    if (peak > 0) std::snprintf(mfu, sizeof(mfu), "  MFU %5.1f%%", 100 * achieved_tflops / peak);
    char lora_tag[64] = "";
    if (lora)
      std::snprintf(lora_tag, sizeof(lora_tag), "  lora dropout %g grouping %s", o.lora_dropout,
                    o.lora_grouping.c_str());
    std::printf(
        "%-8s %-9s %-4s graphs %-3s trainable %11lld  batch %d x %d  step %8.3f s  %10.1f "
        "tokens/s  %6.2f GFLOP/token  %8.3f TFLOP/s%s  peak memory %8.1f MB%s\n",
        mode.name, backend.name().c_str(), o.cpu_precision.c_str(), graphs_tag,
        static_cast<long long>(trainable), o.rows, o.length, seconds, tokens / seconds, flops / 1e9,
        achieved_tflops, mfu, peak_mb, lora_tag);
    std::fflush(stdout);
  }
  backend.set_graphs_enabled(default_graphs);

  if (!o.breakdown) return;
  // One eager step (an OpHook makes run_as_graph run the step op by op: kernels/backend.h),
  // timed with device events where the backend has them (cuda: no synchronize per op, one
  // wait at the end), else by the wall clock after a synchronize per op (cpu).
  smol::OpTimer timer(backend, smol::OpTimer::Clock::DeviceEvents);
  step();
  timer.finish();
  double total = 0;
  std::vector<std::pair<std::string, double>> shares;
  for (const auto& [category, s] : timer.seconds) {
    shares.emplace_back(category, s);
    total += s;
  }
  std::sort(shares.begin(), shares.end(),
            [](const auto& a, const auto& b) { return a.second > b.second; });
  const bool events = timer.clock() == smol::OpTimer::Clock::DeviceEvents;
  const double peak_tflops = o.peak_tflops;
  const double peak_gbps = o.peak_gbps;
  const bool with_floors = peak_tflops > 0 && peak_gbps > 0;
  Floors floors{};
  if (with_floors)
    floors = step_floors(config, mode, lora, o.rows, o.length,
                         backend.lm_head_chunk_rows(mode.train == smol::TrainMode::Full), trainable,
                         peak_tflops, peak_gbps,
                         backend.activation_dtype() == smol::DType::BF16 ? 2.0 : 4.0);
  std::printf("           breakdown (%s, one eager step %.2f ms)%s\n",
              events ? "device events" : "wall clock after a synchronize per op", 1e3 * total,
              with_floors ? "" : "  (floors: give --peak-tflops and --peak-gbps)");
  std::printf("           %-45s %9s  %6s  %6s%s\n", "category", "ms", "share", "ops",
              with_floors ? "  floor ms (§2.6)" : "");
  double floor_total = 0;
  for (const auto& [category, s] : shares) {
    char floor[48] = "";
    if (with_floors) {
      const auto it = floors.seconds.find(category);
      if (it != floors.seconds.end()) {
        std::snprintf(floor, sizeof(floor), "  %9.3f  (%5.1f%% of measured)", 1e3 * it->second,
                      s > 0 ? 100 * it->second / s : 0.0);
        floor_total += it->second;
      } else {
        std::snprintf(floor, sizeof(floor), "  %9s", "—");
      }
    }
    std::printf("           %-45s %9.3f  %5.1f%%  %6ld%s\n", category.c_str(), 1e3 * s,
                100 * s / total, timer.calls[category], floor);
  }
  if (with_floors)
    std::printf("           %-45s %9.3f  %6s  %6s  %9.3f\n", "total", 1e3 * total, "", "",
                1e3 * floor_total);
  // The ops inside categories that group several (attention forward vs backward, matmul vs the
  // batched gate/up GEMM, ...): where a category's time goes.
  for (const auto& [op, s] : timer.op_seconds) {
    if (timer.seconds.count(op)) continue;  // an op that is its own category
    std::printf("             op %-42s %9.3f  %5.1f%%  %6ld\n", op.c_str(), 1e3 * s,
                100 * s / total, timer.op_calls[op]);
  }
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string key = argv[i];
    if (key == "--breakdown") {
      o.breakdown = true;
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "error: %s needs a value\n", key.c_str());
      return 2;
    }
    const std::string value = argv[++i];
    if (key == "--rows")
      o.rows = std::atoi(value.c_str());
    else if (key == "--length")
      o.length = std::atoi(value.c_str());
    else if (key == "--steps")
      o.steps = std::atoi(value.c_str());
    else if (key == "--device")
      o.device = value;
    else if (key == "--mode")
      o.mode = value;
    else if (key == "--peak-tflops")
      o.peak_tflops = std::atof(value.c_str());
    else if (key == "--peak-gbps")
      o.peak_gbps = std::atof(value.c_str());
    else if (key == "--cpu-precision")
      o.cpu_precision = value;
    else if (key == "--graphs")
      o.graphs = value;
    else if (key == "--lora-dropout")
      o.lora_dropout = std::atof(value.c_str());
    else if (key == "--lora-grouping")
      o.lora_grouping = value;
    else {
      std::fprintf(stderr, "error: unknown option %s\n", key.c_str());
      return 2;
    }
  }
  const std::vector<Mode> modes{{"lora", smol::TrainMode::Lora, false},
                                {"lora-all", smol::TrainMode::Lora, true},
                                {"full", smol::TrainMode::Full, false}};
  if (o.rows < 1 || o.length < 2 || o.steps < 1 || o.peak_tflops < 0 || o.peak_gbps < 0) {
    std::fprintf(stderr,
                 "error: --rows, --steps ≥ 1, --length ≥ 2, --peak-tflops, --peak-gbps ≥ 0\n");
    return 2;
  }
  bool known = o.mode == "all";
  for (const Mode& m : modes) known = known || o.mode == m.name;
  if (o.cpu_precision != "fp32" && o.cpu_precision != "bf16") {
    std::fprintf(stderr, "error: --cpu-precision must be fp32 or bf16, not %s\n",
                 o.cpu_precision.c_str());
    return 2;
  }
  if (o.graphs != "default" && o.graphs != "on" && o.graphs != "off" && o.graphs != "both") {
    std::fprintf(stderr, "error: --graphs must be default, on, off or both, not %s\n",
                 o.graphs.c_str());
    return 2;
  }
  if (o.lora_dropout < 0 || o.lora_dropout >= 1 ||
      (o.lora_grouping != "on" && o.lora_grouping != "off")) {
    std::fprintf(stderr, "error: --lora-dropout must be in [0, 1), --lora-grouping on or off\n");
    return 2;
  }
  if (!known) {
    std::fprintf(stderr, "error: --mode must be lora, lora-all, full or all, not %s\n",
                 o.mode.c_str());
    return 2;
  }
  try {
    auto backend = smol::make_backend(o.device);
    use_device_peaks(*backend, o);
    for (const Mode& m : modes)
      if (o.mode == "all" || o.mode == m.name) bench(*backend, m, o);
  } catch (const smol::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
