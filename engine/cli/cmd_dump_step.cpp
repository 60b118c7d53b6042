// `smolengine dump-step CONFIG --batch BATCH.jsonl --out FILE.safetensors [--device D]
//  [--set k=v]... [--all-params] [--checkpoint DIR]`: one forward+backward of the model the config
//  describes on
// one micro-batch, no update — how an outside reference (PyTorch + PEFT) checks the engine.
//
// With peft.init_lora_weights lora_ga / lora_ns, the initialiser's gradient pass reads the
// config's dataset (the first loraga.num_samples examples of dataset.train_split, batches of
// loraga.batch_size; see engine/training_data.h) from the data root given by --data-dir (else
// $SMOLENGINE_DATA, data/, ../shared/data).
//
// BATCH.jsonl holds one row per line, {"input_ids": [...], "labels": [...]} (any lengths,
// −100 = not supervised). Rows are right-padded as in training (pad id, labels −100, to a
// multiple of training.pad_to_multiple_of); padding never changes real-token results, since
// pads come after every real token of their row. The loss is Σ CE / supervised tokens (the
// batch is one whole optimizer step), its gradients are those of that mean.
// Output (safetensors, written atomically):
//   input_ids, labels   I32 [B, L] (padded)
//   logits              F32 [B, L, V] (a separate forward without LoRA dropout)
//   loss                F32 [1]
//   param.<name>, grad.<name>   every trainable tensor (HF / PEFT names) and its gradient
//   param.<name>        with --all-params, also every frozen weight as used (after any
//                       PiSSA / LoRA-GA / LoRA-NS residualisation)
#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/error.h"
#include "engine/batch_jsonl.h"
#include "engine/commands.h"
#include "engine/config/run_config.h"
#include "engine/model_setup.h"
#include "engine/train/checkpoint.h"
#include "engine/train_step.h"
#include "io/safetensors_io.h"
#include "kernels/backend.h"

namespace smol {

namespace {

struct DumpStepOptions {
  std::string config_path;
  std::string batch_path;
  std::string out_path;
  std::string device = "cpu";
  std::string data_dir;
  std::vector<std::string> overrides;
  std::string checkpoint;
  bool all_params = false;
};

void run_dump_step(const DumpStepOptions& options) {
  RunConfig config = load_run_config(options.config_path, options.overrides);
  config.data_dir = options.data_dir;
  std::unique_ptr<Backend> backend = make_backend(options.device);
  BuiltModel built = build_model(*backend, config);
  LlamaModel& model = *built.model;
  if (!options.checkpoint.empty())
    restore_checkpoint(load_checkpoint(options.checkpoint, /*with_optimizer=*/false), model,
                       nullptr);
  const int64_t vocab = model.config().vocab_size;

  const std::vector<TokenRow> rows = pad_rows(
      read_token_rows_jsonl(options.batch_path, vocab, model.config().max_position_embeddings),
      config.training.pad_to_multiple_of, built.pad_id);
  const int64_t batch = static_cast<int64_t>(rows.size());
  const int64_t length = static_cast<int64_t>(rows.front().input_ids.size());

  model.zero_grads();
  const TrainStepResult step = accumulate_gradients(model, {rows}, config.training.seed);
  std::vector<float> logits;
  model.forward_logits(rows, &logits);
  SMOL_CHECK(static_cast<int64_t>(logits.size()) == batch * length * vocab,
             "dump-step: the model returned ", logits.size(), " logits for a ", batch, "x", length,
             " batch and vocabulary ", vocab);

  std::vector<SafetensorsWriteEntry> entries;
  std::vector<int32_t> ids, labels;
  for (const TokenRow& row : rows) {
    ids.insert(ids.end(), row.input_ids.begin(), row.input_ids.end());
    labels.insert(labels.end(), row.labels.begin(), row.labels.end());
  }
  entries.push_back(SafetensorsWriteEntry::i32("input_ids", {batch, length}, ids.data()));
  entries.push_back(SafetensorsWriteEntry::i32("labels", {batch, length}, labels.data()));
  entries.push_back(SafetensorsWriteEntry::f32("logits", {batch, length, vocab}, logits.data()));
  const float loss = static_cast<float>(step.loss);
  entries.push_back(SafetensorsWriteEntry::f32("loss", {1}, &loss));

  std::set<std::string> trainable;
  for (const TrainableParam& p : model.trainable_params()) {
    trainable.insert(p.name);
    entries.push_back(
        SafetensorsWriteEntry::from_host("param." + p.name, model.read_tensor(p.name)));
    HostTensor grad;
    grad.shape = p.grad.shape;
    grad.data.resize(static_cast<size_t>(p.grad.numel()));
    backend->download(grad.data.data(), p.grad);
    entries.push_back(SafetensorsWriteEntry::from_host("grad." + p.name, grad));
  }
  if (options.all_params)
    for (const std::string& name : model.tensor_names())
      if (!trainable.count(name))
        entries.push_back(
            SafetensorsWriteEntry::from_host("param." + name, model.read_tensor(name)));

  std::map<std::string, std::string> metadata = {
      {"smolengine.command", "dump-step"},
      {"smolengine.config", options.config_path},
      {"smolengine.device", backend->name()},
      {"smolengine.weights", built.weights_source},
      {"smolengine.supervised_tokens", std::to_string(step.supervised)},
      {"smolengine.mode", config.peft.full_finetune() ? "full" : "lora"}};
  if (built.lora_init) {
    metadata["smolengine.lora_init"] = built.lora_init->method;
    metadata["smolengine.residualised"] = built.lora_init->residualised ? "true" : "false";
  }
  write_safetensors(options.out_path, entries, metadata);
}

}  // namespace

void add_dump_step_command(CLI::App& app) {
  auto options = std::make_shared<DumpStepOptions>();
  CLI::App* cmd =
      app.add_subcommand("dump-step",
                         "One forward+backward on a micro-batch (no update); writes logits, loss, "
                         "parameters and gradients as safetensors for outside checks");
  cmd->add_option("config", options->config_path, "run config (YAML, seed schema)")->required();
  cmd->add_option("--batch", options->batch_path,
                  "JSONL rows {\"input_ids\": [...], \"labels\": [...]}")
      ->required();
  cmd->add_option("--out", options->out_path, "output .safetensors")->required();
  cmd->add_option("--device", options->device, "cpu, cuda, cuda-emu or auto")
      ->capture_default_str();
  cmd->add_option("--set", options->overrides, "override a config key: dotted.key=value")
      ->allow_extra_args(false);
  cmd->add_option("--data-dir", options->data_dir,
                  "data root for the config's dataset (lora_ga / lora_ns gradient pass)");
  cmd->add_option("--checkpoint", options->checkpoint,
                  "use the trained tensors of a `train` checkpoint-N directory");
  cmd->add_flag("--all-params", options->all_params,
                "also write every frozen weight as used (after residualisation)");
  cmd->callback([options] { run_dump_step(*options); });
}

}  // namespace smol
