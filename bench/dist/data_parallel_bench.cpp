// data_parallel_bench: what communication costs a data-parallel optimizer step
// (docs/design.md §8). Run alone (1 rank) or under a launcher:
//   mpirun -np P data_parallel_bench [--mode lora|full] [--rows R] [--length L] [--steps S]
//                                    [--device cpu|cuda|cuda-emu] [--layers N]
// Every rank trains SmolLM2-135M's shape (random weights; --layers N keeps the first N layers)
// on R rows × L tokens of its own per step (weak scaling, HF Trainer's per-device batch), so
// the global batch is P·R rows. Rank 0 prints one line:
//   step time, global tokens/s, the time spent inside Communicator calls per step and the bytes
//   those calls moved per rank.
// "In collectives" is wall time inside the calls: on cpu (MPI) the calls block, so it is the
// communication the step waits for (the part of ZeRO-1's reduce-scatter hidden under the
// backward is not counted, only end_overlap's wait). On cuda the calls only enqueue; pass
// --sync to synchronise the device around each call, which measures each collective alone at
// the price of the overlap. bench/dist/scaling.sh runs 1 and P ranks and prints the scaling
// efficiency tokens/s(P) / (P · tokens/s(1)).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "engine/dist/data_parallel.h"
#include "engine/lr_schedule.h"
#include "engine/optimizer.h"
#include "kernels/communicator.h"
#include "model/random_init.h"

namespace {

using Clock = std::chrono::steady_clock;

// Forwards every call to the real communicator and adds up its wall time and payload.
class TimedCommunicator final : public smol::Communicator {
 public:
  TimedCommunicator(smol::Communicator& inner, smol::Backend& backend, bool sync)
      : inner_(inner), backend_(backend), sync_(sync) {}

  double seconds = 0;
  double bytes = 0;
  void reset() { seconds = bytes = 0; }

  std::string name() const override { return inner_.name(); }
  int rank() const override { return inner_.rank(); }
  int world_size() const override { return inner_.world_size(); }
  int local_rank() const override { return inner_.local_rank(); }
  void all_reduce(smol::Tensor x, smol::ReduceOp op) override {
    timed(x.bytes(), [&] { inner_.all_reduce(x, op); });
  }
  void reduce_scatter(smol::Tensor out, const smol::Tensor& in, smol::ReduceOp op) override {
    timed(in.bytes(), [&] { inner_.reduce_scatter(out, in, op); });
  }
  void all_gather(smol::Tensor out, const smol::Tensor& in) override {
    timed(out.bytes(), [&] { inner_.all_gather(out, in); });
  }
  void broadcast(smol::Tensor x, int root) override {
    timed(x.bytes(), [&] { inner_.broadcast(x, root); });
  }
  void barrier() override {
    timed(0, [&] { inner_.barrier(); });
  }
  void begin_overlap() override {
    in_overlap_ = true;
    inner_.begin_overlap();
  }
  void end_overlap() override {
    in_overlap_ = false;
    timed(0, [&] { inner_.end_overlap(); });
  }
  void all_reduce_host(std::span<double> values, smol::ReduceOp op) override {
    timed(values.size_bytes(), [&] { inner_.all_reduce_host(values, op); });
  }
  std::vector<std::string> all_gather_host(const std::string& bytes_in) override {
    std::vector<std::string> out;
    timed(bytes_in.size(), [&] { out = inner_.all_gather_host(bytes_in); });
    return out;
  }
  [[noreturn]] void abort(int exit_code) override {
    inner_.abort(exit_code);
    std::abort();  // not reached: inner_.abort never returns
  }

 private:
  template <typename Op>
  void timed(size_t payload, Op&& op) {
    // Synchronising inside an overlap region would serialise the very overlap being measured.
    const bool sync = sync_ && !in_overlap_;
    if (sync) backend_.synchronize();
    const Clock::time_point start = Clock::now();
    op();
    if (sync) backend_.synchronize();
    seconds += std::chrono::duration<double>(Clock::now() - start).count();
    bytes += static_cast<double>(payload);
  }

  smol::Communicator& inner_;
  smol::Backend& backend_;
  bool sync_;
  bool in_overlap_ = false;
};

struct Options {
  std::string mode = "lora", device = "cpu";
  int rows = 2, length = 256, steps = 3, layers = 0;
  bool sync = false;
};

// Global micro-batch rows, the same on every rank (each keeps its share, as the trainer does).
std::vector<smol::TokenRow> random_rows(int count, int length, int64_t vocab, uint64_t seed) {
  smol::SeededRng rng(seed);
  std::vector<smol::TokenRow> rows(count);
  for (smol::TokenRow& row : rows) {
    for (int t = 0; t < length; ++t)
      row.input_ids.push_back(static_cast<int32_t>(rng.next_u64() % static_cast<uint64_t>(vocab)));
    row.labels = row.input_ids;
    for (int t = 0; t < length / 4; ++t) row.labels[t] = -100;  // a masked prompt quarter
  }
  return rows;
}

void run(const Options& o) {
  const smol::LaunchInfo launch = smol::read_launch_environment();
  std::string device = o.device;
  if (launch.distributed() && device == "cuda") device += ":" + std::to_string(launch.local_rank);
  std::unique_ptr<smol::Backend> backend = smol::make_backend(device);
  std::unique_ptr<smol::Communicator> real = smol::make_communicator(*backend, launch);
  TimedCommunicator comm(*real, *backend, o.sync);

  smol::LlamaConfig config = smol::smollm2_135m_config();
  if (o.layers > 0) config.num_hidden_layers = o.layers;
  const smol::TrainMode mode = o.mode == "full" ? smol::TrainMode::Full : smol::TrainMode::Lora;
  std::optional<smol::LoraSettings> lora;
  if (mode == smol::TrainMode::Lora) lora = smol::LoraSettings{};  // r 8, α 16, q and v
  smol::LlamaModel model(*backend, config, mode, lora);
  model.init_random(42);
  smol::DataParallel data_parallel(comm, model, o.rows);
  smol::AdamWSettings settings;
  settings.weight_decay = 0.01;
  smol::AdamW optimizer(*backend, model.trainable_params(), settings, data_parallel.zero_layout());
  const smol::LrSchedule schedule(smol::LrScheduleKind::Cosine, 2e-4, o.steps + 1, 0);
  const int world = comm.world_size();

  double step_seconds = 0, comm_seconds = 0, comm_bytes = 0;
  for (int s = 0; s <= o.steps; ++s) {  // step 0 warms buffers and plans up, untimed
    const std::vector<std::vector<smol::TokenRow>> update{
        random_rows(o.rows * world, o.length, config.vocab_size, 1000 + s)};
    comm.barrier();
    backend->synchronize();
    comm.reset();
    const Clock::time_point start = Clock::now();
    data_parallel.train_step(optimizer, schedule, update, s);
    backend->synchronize();
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    if (s == 0) continue;
    step_seconds += seconds;
    comm_seconds += comm.seconds;
    comm_bytes += comm.bytes;
  }
  // The slowest rank sets the pace; report its numbers.
  double worst[2] = {step_seconds / o.steps, comm_seconds / o.steps};
  real->all_reduce_host(worst, smol::ReduceOp::Max);
  if (comm.rank() != 0) return;
  int64_t trainable = 0;
  for (const auto& p : model.trainable_params()) trainable += p.value.numel();
  const double tokens = static_cast<double>(o.rows) * world * o.length;
  std::printf(
      "ranks %d  %-4s %-9s %-6s trainable %11lld  rows/rank %d x %d  step %8.3f s  %9.1f "
      "tokens/s  in collectives %7.3f s (%4.1f%%)  %8.2f MB/rank/step%s\n",
      world, o.mode.c_str(), backend->name().c_str(), real->name().c_str(),
      static_cast<long long>(trainable), o.rows, o.length, worst[0], tokens / worst[0], worst[1],
      100 * worst[1] / worst[0], comm_bytes / o.steps / 1e6, o.sync ? "  (synchronised)" : "");
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string key = argv[i];
    if (key == "--sync") {
      o.sync = true;
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "error: %s needs a value\n", key.c_str());
      return 2;
    }
    const std::string value = argv[++i];
    if (key == "--mode" && (value == "lora" || value == "full"))
      o.mode = value;
    else if (key == "--device")
      o.device = value;
    else if (key == "--rows")
      o.rows = std::atoi(value.c_str());
    else if (key == "--length")
      o.length = std::atoi(value.c_str());
    else if (key == "--steps")
      o.steps = std::atoi(value.c_str());
    else if (key == "--layers")
      o.layers = std::atoi(value.c_str());
    else {
      std::fprintf(stderr, "error: unknown option or value: %s %s\n", key.c_str(), value.c_str());
      return 2;
    }
  }
  if (o.rows < 1 || o.length < 2 || o.steps < 1 || o.layers < 0) {
    std::fprintf(stderr, "error: --rows, --steps ≥ 1, --length ≥ 2, --layers ≥ 0\n");
    return 2;
  }
  try {
    run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
