// The cost of one spectral refactor of a whole SmolLM2-135M adapter (docs/seed-behaviour.md
// §5.1): 30 layers × 7 projections (q, o 576×576; k, v 192×576; gate, up 1536×576; down
// 576×1536), r = 8, 16, 32, 64, balanced mode with the first-moment remap, on the backend
// SMOL_BENCH_DEVICE names (default cpu) with make_linalg's factorisations. One iteration is one
// refactor, synchronised, as the trainer's refactor_ms measures it. Timings are not tests
// (docs/design.md §10).
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <memory>
#include <random>
#include <vector>

#include "engine/train/spectral_refactor.h"
#include "kernels/backend.h"
#include "kernels/linalg_backend.h"

namespace smol {
namespace {

constexpr int64_t kLayers = 30;
struct ProjectionShape {
  const char* name;
  int64_t out, in;
};
constexpr ProjectionShape kProjections[] = {
    {"q_proj", 576, 576},     {"k_proj", 192, 576},   {"v_proj", 192, 576},    {"o_proj", 576, 576},
    {"gate_proj", 1536, 576}, {"up_proj", 1536, 576}, {"down_proj", 576, 1536}};

void BM_RefactorSmolLM2(benchmark::State& state) {
  const int64_t r = state.range(0);
  const char* device = std::getenv("SMOL_BENCH_DEVICE");
  std::unique_ptr<Backend> backend = make_backend(device ? device : "cpu");
  std::unique_ptr<LinalgBackend> linalg = make_linalg(*backend);
  std::vector<Buffer> memory;
  std::vector<LoraPair> pairs;
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  auto random_tensor = [&](Shape shape) {
    memory.push_back(backend->allocate(static_cast<size_t>(shape.numel()) * sizeof(float)));
    Tensor t = memory.back().view(DType::F32, shape);
    std::vector<float> host(static_cast<size_t>(shape.numel()));
    for (float& x : host) x = normal(rng);
    backend->upload(t, host.data());
    return t;
  };
  for (int64_t layer = 0; layer < kLayers; ++layer)
    for (const ProjectionShape& p : kProjections) {
      LoraPair pair;
      pair.name = "model.layers." + std::to_string(layer) + "." + p.name;
      pair.b = random_tensor(Shape{p.out, r});
      pair.a = random_tensor(Shape{r, p.in});
      pair.first_b = random_tensor(Shape{p.out, r});
      pair.first_a = random_tensor(Shape{r, p.in});
      pair.second_b = random_tensor(Shape{p.out, r});
      pair.second_a = random_tensor(Shape{r, p.in});
      pairs.push_back(pair);
    }
  SpectralRefactor refactor(*backend, *linalg, pairs);
  RefactorSettings settings;
  settings.balanced = true;
  settings.lambda = 0.0;  // exact spectrum: repeated refactors keep the same function
  settings.preserve_momentum = true;
  settings.clear_momentum = false;
  for (auto _ : state) {
    RefactorReport report = refactor.apply(settings);
    backend->synchronize();
    benchmark::DoNotOptimize(report);
  }
  state.counters["pairs"] = static_cast<double>(pairs.size());
  state.counters["groups"] = static_cast<double>(refactor.group_count());
  state.SetLabel(backend->name());
}
BENCHMARK(BM_RefactorSmolLM2)->Arg(8)->Arg(16)->Arg(32)->Arg(64)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace smol
