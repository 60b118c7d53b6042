// The training loop and the eval command (see trainer.h).
#include "engine/train/trainer.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <optional>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/splitmix64.h"
#include "engine/config/run_config.h"
#include "engine/dist/data_parallel.h"
#include "engine/eval/evaluator.h"
#include "engine/lr_schedule.h"
#include "engine/model_setup.h"
#include "engine/optimizer.h"
#include "engine/outputs/metrics_log.h"
#include "engine/outputs/progress.h"
#include "engine/outputs/report_html.h"
#include "engine/outputs/tensorboard_writer.h"
#include "engine/train/checkpoint.h"
#include "engine/train/refactor_schedule.h"
#include "engine/train/run_directory.h"
#include "engine/train/run_plan.h"
#include "engine/train/spectral_refactor.h"
#include "engine/train/step_losses.h"
#include "engine/train/stop_signals.h"
#include "engine/train/train_batches.h"
#include "engine/train_step.h"
#include "engine/training_data.h"
#include "io/hf_export.h"
#include "io/lora_merge.h"
#include "io/peft_adapter.h"
#include "io/peft_weight_conversion.h"
#include "kernels/backend.h"
#include "kernels/communicator.h"
#include "kernels/linalg_backend.h"
#include "model/lora_names.h"

namespace smol {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

void say(const std::string& line) {
  std::fprintf(stderr, "%s\n", line.c_str());
}

// "answer_accuracy" → "eval_answer_accuracy" (HF prefixes metric_for_best_model the same way).
std::string eval_metric_name(const std::string& metric) {
  return metric.rfind("eval_", 0) == 0 ? metric : "eval_" + metric;
}

// Everything train and eval build from a config: backend, model (with its LoRA initialiser),
// the text pipeline and, for initialisers that moved the base weight, the initial A0 / B0.
struct Session {
  RunConfig config;
  std::unique_ptr<Backend> backend;
  BuiltModel built;
  TextPipeline pipeline;
  std::optional<HostTensorMap> initial;
  std::string adapter_base;  // what adapter_config.json names as the base model
};

// The run config with --set overrides, its accepted-but-ignored keys said once. `verbose` false:
// a data-parallel rank other than 0, which says nothing (rank 0 speaks for all).
RunConfig load_session_config(const std::string& config_path,
                              const std::vector<std::string>& overrides,
                              const std::string& data_dir, bool verbose) {
  RunConfig config = load_run_config(config_path, overrides);
  config.data_dir = data_dir;
  if (!config.warnings.empty() && verbose) {
    // One warning naming every key that is accepted but changes nothing here (the reasons:
    // `smolengine config CONFIG` prints one line per key, `config --help-keys` the table).
    std::string keys;
    for (const std::string& warning : config.warnings)
      keys += (keys.empty() ? "" : ", ") + warning.substr(0, warning.find(':'));
    say("warning: " + std::to_string(config.warnings.size()) +
        " config keys are accepted but not acted on: " + keys + " (`smolengine config " +
        config_path + "` says why)");
  }
  return config;
}

// Backend, model and text pipeline for a loaded config.
Session open_session(RunConfig config, const std::string& device, bool verbose = true) {
  Session s;
  const auto say = [verbose](const std::string& line) {
    if (verbose) smol::say(line);
  };
  const std::string config_path = config.path;
  s.config = std::move(config);
  s.backend = make_backend(device);
  const auto start = Clock::now();
  s.built = build_model(*s.backend, s.config);
  LlamaModel& model = *s.built.model;
  SMOL_CHECK(!s.config.trainer.spectral() || model.mode() == TrainMode::Lora, config_path,
             ": trainer.name SpectralRefactorTrainer refactors LoRA pairs; peft.method is not "
             "lora");
  say("model: " + s.built.weights_source + " on " + s.backend->name() + " (" +
      (model.mode() == TrainMode::Full
           ? std::string("full fine-tuning")
           : "LoRA " + (s.built.lora_init ? s.built.lora_init->method : std::string())) +
      "), ready in " + std::to_string(static_cast<int>(seconds_between(start, Clock::now()))) +
      " s");
  if (s.built.lora_init && s.built.lora_init->residualised) {
    HostTensorMap initial;
    for (const TrainableParam& p : model.trainable_params())
      initial[p.name] = model.read_tensor(p.name);
    s.initial = std::move(initial);
  }
  s.pipeline = make_text_pipeline(s.config, model.config().vocab_size,
                                  model.config().max_position_embeddings);
  s.adapter_base = s.config.model.name_or_path;
  return s;
}

PeftAdapterConfig adapter_config_of(const RunConfig& config, const std::string& base);

// A random model's adapter is meaningless without its base, which exists in no file: the run
// directory gets it as an HF model directory (base_model/, with the tokenizer), and
// adapter_config.json names it, so PEFT, `eval` and `export` can rebuild the trained model.
// For an initialiser that moved the base, s·B0·A0 is added back (the ORIGINAL random base).
std::string write_random_base(const Session& s, const std::string& output_dir) {
  LlamaModel& model = *s.built.model;
  HfExportContents contents;
  contents.config = model.config();
  for (const std::string& name : model.tensor_names())
    if (name.find(".lora_") == std::string::npos) contents.weights[name] = model.read_tensor(name);
  if (s.initial) {
    PeftAdapter initial;
    initial.config = adapter_config_of(s.config, "");
    initial.tensors = *s.initial;
    merge_peft_adapter(contents.weights, initial, "the random base model");
  }
  contents.dtype = DType::F32;
  const std::string tokenizer_source = !s.config.tokenizer.name_or_path.empty()
                                           ? s.config.tokenizer.name_or_path
                                           : s.config.model.name_or_path;
  if (!tokenizer_source.empty()) contents.tokenizer = tokenizer_of_source(tokenizer_source);
  const std::string path = (fs::path(output_dir) / "base_model").string();
  write_hf_export_dir(path, contents, /*force=*/true);
  return path;
}

PeftAdapterConfig adapter_config_of(const RunConfig& config, const std::string& base) {
  PeftAdapterConfig c;
  c.base_model_name_or_path = base;
  const LoraSettings& lora = config.peft.lora;
  c.r = lora.r;
  c.lora_alpha = lora.alpha;
  c.lora_dropout = lora.dropout;
  c.use_rslora = lora.use_rslora;
  for (Projection p : lora.targets) c.target_modules.push_back(projection_name(p));
  return c;
}

EvalOptions eval_options_of(const RunConfig& config, const TextPipeline& pipeline) {
  const EvaluationSection& e = config.evaluation;
  EvalOptions o;
  o.batch_size = e.batch_size > 0 ? e.batch_size : config.training.per_device_eval_batch_size;
  o.generative = e.generative;
  o.generative_samples = e.generative_samples;
  o.max_new_tokens = static_cast<int32_t>(e.max_new_tokens);
  o.stop_strings = e.stop_strings;
  // Generation stops at the EOS the examples end with and at the tokenizer's own EOS (the
  // Instruct GGUF's <|im_end|> differs from the seed's <|endoftext|>).
  for (int32_t id : {pipeline.example.eos_id, pipeline.tokenizer->eos_id()})
    if (id >= 0 && std::find(o.stop_tokens.begin(), o.stop_tokens.end(), id) == o.stop_tokens.end())
      o.stop_tokens.push_back(id);
  return o;
}

EvalSet load_eval_set(const Session& s, const std::string& split, bool verbose = true) {
  const auto start = Clock::now();
  EvalSet set = prepare_eval_set(s.pipeline, load_dataset_split(s.config, split), split);
  SMOL_CHECK(!set.examples.empty(), s.config.path, ": the eval split '", split,
             "' gives no example");
  if (verbose)
    say("eval split " + split + ": " + std::to_string(set.examples.size()) + " examples (" +
        std::to_string(seconds_between(start, Clock::now())).substr(0, 4) + " s)");
  return set;
}

void write_jsonl(const std::string& path, const std::vector<nlohmann::json>& rows) {
  std::string text;
  for (const nlohmann::json& row : rows) text += row.dump() + "\n";
  write_file_atomically(path, text);
}

nlohmann::json metrics_json(const EvalResult& r, double epoch, int64_t step) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, v] : r.metrics) j[k] = v;
  j["epoch"] = epoch;
  j["step"] = step;
  return j;
}

// The run's outputs besides checkpoints: metrics.jsonl, TensorBoard, report.html.
class RunOutputs {
 public:
  RunOutputs(const std::string& dir, bool resumed, int64_t resumed_step, std::string title,
             std::string config_yaml, std::string device)
      : dir_(dir),
        title_(std::move(title)),
        config_yaml_(std::move(config_yaml)),
        device_(std::move(device)) {
    const std::string metrics = (fs::path(dir) / "metrics.jsonl").string();
    if (resumed) MetricsLog::truncate_after_step(metrics, resumed_step);
    log_ = std::make_unique<MetricsLog>(metrics, resumed);
    tensorboard_ = std::make_unique<TensorBoardWriter>(dir);
    // TensorBoard drops what the earlier attempt logged after the checkpoint's step.
    if (resumed) tensorboard_->mark_restart(resumed_step + 1);
  }

  void event(const std::string& kind, int64_t step, double epoch, double elapsed,
             const std::vector<std::pair<std::string, double>>& scalars,
             const nlohmann::json& extra = nullptr) {
    LogEvent e;
    e.kind = kind;
    e.step = step;
    e.epoch = epoch;
    e.elapsed_seconds = elapsed;
    e.scalars = scalars;
    e.extra = extra;
    log_->write(e);
    for (const auto& [name, value] : scalars) {
      // TensorBoard tags as HF's TensorBoardCallback writes them: train/loss, eval/loss.
      const bool is_eval = name.rfind("eval_", 0) == 0;
      const std::string tag = is_eval ? "eval/" + name.substr(5) : "train/" + name;
      if (std::isfinite(value)) tensorboard_->add_scalar(tag, value, step);
    }
    tensorboard_->flush();
  }

  void report(const std::string& status, const std::vector<nlohmann::json>& predictions) {
    ReportInput input;
    input.title = title_;
    char when[32];
    const std::time_t now = std::time(nullptr);
    std::strftime(when, sizeof(when), "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
    input.subtitle = status + " · " + device_ + " · " + when;
    input.config_yaml = config_yaml_;
    input.events = MetricsLog::read((fs::path(dir_) / "metrics.jsonl").string());
    input.predictions = predictions;
    write_report_html((fs::path(dir_) / "report.html").string(), input);
  }

 private:
  std::string dir_, title_, config_yaml_, device_;
  std::unique_ptr<MetricsLog> log_;
  std::unique_ptr<TensorBoardWriter> tensorboard_;
};

std::string format_metric(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.4g", v);
  return buf;
}

std::string metrics_line(const EvalResult& r) {
  std::string line;
  for (const auto& [k, v] : r.metrics) {
    if (k == "eval_runtime" || k == "eval_samples" || k == "eval_generated_tokens" ||
        k == "eval_generated_samples")
      continue;
    line += (line.empty() ? "" : "  ") + k.substr(5) + " " + format_metric(v);
  }
  return line;
}

// Writes the final adapter (LoRA) or model (full) into the output directory itself.
void save_final_model(const Session& s, const std::string& dir) {
  LlamaModel& model = *s.built.model;
  HostTensorMap trained;
  for (const TrainableParam& p : model.trainable_params())
    trained[p.name] = model.read_tensor(p.name);
  write_trained_model(dir, model, trained, adapter_config_of(s.config, s.adapter_base),
                      s.initial ? &*s.initial : nullptr);
}

// The device of a data-parallel rank: its own GPU (LOCAL_RANK) unless the device names one.
std::string device_for_rank(const std::string& device, const LaunchInfo& launch) {
  if (!launch.distributed() || device.find(':') != std::string::npos) return device;
  if (device == "cuda" || device == "auto") return device + ":" + std::to_string(launch.local_rank);
  return device;
}

// The communicator of this process (docs/design.md §8); one rank without a launcher.
std::unique_ptr<Communicator> open_communicator(Session& s, const LaunchInfo& launch) {
  CommunicatorOptions options;
  options.timeout_seconds = s.config.training.ddp_timeout;
  std::unique_ptr<Communicator> comm = make_communicator(*s.backend, launch, options);
  if (comm->world_size() > 1 && comm->rank() == 0)
    say("data parallel: " + std::to_string(comm->world_size()) + " ranks over " + comm->name() +
        " (" + launch.source + ")");
  return comm;
}

// Runs `body`; on a data-parallel run an error on one rank is printed with the rank and takes the
// whole job down (the other ranks would otherwise wait in a collective until the timeout).
template <typename Body>
auto run_ranks(Communicator& comm, Body&& body) -> decltype(body()) {
  if (comm.world_size() == 1) return body();
  try {
    return body();
  } catch (const std::exception& e) {
    // Communicator errors already name the rank ("rank R of N: …"); say it once.
    const std::string prefix =
        "rank " + std::to_string(comm.rank()) + " of " + std::to_string(comm.world_size()) + ": ";
    const std::string message = e.what();
    std::fprintf(stderr, "error: %s%s\n", message.rfind(prefix, 0) == 0 ? "" : prefix.c_str(),
                 message.c_str());
    std::fflush(stderr);
    comm.abort(1);
    throw;  // not reached: abort() ends the process
  }
}

std::string output_dir_of(const TrainOptions& options, const RunConfig& config) {
  const std::string dir =
      !options.output_dir.empty() ? options.output_dir : config.training.output_dir;
  SMOL_CHECK(!dir.empty(), config.path,
             ": no output directory: set training.output_dir or pass --output-dir");
  return dir;
}

int train_ranks(Session& s, const TrainOptions& options, Communicator& comm,
                const StopSignals& signals, Clock::time_point run_start);

}  // namespace

int run_training(const TrainOptions& options) {
  const auto run_start = Clock::now();
  const LaunchInfo launch = read_launch_environment();
  const bool main_rank = launch.rank == 0;
  RunConfig config =
      load_session_config(options.config_path, options.overrides, options.data_dir, main_rank);
  SMOL_CHECK(!(options.overwrite && !options.resume.empty()),
             "--overwrite and --resume exclude each other: --overwrite deletes the run that "
             "--resume would continue");
  // Quantised weights are an inference option (docs/cpu-speed.md "Quantised inference"): the
  // backward needs dense frozen weights, so say so before anything loads or is written.
  SMOL_CHECK(config.model.weights_in_memory != "quantized", config.path,
             ": model.weights_in_memory: quantized is for generate and eval; train needs the "
             "weights dense (fp32, or bf16 with training.cpu_precision: bf16)");
  // The run directory's guards come before the model loads (run_directory.h): an unwritable
  // directory, a second process or an existing run fails in a second, not after an hour.
  // Rank 0 alone writes the directory, so it alone locks it.
  const std::string output_dir = output_dir_of(options, config);
  std::error_code ec;
  // A directory this run creates is removed again if the run fails before writing into it.
  const bool directory_is_new = main_rank && !fs::exists(output_dir, ec);
  std::optional<RunDirectoryLock> lock;
  try {
    if (main_rank) {
      check_directory_writable(output_dir);
      lock.emplace(output_dir);
      const RunStart start = !options.resume.empty() ? RunStart::Resume
                             : options.overwrite     ? RunStart::Overwrite
                                                     : RunStart::Fresh;
      for (const std::string& line : prepare_run_directory(output_dir, start)) say(line);
    }
    const StopSignals signals;  // from here on SIGINT / SIGTERM stop at the next step's end
    Session s = open_session(std::move(config), device_for_rank(options.device, launch), main_rank);
    const std::unique_ptr<Communicator> comm = open_communicator(s, launch);
    return run_ranks(*comm, [&] { return train_ranks(s, options, *comm, signals, run_start); });
  } catch (...) {
    if (directory_is_new && lock) remove_unused_run_directory(output_dir);
    throw;
  }
}

namespace {

int train_ranks(Session& s, const TrainOptions& options, Communicator& comm,
                const StopSignals& signals, Clock::time_point run_start) {
  const bool main_rank = comm.rank() == 0;  // writes every output; the others compute only
  const auto say = [main_rank](const std::string& line) {
    if (main_rank) smol::say(line);
  };
  const RunConfig& config = s.config;
  const TrainingSection& t = config.training;
  const std::string output_dir = output_dir_of(options, config);
  std::error_code ec;
  fs::create_directories(output_dir, ec);  // the other ranks' view (rank 0 created it)
  const bool resuming = !options.resume.empty();
  const std::string config_yaml = to_yaml(config);
  LlamaModel& model = *s.built.model;
  Backend& backend = *s.backend;
  DataParallel data_parallel(comm, model, t.per_device_train_batch_size);

  // ---- data ------------------------------------------------------------------------------
  auto data_start = Clock::now();
  const Dataset train_rows = load_dataset_split(config, config.dataset.train_split);
  const std::vector<TokenizedExample> train_examples = build_examples(s.pipeline, train_rows);
  SMOL_CHECK(!train_examples.empty(), config.path, ": the train split '",
             config.dataset.train_split, "' gives no example");
  int64_t train_tokens = 0;
  for (const TokenizedExample& e : train_examples)
    train_tokens += static_cast<int64_t>(e.input_ids.size());
  say("train split " + config.dataset.train_split + ": " + std::to_string(train_rows.size()) +
      " rows -> " + std::to_string(train_examples.size()) + " examples, " +
      std::to_string(train_tokens) + " tokens (tokenised in " +
      std::to_string(seconds_between(data_start, Clock::now())).substr(0, 4) + " s)");
  std::optional<EvalSet> eval_set;
  if (config.dataset.eval_split && t.eval_strategy != "no")
    eval_set = load_eval_set(s, *config.dataset.eval_split, main_rank);
  const EvalOptions eval_options = eval_options_of(config, s.pipeline);

  const RunPlan plan = plan_run(config, static_cast<int64_t>(train_examples.size()),
                                eval_set.has_value(), comm.world_size());
  say("plan: " + describe_plan(plan));
  // Global micro-batches: each rank keeps its share (engine/dist/data_parallel.h).
  TrainBatches batches(train_examples, plan.micro_batch_size * comm.world_size(), plan.accumulation,
                       t.data_seed, t.dataloader_drop_last);
  // Activations planned once, for the largest micro-batch this rank can be given (its share of
  // a global micro-batch is at most micro_batch_size rows), so that no step allocates
  // (docs/design.md §2.9; an evaluation batch larger than that plans inference buffers meanwhile).
  {
    const int64_t most = most_tokens_in_rows(train_examples, plan.micro_batch_size);
    model.plan_activations(std::max<int64_t>(most, 1), /*training=*/true);
    say("activations: planned once, for " + std::to_string(most) +
        " tokens per micro-batch (the longest rows)");
  }

  AdamWSettings adamw;
  adamw.beta1 = t.adam_beta1;
  adamw.beta2 = t.adam_beta2;
  adamw.eps = t.adam_epsilon;
  adamw.weight_decay = t.weight_decay;
  adamw.max_grad_norm = t.max_grad_norm;
  adamw.no_decay_substrings = t.no_decay;
  AdamW optimizer(backend, model.trainable_params(), adamw, data_parallel.zero_layout());
  if (data_parallel.zero_layout())
    say("ZeRO-1: each rank keeps AdamW state for 1/" + std::to_string(comm.world_size()) +
        " of the parameters");
  const LrSchedule schedule(parse_lr_schedule_kind(t.lr_scheduler_type, config.path),
                            t.learning_rate, plan.max_steps, plan.warmup_steps);

  // ---- spectral refactor (docs/design.md §4) ------------------------------------------------
  // A deterministic function of the weights and moments, so a checkpoint needs nothing more:
  // the resumed run refactors at the same steps from the same state.
  std::optional<RefactorSchedule> refactor_schedule;
  std::unique_ptr<LinalgBackend> linalg;
  std::unique_ptr<SpectralRefactor> refactor;
  if (config.trainer.spectral()) {
    refactor_schedule.emplace(config.trainer, plan.max_steps);
    std::vector<LoraPair> pairs =
        refactor_schedule->select(lora_pairs_of(model.trainable_params(), &optimizer));
    SMOL_CHECK(!pairs.empty(), config.path,
               ": trainer.target_adapter_keys / only_large_layers leave no LoRA pair to refactor");
    linalg = make_linalg(backend);
    refactor = std::make_unique<SpectralRefactor>(backend, *linalg, std::move(pairs));
    say("spectral refactor: " + std::to_string(refactor->pairs().size()) + " LoRA pairs in " +
        std::to_string(refactor->group_count()) + " shape groups, every " +
        std::to_string(config.trainer.refactor_every) + " steps, " + config.trainer.refactor_mode +
        ", timing " + config.trainer.refactor_timing);
  }

  // ---- resume ------------------------------------------------------------------------------
  TrainState progress;
  progress.seed = t.seed;
  progress.data_seed = t.data_seed;
  // The step whose checkpoint is in the output directory as of now (a stop need not save it
  // again); the same on every rank.
  int64_t last_saved_step = -1;
  if (resuming) {
    const std::string dir = resolve_checkpoint(options.resume, output_dir);
    LoadedCheckpoint checkpoint = load_checkpoint(dir);
    check_checkpoint_matches(checkpoint, model, s.initial ? &*s.initial : nullptr);
    SMOL_CHECK(checkpoint.progress.seed == t.seed && checkpoint.progress.data_seed == t.data_seed,
               dir, ": the checkpoint was made with seed ", checkpoint.progress.seed,
               " / data_seed ", checkpoint.progress.data_seed, "; the config says ", t.seed, " / ",
               t.data_seed);
    SMOL_CHECK(checkpoint.progress.global_step <= plan.max_steps, dir,
               ": the checkpoint is at step ", checkpoint.progress.global_step,
               ", past this run's max_steps ", plan.max_steps);
    restore_checkpoint(checkpoint, model, &optimizer);
    progress = checkpoint.progress;
    const fs::path own =
        fs::path(output_dir) / ("checkpoint-" + std::to_string(progress.global_step));
    if (fs::weakly_canonical(dir, ec) == fs::weakly_canonical(own, ec))
      last_saved_step = progress.global_step;
    say("resumed from " + dir + " at step " + std::to_string(progress.global_step));
  }

  // The run's first files are written only now, after the data, the plan and the checkpoint
  // to resume from have been checked: a run that fails on its inputs leaves the directory as
  // it found it (docs/bad-inputs.md).
  if (main_rank)
    write_file_atomically((fs::path(output_dir) / "config.yaml").string(), config_yaml);
  // Every rank built the same random model from the seed; rank 0 writes it.
  if (config.model.random_init)
    s.adapter_base = main_rank ? write_random_base(s, output_dir)
                               : (fs::path(output_dir) / "base_model").string();

  std::optional<RunOutputs> outputs;
  if (main_rank)
    outputs.emplace(output_dir, resuming, progress.global_step,
                    config.training.run_name.empty() ? config.task_name : config.training.run_name,
                    config_yaml,
                    comm.world_size() > 1
                        ? backend.name() + " x " + std::to_string(comm.world_size()) + " ranks"
                        : backend.name());
  const std::string best_metric = eval_metric_name(t.metric_for_best_model);
  const bool maximize = t.best_metric_greater_is_better();
  std::vector<nlohmann::json> last_predictions;

  auto run_eval = [&](int64_t step) {
    const EvalResult r = evaluate(model, *s.pipeline.tokenizer, *eval_set, eval_options, &comm);
    const double epoch = plan.epoch_at(step);
    progress.log_history.push_back(metrics_json(r, epoch, step));
    last_predictions = r.predictions;
    if (main_rank) {
      outputs->event("eval", step, epoch, seconds_between(run_start, Clock::now()), r.metrics);
      write_jsonl((fs::path(output_dir) / "eval_predictions.jsonl").string(), r.predictions);
    }
    return r;
  };

  const bool interactive = ::isatty(::fileno(stdout)) != 0;
  Progress bar(plan.max_steps, main_rank ? stdout : nullptr, interactive);
  if (t.eval_on_start && eval_set && progress.global_step == 0) {
    const EvalResult r = run_eval(0);
    bar.message("eval @ step 0: " + metrics_line(r));
  }

  // One refactor after `completed` optimizer steps, logged as a "refactor" event at `log_step`
  // (step timing: the step just completed; legacy: the update it runs inside of).
  auto run_refactor = [&](int64_t completed, int64_t log_step) {
    const RefactorSettings settings = refactor_schedule->settings_at(completed);
    backend.synchronize();  // the cost measured is the refactor's alone
    const auto start = Clock::now();
    const RefactorReport r = refactor->apply(settings);
    backend.synchronize();
    const double ms = 1e3 * seconds_between(start, Clock::now());
    double mean_change = 0;
    for (double c : r.relative_change) mean_change += c;
    mean_change /= static_cast<double>(std::max<size_t>(r.relative_change.size(), 1));
    if (main_rank)
      outputs->event("refactor", log_step, plan.epoch_at(log_step),
                     seconds_between(run_start, Clock::now()),
                     {{"refactor_ms", ms}, {"refactor_lambda", settings.lambda}},
                     {{"completed_steps", completed},
                      {"layers", r.layers},
                      {"spectra_before", r.spectra_before},
                      {"spectra_after", r.spectra_after},
                      {"relative_change", r.relative_change}});
    bar.message("refactor @ step " + std::to_string(completed) + ": " +
                std::to_string(r.layers.size()) + " pairs, " + config.trainer.refactor_mode +
                (settings.balanced ? " λ " + format_metric(settings.lambda) : std::string()) +
                ", mean relative change of B·A " + format_metric(mean_change) + ", " +
                format_metric(ms) + " ms");
  };

  // The optimizer's device state, read lazily (docs/design.md §2: no host wait inside a step):
  // at logging steps, before an evaluation, before a checkpoint and at the end. An update whose
  // gradient norm was not finite was skipped on the device (with every later one); reading it
  // stops the run naming that step, before anything is evaluated or saved after it.
  // The steps' losses stay on the device too (step_losses.h) and join the host's running sum here,
  // at the same points: a loss that is not finite stops the run naming its step (its update, and
  // every later one, was skipped on the device: AdamW's loss check).
  StepLosses step_losses(backend);
  double loss_since_log = 0;
  auto collect_losses = [&]() {
    for (const StepLoss& s : step_losses.read()) {
      if (!std::isfinite(s.loss))
        throw_error("step ", s.step, " of ", plan.max_steps, ": the loss is not finite (", s.loss,
                    "); the run stopped before applying this update (checkpoints written so far "
                    "are intact; noticed after step ",
                    progress.global_step, ")");
      loss_since_log += s.loss;
    }
  };
  auto read_optimizer = [&]() {
    collect_losses();
    const OptimizerStepStats stats = optimizer.read_step_stats();
    throw_if_update_skipped(stats, plan.max_steps, progress.global_step);
    return stats;
  };

  // Writes checkpoint-<step> (every rank takes part: the moments are gathered) and rotates.
  auto save_now = [&](int64_t now_step) {
    read_optimizer();  // no checkpoint after a skipped update: the last good one stays
    // Never save a broken state: an update can overflow the weights even when its loss and
    // gradients were finite (the next step would only notice later).
    std::vector<Tensor> values;
    for (const TrainableParam& p : model.trainable_params()) values.push_back(p.value);
    const double norm2 = backend.sum_of_squares(values);
    SMOL_CHECK(std::isfinite(norm2), "step ", now_step, " of ", plan.max_steps,
               ": the parameters are not finite after the update; nothing was saved (the "
               "learning rate is too high, or the loss diverged)");
    const std::string name = "checkpoint-" + std::to_string(now_step);
    const HostMoments moments = data_parallel.gather_moments(optimizer);  // every rank
    last_saved_step = now_step;
    if (!main_rank) return;
    CheckpointWrite w;
    w.model = &model;
    w.optimizer = &optimizer;
    w.moments = &moments;
    w.progress = &progress;
    w.plan = &plan;
    w.config_yaml = config_yaml;
    w.adapter_config = adapter_config_of(config, s.adapter_base);
    w.initial = s.initial ? &*s.initial : nullptr;
    w.metric_for_best_model = best_metric;
    w.greater_is_better = maximize;
    std::string path;
    try {
      path = save_checkpoint(output_dir, w);
    } catch (const Error& e) {
      // A full disk (or any write error) during a save: the half-written checkpoint is gone
      // (checkpoint.h), the earlier ones are untouched.
      const auto previous = list_checkpoints(output_dir);
      throw_error("step ", now_step, " of ", plan.max_steps, ": cannot save ", name, ": ", e.what(),
                  "; ",
                  previous.empty() ? std::string("no earlier checkpoint exists")
                                   : "the last complete checkpoint " + previous.back().second +
                                         " is intact (resume from it with --resume latest)");
    }
    for (const std::string& gone :
         rotate_checkpoints(output_dir, t.save_total_limit, progress.best_checkpoint))
      bar.message("deleted " + gone + " (save_total_limit " + std::to_string(t.save_total_limit) +
                  ")");
    bar.message("saved " + path);
    outputs->report("step " + std::to_string(now_step) + " of " + std::to_string(plan.max_steps),
                    last_predictions);
  };

  // SIGINT / SIGTERM (stop_signals.h), agreed on by every rank so that they stop at the same
  // step: the first rank's signal stops them all (one host all-reduce per step, only when
  // data parallel).
  auto stop_signal = [&]() -> int {
    if (comm.world_size() == 1) return signals.requested();
    double signal = signals.requested();
    comm.all_reduce_host(std::span<double>(&signal, 1), ReduceOp::Max);
    return static_cast<int>(signal);
  };
  // Stops the run after a signal at a step boundary: a checkpoint of this step unless one exists,
  // then one line saying where the run is and how to go on. Returns the exit code.
  auto stop_for_signal = [&](int signal) {
    const int64_t step = progress.global_step;
    if (step > 0 && last_saved_step != step) save_now(step);
    bar.finish();
    std::string resume_command = "smolengine train " + options.config_path + " --output-dir " +
                                 output_dir + " --resume latest";
    if (!options.overrides.empty()) resume_command += " (with the same --set options)";
    if (step > 0)
      say(std::string("stopped by ") + StopSignals::name(signal) + " at step " +
          std::to_string(step) + " of " + std::to_string(plan.max_steps) + ": checkpoint " +
          (fs::path(output_dir) / ("checkpoint-" + std::to_string(step))).string() +
          "; continue with: " + resume_command);
    else
      say(std::string("stopped by ") + StopSignals::name(signal) +
          " before the first step: nothing to resume; start again with --overwrite");
    return StopSignals::exit_code(signal);
  };

  // ---- the loop ----------------------------------------------------------------------------
  bar.start(progress.global_step);
  const int64_t first_step = progress.global_step;
  int64_t steps_since_log = 0, tokens_since_log = 0;
  double last_logged_loss = std::numeric_limits<double>::quiet_NaN();  // the bar until a log
  double seconds_since_log = 0;  // training time only: evaluations and saves are not counted
  bool stopped_early = false;
  while (progress.global_step < plan.max_steps && !stopped_early) {
    // The previous step has finished with its logging, evaluation and save: a safe point.
    if (const int signal = stop_signal()) return stop_for_signal(signal);
    const auto step_start = Clock::now();
    const int64_t k = progress.global_step;
    const std::vector<std::vector<TokenRow>> update = batches.next_update(progress.cursor);
    TrainStepResult step;
    // legacy timing (docs/seed-behaviour.md §5.2): after every micro-batch's backward, before
    // the update, so GA times per trigger and against gradients in the old coordinates.
    MicroBatchHook legacy_refactor;
    if (refactor && refactor_schedule->legacy_timing() && refactor_schedule->due(k))
      legacy_refactor = [&](size_t) { run_refactor(k, k + 1); };
    try {
      step = data_parallel.train_step(optimizer, schedule, update, splitmix64_at(progress.seed, k),
                                      legacy_refactor, &step_losses);
    } catch (const Error& e) {
      throw_error("step ", k + 1, " of ", plan.max_steps, ": ", e.what(),
                  "; the run stopped before applying this update (checkpoints written so far are "
                  "intact)");
    }
    progress.global_step = k + 1;
    const int64_t now_step = progress.global_step;
    // step timing (docs/design.md §4): once, after the update, before eval and save see it.
    if (refactor && !refactor_schedule->legacy_timing() && refactor_schedule->due(now_step))
      run_refactor(now_step, now_step);
    ++steps_since_log;
    tokens_since_log += step.tokens;
    // The first step waits for its loss (once): its time is then the device's, not the time to
    // enqueue it, and a broken start shows at once. Later steps wait only at logging steps.
    if (now_step == first_step + 1) collect_losses();
    const double step_seconds = seconds_between(step_start, Clock::now());
    seconds_since_log += step_seconds;
    // On a terminal the bar moves every step (the last logged loss, this step's speed: reading
    // each step's loss would be a host wait per step); plain output gets a line per logging step.
    if (interactive && !plan.log_at(now_step))
      bar.update(now_step, last_logged_loss, schedule.lr(now_step),
                 step_seconds > 0 ? static_cast<double>(step.tokens) / step_seconds : 0.0);
    if (now_step == first_step + 1) {
      // Say early how long the run will take (on the cpu a full run can take days).
      const double seconds = step_seconds;
      bar.message("first step: " + format_metric(seconds) + " s for " +
                  std::to_string(step.tokens) + " tokens; the " +
                  std::to_string(plan.max_steps - now_step) + " steps left take about " +
                  format_duration(seconds * static_cast<double>(plan.max_steps - now_step)) +
                  " on " + backend.name() + " (evaluations not counted)");
    }

    if (plan.log_at(now_step)) {
      const auto read_start = Clock::now();
      const double grad_norm = read_optimizer().grad_norm;  // HF logs the logged step's norm
      const auto now = Clock::now();
      // The read waited for the device to finish the window's queued work: that is training time.
      seconds_since_log += seconds_between(read_start, now);
      const double seconds = seconds_since_log;
      const double loss = loss_since_log / static_cast<double>(steps_since_log);
      const double next_lr = schedule.lr(now_step);
      const double tokens_per_second =
          seconds > 0 ? static_cast<double>(tokens_since_log) / seconds : 0.0;
      const double epoch = plan.epoch_at(now_step);
      if (main_rank)
        outputs->event("train", now_step, epoch, seconds_between(run_start, now),
                       {{"loss", loss},
                        {"grad_norm", grad_norm},
                        {"learning_rate", next_lr},
                        {"tokens_per_second", tokens_per_second}});
      progress.log_history.push_back({{"loss", loss},
                                      {"grad_norm", grad_norm},
                                      {"learning_rate", next_lr},
                                      {"epoch", epoch},
                                      {"step", now_step}});
      bar.update(now_step, loss, next_lr, tokens_per_second);
      last_logged_loss = loss;
      loss_since_log = 0;
      steps_since_log = 0;
      tokens_since_log = 0;
      seconds_since_log = 0;
    }

    bool improved = false;
    if (plan.eval_at(now_step)) {
      read_optimizer();  // never evaluate (or pick as best) a state after a skipped update
      const EvalResult r = run_eval(now_step);
      bar.message("eval @ step " + std::to_string(now_step) + ": " + metrics_line(r));
      const double value = r.value(best_metric);
      const bool better = !progress.best_metric || (maximize ? value > *progress.best_metric
                                                             : value < *progress.best_metric);
      const bool beyond_threshold =
          !progress.best_metric ||
          std::fabs(value - *progress.best_metric) > config.early_stopping_threshold;
      if (better) {
        progress.best_metric = value;
        improved = true;
      }
      if (better && beyond_threshold)
        progress.patience_counter = 0;
      else
        ++progress.patience_counter;
      if (config.early_stopping_patience > 0 &&
          progress.patience_counter >= config.early_stopping_patience) {
        bar.message("early stopping: " + best_metric + " did not improve by more than " +
                    format_metric(config.early_stopping_threshold) + " for " +
                    std::to_string(progress.patience_counter) + " evaluations");
        stopped_early = true;
      }
    }
    if (plan.save_at(now_step) || (stopped_early && plan.saves)) {
      if (improved) progress.best_checkpoint = "checkpoint-" + std::to_string(now_step);
      save_now(now_step);
    }
  }
  bar.finish();
  read_optimizer();  // the end of the run: a skipped update is an error, not a finished run

  // ---- the end -----------------------------------------------------------------------------
  std::optional<EvalResult> final_eval;
  if (t.load_best_model_at_end && !progress.best_checkpoint.empty()) {
    comm.barrier();  // rank 0 has finished writing the checkpoint the others read
    const std::string best_dir = (fs::path(output_dir) / progress.best_checkpoint).string();
    restore_checkpoint(load_checkpoint(best_dir, /*with_optimizer=*/false), model, nullptr);
    say("loaded the best checkpoint " + best_dir + " (" + best_metric + " " +
        format_metric(*progress.best_metric) + ")");
    if (eval_set) final_eval = run_eval(progress.global_step);
  }
  if (!main_rank) return 0;
  save_final_model(s, output_dir);
  nlohmann::json results = nlohmann::json::object();
  for (auto it = progress.log_history.rbegin(); it != progress.log_history.rend(); ++it)
    if (it->contains("eval_loss")) {
      results = *it;
      break;
    }
  write_file_atomically((fs::path(output_dir) / "eval_results.json").string(),
                        results.dump(2) + "\n");
  write_file_atomically(
      (fs::path(output_dir) / "trainer_state.json").string(),
      trainer_state_json(progress, plan, output_dir, best_metric, maximize).dump(2) + "\n");
  outputs->report("finished: " + std::to_string(progress.global_step) + " steps", last_predictions);
  std::string written =
      output_dir + "/report.html, metrics.jsonl, " +
      (model.mode() == TrainMode::Full ? "model.safetensors" : "adapter_model.safetensors");
  if (!list_checkpoints(output_dir).empty()) written += ", checkpoint-*/";
  say("done in " + std::to_string(static_cast<int>(seconds_between(run_start, Clock::now()))) +
      " s: " + written +
      (final_eval ? "; final eval: " + metrics_line(*final_eval) : std::string()));
  // Backend::memory_stats: what the model, its activations and the optimizer allocated at most.
  say("peak " + backend.name() +
      " memory: " + std::to_string((backend.memory_stats().peak + (1 << 20) - 1) >> 20) + " MiB" +
      (comm.world_size() > 1 ? " (rank 0)" : ""));
  // A signal after the last step's checkpoint: the run is complete, and says so; the exit code
  // still tells a script that it was asked to stop.
  if (const int signal = signals.requested()) {
    say(std::string(StopSignals::name(signal)) +
        " arrived after the last step: the run is complete");
    return StopSignals::exit_code(signal);
  }
  return 0;
}

}  // namespace

namespace {

void evaluate_ranks(Session& s, const EvalCommandOptions& options, Communicator& comm) {
  RunConfig& config = s.config;
  if (!options.checkpoint.empty()) {
    const LoadedCheckpoint checkpoint = load_checkpoint(options.checkpoint, false);
    check_checkpoint_matches(checkpoint, *s.built.model, s.initial ? &*s.initial : nullptr);
    restore_checkpoint(checkpoint, *s.built.model, nullptr);
  }
  const std::string split = !options.split.empty()      ? options.split
                            : config.dataset.eval_split ? *config.dataset.eval_split
                                                        : std::string();
  SMOL_CHECK(!split.empty(), config.path,
             ": no eval split: set dataset.eval_split or pass --split");
  EvalOptions eval_options = eval_options_of(config, s.pipeline);
  if (options.max_new_tokens >= 0)
    eval_options.max_new_tokens = static_cast<int32_t>(options.max_new_tokens);
  if (options.generative_samples >= -1)
    eval_options.generative_samples = options.generative_samples;
  const EvalSet set = load_eval_set(s, split, comm.rank() == 0);
  const EvalResult result =
      evaluate(*s.built.model, *s.pipeline.tokenizer, set, eval_options, &comm);
  if (comm.rank() != 0) return;
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [k, v] : result.metrics) out[k] = v;
  out["split"] = split;
  out["checkpoint"] =
      options.checkpoint.empty() ? nlohmann::json(nullptr) : nlohmann::json(options.checkpoint);
  const std::string predictions_path =
      !options.out.empty() ? options.out
      : !options.checkpoint.empty()
          ? (fs::path(options.checkpoint) / "eval_predictions.jsonl").string()
          : (fs::path(config.training.output_dir.empty() ? "." : config.training.output_dir) /
             "eval_predictions.jsonl")
                .string();
  if (!result.predictions.empty()) {
    fs::create_directories(fs::path(predictions_path).parent_path().empty()
                               ? fs::path(".")
                               : fs::path(predictions_path).parent_path());
    write_jsonl(predictions_path, result.predictions);
    out["predictions"] = predictions_path;
  }
  std::printf("%s\n", out.dump(2).c_str());
}

}  // namespace

void run_evaluation(const EvalCommandOptions& options) {
  // Under a launcher the examples are shared by the ranks (engine/eval/evaluator.h) and rank 0
  // prints and writes the result.
  const LaunchInfo launch = read_launch_environment();
  Session s = open_session(load_session_config(options.config_path, options.overrides,
                                               options.data_dir, launch.rank == 0),
                           device_for_rank(options.device, launch), launch.rank == 0);
  const std::unique_ptr<Communicator> comm = open_communicator(s, launch);
  run_ranks(*comm, [&] { evaluate_ranks(s, options, *comm); });
}

}  // namespace smol
