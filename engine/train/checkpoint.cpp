// Checkpoint directories (see checkpoint.h).
#include "engine/train/checkpoint.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>

#include "common/atomic_file.h"
#include "common/durable_sync.h"
#include "common/error.h"
#include "common/regular_file.h"
#include "data/bounded_json.h"
#include "io/hf_export.h"
#include "io/peft_weight_conversion.h"
#include "io/safetensors_io.h"
#include "model/host_transfer.h"

namespace smol {

namespace fs = std::filesystem;

namespace {

constexpr const char* kStateFile = "training_state.safetensors";
constexpr const char* kStateFormat = "smolengine.training_state.v1";

std::string json_number_or_null(const std::optional<double>& v) {
  return v ? nlohmann::json(*v).dump() : "null";
}

}  // namespace

nlohmann::json trainer_state_json(const TrainState& p, const RunPlan& plan,
                                  const std::string& output_dir,
                                  const std::string& metric_for_best_model,
                                  bool greater_is_better) {
  nlohmann::json s;
  // HF TrainerState fields (trainer_callback.py), so tools that read HF checkpoints read ours.
  s["best_global_step"] = nullptr;
  s["best_metric"] = p.best_metric ? nlohmann::json(*p.best_metric) : nlohmann::json(nullptr);
  s["best_model_checkpoint"] =
      p.best_checkpoint.empty()
          ? nlohmann::json(nullptr)
          : nlohmann::json((fs::path(output_dir) / p.best_checkpoint).string());
  if (!p.best_checkpoint.empty()) {
    const std::string digits = p.best_checkpoint.substr(p.best_checkpoint.rfind('-') + 1);
    s["best_global_step"] = std::stoll(digits);
  }
  s["epoch"] = plan.epoch_at(p.global_step);
  s["eval_steps"] = plan.eval_steps;
  s["global_step"] = p.global_step;
  s["is_hyper_param_search"] = false;
  s["is_local_process_zero"] = true;
  s["is_world_process_zero"] = true;
  s["log_history"] = p.log_history;
  s["logging_steps"] = plan.logging_steps;
  s["max_steps"] = plan.max_steps;
  s["num_input_tokens_seen"] = 0;
  s["num_train_epochs"] =
      plan.updates_per_epoch > 0
          ? (plan.max_steps + plan.updates_per_epoch - 1) / plan.updates_per_epoch
          : 0;
  s["save_steps"] = plan.save_steps;
  s["stateful_callbacks"] = nlohmann::json::object();
  s["total_flos"] = 0;
  s["train_batch_size"] = plan.micro_batch_size;
  s["trial_name"] = nullptr;
  s["trial_params"] = nullptr;
  s["smolengine_metric_for_best_model"] = metric_for_best_model;
  s["smolengine_greater_is_better"] = greater_is_better;
  return s;
}

namespace {

int64_t metadata_int(const SafetensorsFile& file, const std::string& key) {
  const auto it = file.metadata().find(key);
  SMOL_CHECK(it != file.metadata().end(), file.path(), ": metadata '", key, "' is missing");
  try {
    size_t used = 0;
    const long long v = std::stoll(it->second, &used);
    SMOL_CHECK(used == it->second.size(), "trailing characters");
    return v;
  } catch (const std::exception&) {
    throw_error(file.path(), ": metadata '", key, "' = '", it->second, "' is not an integer");
  }
}

std::string metadata_text(const SafetensorsFile& file, const std::string& key) {
  const auto it = file.metadata().find(key);
  SMOL_CHECK(it != file.metadata().end(), file.path(), ": metadata '", key, "' is missing");
  return it->second;
}

// Deletes a checkpoint directory so that a kill at any moment never leaves a partial directory
// under a checkpoint's name: it is renamed to "<name>.deleted.<pid>" first (atomic), then
// removed; a leftover *.deleted.* is removed at the next start (engine/train/run_directory.h).
void remove_checkpoint_directory(const fs::path& dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) return;
  const fs::path doomed = dir.string() + ".deleted." + std::to_string(::getpid());
  fs::remove_all(doomed, ec);
  fs::rename(dir, doomed, ec);
  SMOL_CHECK(!ec, "cannot move ", dir.string(), " aside to delete it: ", ec.message());
  fs::remove_all(doomed, ec);
}

// checkpoint-<digits> with nothing after the digits.
std::optional<int64_t> checkpoint_step(const std::string& name) {
  static const std::string prefix = "checkpoint-";
  if (name.rfind(prefix, 0) != 0 || name.size() == prefix.size()) return std::nullopt;
  const std::string digits = name.substr(prefix.size());
  if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  if (digits.size() > 15) return std::nullopt;
  return std::stoll(digits);
}

}  // namespace

void write_trained_model(const std::string& dir, const LlamaModel& model,
                         const HostTensorMap& trained, PeftAdapterConfig adapter_config,
                         const HostTensorMap* initial) {
  if (model.mode() == TrainMode::Full) {
    write_hf_model_safetensors((fs::path(dir) / "model.safetensors").string(), trained, DType::F32);
    write_file_atomically((fs::path(dir) / "config.json").string(), hf_config_json(model.config()));
  } else if (initial != nullptr) {
    const HostTensorMap converted = convert_to_plain_lora(trained, *initial, adapter_config);
    write_peft_adapter(dir, adapter_config, converted);
  } else {
    write_peft_adapter(dir, adapter_config, trained);
  }
}

void check_checkpoint_matches(const LoadedCheckpoint& c, const LlamaModel& model,
                              const HostTensorMap* initial) {
  SMOL_CHECK(c.full_finetune == (model.mode() == TrainMode::Full), c.dir,
             ": the checkpoint's mode does not match peft.method");
  if (initial == nullptr) return;
  // The initialiser ran again from the same seed; if it did not land on the same A0 / B0 the
  // residual base differs, and neither a continuation nor an evaluation would be of this run.
  for (const auto& [name, tensor] : *initial) {
    const auto it = c.initial.find(name);
    SMOL_CHECK(it != c.initial.end() && it->second.data == tensor.data, c.dir,
               ": the LoRA initialiser did not reproduce the checkpoint's initial ", name,
               " (different config, data or device?)");
  }
}

std::string save_checkpoint(const std::string& output_dir, const CheckpointWrite& w) {
  SMOL_CHECK(w.model && w.optimizer && w.moments && w.progress && w.plan,
             "save_checkpoint: incomplete input");
  LlamaModel& model = *w.model;
  Backend& backend = model.backend();
  const TrainState& p = *w.progress;
  const fs::path final_dir = fs::path(output_dir) / ("checkpoint-" + std::to_string(p.global_step));
  const fs::path tmp_dir = final_dir.string() + ".tmp." + std::to_string(::getpid());
  std::error_code ec;
  fs::remove_all(tmp_dir, ec);
  fs::create_directories(tmp_dir, ec);
  SMOL_CHECK(!ec, "cannot create ", tmp_dir.string(), ": ", ec.message());
  try {
    const bool full = model.mode() == TrainMode::Full;
    std::vector<TrainableParam> params = model.trainable_params();
    HostTensorMap trained;
    for (const TrainableParam& param : params)
      trained[param.name] = download_host_tensor(backend, param.value);

    write_trained_model(tmp_dir.string(), model, trained, w.adapter_config, w.initial);

    std::vector<SafetensorsWriteEntry> entries;
    const AdamW& optimizer = *w.optimizer;
    for (const TrainableParam& param : optimizer.params()) {
      const auto m = w.moments->exp_avg.find(param.name);
      const auto v = w.moments->exp_avg_sq.find(param.name);
      SMOL_CHECK(m != w.moments->exp_avg.end() && v != w.moments->exp_avg_sq.end(),
                 "save_checkpoint: no AdamW moments for ", param.name);
      entries.push_back(
          SafetensorsWriteEntry::from_host("optimizer.exp_avg." + param.name, m->second));
      entries.push_back(
          SafetensorsWriteEntry::from_host("optimizer.exp_avg_sq." + param.name, v->second));
    }
    if (!full)
      for (const auto& [name, tensor] : trained)
        entries.push_back(SafetensorsWriteEntry::from_host("param." + name, tensor));
    if (w.initial != nullptr)
      for (const auto& [name, tensor] : *w.initial)
        entries.push_back(SafetensorsWriteEntry::from_host("initial." + name, tensor));
    const std::map<std::string, std::string> metadata = {
        {"smolengine.format", kStateFormat},
        {"mode", full ? "full" : "lora"},
        {"global_step", std::to_string(p.global_step)},
        {"optimizer_steps", std::to_string(optimizer.steps_done())},
        {"cursor_epoch", std::to_string(p.cursor.epoch)},
        {"cursor_micro_batch", std::to_string(p.cursor.micro_batch)},
        {"seed", std::to_string(p.seed)},
        {"data_seed", std::to_string(p.data_seed)},
        {"best_metric", json_number_or_null(p.best_metric)},
        {"best_checkpoint", p.best_checkpoint},
        {"patience_counter", std::to_string(p.patience_counter)}};
    write_safetensors((tmp_dir / kStateFile).string(), entries, metadata);
    write_file_atomically(
        (tmp_dir / "trainer_state.json").string(),
        trainer_state_json(p, *w.plan, output_dir, w.metric_for_best_model, w.greater_is_better)
                .dump(2) +
            "\n");
    write_file_atomically((tmp_dir / "smolengine_config.yaml").string(), w.config_yaml);
  } catch (...) {
    fs::remove_all(tmp_dir, ec);
    throw;
  }
  // A checkpoint of the same step from an abandoned trajectory (before a resume) is replaced.
  try {
    remove_checkpoint_directory(final_dir);
  } catch (...) {
    fs::remove_all(tmp_dir, ec);
    throw;
  }
  // Durable before it is named (common/durable_sync.h): every file was fsync'ed as it was
  // written; the directory's entries now, and the new name in the output directory after.
  try {
    sync_to_disk(tmp_dir.string(), /*directory=*/true);
  } catch (...) {
    fs::remove_all(tmp_dir, ec);
    throw;
  }
  fs::rename(tmp_dir, final_dir, ec);
  if (ec) {
    fs::remove_all(tmp_dir, ec);
    throw_error("cannot rename ", tmp_dir.string(), " to ", final_dir.string());
  }
  sync_to_disk(final_dir.parent_path().string(), /*directory=*/true);
  return final_dir.string();
}

LoadedCheckpoint load_checkpoint(const std::string& dir, bool with_optimizer) {
  SMOL_CHECK(fs::is_directory(dir), "checkpoint ", dir, " is not a directory");
  const fs::path state_path = fs::path(dir) / kStateFile;
  SMOL_CHECK(fs::is_regular_file(state_path), "checkpoint ", dir, " has no ", kStateFile,
             " (not a smolengine checkpoint, or an interrupted save)");
  const SafetensorsFile state = SafetensorsFile::open(state_path.string());
  SMOL_CHECK(metadata_text(state, "smolengine.format") == kStateFormat, state.path(),
             ": unknown format '", metadata_text(state, "smolengine.format"), "'");
  LoadedCheckpoint c;
  c.dir = dir;
  c.full_finetune = metadata_text(state, "mode") == "full";
  TrainState& p = c.progress;
  p.global_step = metadata_int(state, "global_step");
  p.cursor.epoch = metadata_int(state, "cursor_epoch");
  p.cursor.micro_batch = metadata_int(state, "cursor_micro_batch");
  p.seed = static_cast<uint64_t>(metadata_int(state, "seed"));
  p.data_seed = static_cast<uint64_t>(metadata_int(state, "data_seed"));
  const std::string best = metadata_text(state, "best_metric");
  if (best != "null") {
    try {
      p.best_metric = nlohmann::json::parse(best).get<double>();
    } catch (const std::exception&) {
      throw_error(state.path(), ": metadata best_metric '", best, "' is not a number");
    }
  }
  p.best_checkpoint = metadata_text(state, "best_checkpoint");
  p.patience_counter = metadata_int(state, "patience_counter");
  SMOL_CHECK(p.global_step >= 0 && p.cursor.epoch >= 0 && p.cursor.micro_batch >= 0, state.path(),
             ": negative step or data position");
  for (const SafetensorsEntry& e : state.entries()) {
    const auto take = [&](const std::string& prefix, HostTensorMap& into) {
      if (e.name.rfind(prefix, 0) != 0) return false;
      into[e.name.substr(prefix.size())] = state.read_f32(e.name);
      return true;
    };
    if (take("param.", c.params) || take("initial.", c.initial)) continue;
    if (with_optimizer) {
      if (take("optimizer.exp_avg_sq.", c.exp_avg_sq)) continue;
      take("optimizer.exp_avg.", c.exp_avg);
    }
  }
  if (c.full_finetune) {
    const fs::path weights = fs::path(dir) / "model.safetensors";
    SMOL_CHECK(fs::is_regular_file(weights), "checkpoint ", dir, " has no model.safetensors");
    const SafetensorsFile file = SafetensorsFile::open(weights.string());
    for (const SafetensorsEntry& e : file.entries()) c.params[e.name] = file.read_f32(e.name);
  }
  const fs::path trainer_state = fs::path(dir) / "trainer_state.json";
  SMOL_CHECK(fs::is_regular_file(trainer_state), "checkpoint ", dir, " has no trainer_state.json");
  const std::string state_text =
      read_regular_file(trainer_state.string(), "trainer state", kMaxStateJsonBytes);
  try {
    const nlohmann::json s = parse_bounded_json(state_text, trainer_state.string());
    p.log_history = s.at("log_history");
    SMOL_CHECK(p.log_history.is_array(), "log_history is not a list");
  } catch (const std::exception& e) {
    throw_error(trainer_state.string(), ": ", e.what());
  }
  return c;
}

LoadedCheckpoint verify_checkpoint(const std::string& dir) {
  LoadedCheckpoint c = load_checkpoint(dir, /*with_optimizer=*/true);
  const fs::path root(dir);
  const auto require_file = [&](const char* name) {
    SMOL_CHECK(fs::is_regular_file(root / name), "checkpoint ", dir, " has no ", name);
    return (root / name).string();
  };
  // Every moment pairs with a trained tensor of the same shape.
  for (const auto& [name, m] : c.exp_avg) {
    const auto v = c.exp_avg_sq.find(name);
    SMOL_CHECK(v != c.exp_avg_sq.end() && v->second.shape == m.shape, dir, ": AdamW exp_avg_sq of ",
               name, " is missing or has another shape");
  }
  SMOL_CHECK(c.exp_avg.size() == c.exp_avg_sq.size(), dir, ": AdamW moments do not pair up");
  if (c.full_finetune) {
    const std::string config = require_file("config.json");
    std::ifstream in(config);
    SMOL_CHECK(nlohmann::json::parse(in, nullptr, false).is_object(), config,
               ": not a JSON object");
  } else {
    // The adapter PEFT loads: every tensor read in full, one per trained LoRA tensor (or two
    // halves of the rank-2r conversion, the same count).
    const SafetensorsFile adapter =
        SafetensorsFile::open(require_file("adapter_model.safetensors"));
    for (const SafetensorsEntry& e : adapter.entries()) (void)adapter.read_f32(e.name);
    SMOL_CHECK(adapter.entries().size() == c.params.size(), adapter.path(), ": ",
               adapter.entries().size(), " tensors for ", c.params.size(), " trained ones");
    for (const auto& [name, m] : c.params)
      SMOL_CHECK(c.exp_avg.count(name) == 1, dir, ": no AdamW moments for ", name);
    const std::string config = require_file("adapter_config.json");
    std::ifstream in(config);
    SMOL_CHECK(nlohmann::json::parse(in, nullptr, false).is_object(), config,
               ": not a JSON object");
  }
  const std::string yaml = require_file("smolengine_config.yaml");
  SMOL_CHECK(fs::file_size(yaml) > 0, yaml, " is empty");
  const std::optional<int64_t> step = checkpoint_step(root.filename().string());
  SMOL_CHECK(!step || *step == c.progress.global_step, dir, ": holds step ", c.progress.global_step,
             ", not the step its name says");
  return c;
}

void restore_checkpoint(const LoadedCheckpoint& c, LlamaModel& model, AdamW* optimizer) {
  const std::vector<TrainableParam> params = model.trainable_params();
  for (const TrainableParam& p : params) {
    const auto it = c.params.find(p.name);
    SMOL_CHECK(it != c.params.end(), "checkpoint ", c.dir, " has no tensor ", p.name,
               " (was it saved by a run with another peft / model config?)");
    SMOL_CHECK(it->second.shape == p.value.shape, "checkpoint ", c.dir, ": ", p.name, " is ",
               it->second.shape.str(), " but the model's is ", p.value.shape.str());
    model.write_tensor(p.name, it->second);
  }
  if (optimizer == nullptr) return;
  for (size_t i = 0; i < optimizer->params().size(); ++i) {
    const std::string& name = optimizer->params()[i].name;
    const auto m = c.exp_avg.find(name);
    const auto v = c.exp_avg_sq.find(name);
    SMOL_CHECK(m != c.exp_avg.end() && v != c.exp_avg_sq.end(), "checkpoint ", c.dir,
               " has no AdamW moments for ", name);
    const Shape& shape = optimizer->params()[i].value.shape;
    SMOL_CHECK(m->second.shape == shape && v->second.shape == shape, "checkpoint ", c.dir,
               ": AdamW moments of ", name, " have the wrong shape");
    // Under ZeRO-1 each rank keeps its own pieces: a checkpoint of any world size resumes on any.
    optimizer->load_moments(i, m->second.data.data(), v->second.data.data());
  }
  optimizer->restore_steps_done(c.progress.global_step);
}

std::vector<std::pair<int64_t, std::string>> list_checkpoints(const std::string& output_dir) {
  std::vector<std::pair<int64_t, std::string>> found;
  std::error_code ec;
  if (!fs::is_directory(output_dir, ec)) return found;
  for (const fs::directory_entry& entry : fs::directory_iterator(output_dir, ec)) {
    if (!entry.is_directory()) continue;
    const std::optional<int64_t> step = checkpoint_step(entry.path().filename().string());
    if (step && fs::is_regular_file(entry.path() / kStateFile))
      found.emplace_back(*step, entry.path().string());
  }
  std::sort(found.begin(), found.end());
  return found;
}

std::string resolve_checkpoint(const std::string& spec, const std::string& output_dir) {
  if (spec != "latest") return spec;
  const auto found = list_checkpoints(output_dir);
  SMOL_CHECK(!found.empty(), "--resume latest: no complete checkpoint in ", output_dir);
  return found.back().second;
}

std::vector<std::string> rotate_checkpoints(const std::string& output_dir, int64_t limit,
                                            const std::string& best_checkpoint) {
  std::vector<std::string> deleted;
  if (limit <= 0) return deleted;
  std::vector<std::pair<int64_t, std::string>> found = list_checkpoints(output_dir);
  // HF: the best checkpoint is moved to the end (treated as newest) so it survives; with a
  // limit of 1 and a best that is not the newest, two are kept.
  int64_t keep = limit;
  if (!best_checkpoint.empty()) {
    const auto best = std::find_if(found.begin(), found.end(), [&](const auto& f) {
      return fs::path(f.second).filename() == best_checkpoint;
    });
    if (best != found.end()) {
      if (limit == 1 && best != found.end() - 1) keep = 2;
      std::rotate(best, best + 1, found.end());
    }
  }
  const int64_t excess = static_cast<int64_t>(found.size()) - keep;
  for (int64_t i = 0; i < excess; ++i) {
    remove_checkpoint_directory(found[static_cast<size_t>(i)].second);
    deleted.push_back(found[static_cast<size_t>(i)].second);
  }
  return deleted;
}

}  // namespace smol
