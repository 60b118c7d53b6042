// `smolengine export CHECKPOINT --out DIR [--dtype f32|bf16] [--base MODEL] [--force]`
// Turns a checkpoint into an HF model directory that transformers loads with
// AutoModelForCausalLM / AutoTokenizer (io/hf_export.h; docs/design.md §7):
//   - a PEFT adapter directory (adapter_config.json + adapter_model.safetensors, as `train`
//     saves checkpoint-N/): the base is --base or the adapter's base_model_name_or_path (a
//     .gguf, an HF directory or a hub id, io/model_loader.h); W + s·B·A is merged into it
//     (io/lora_merge.h);
//   - a full-fine-tuning checkpoint (config.json + model.safetensors): re-written as is.
// The tokenizer comes from the model source: tokenizer.json (+ tokenizer_config.json) is
// copied from an HF directory; a GGUF's BPE metadata is written out as tokenizer.json with
// SmolLM2's Digits + ByteLevel pre-tokenizer (docs/formats.md §5). A full checkpoint without a
// tokenizer takes --base's. DIR is assembled under a temporary name and renamed into place;
// an existing non-empty DIR is refused unless --force.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "common/error.h"
#include "common/quote.h"
#include "data/tokenizer_json.h"
#include "engine/commands.h"
#include "io/gguf_reader.h"
#include "io/gguf_tokenizer.h"
#include "io/hf_cache.h"
#include "io/hf_export.h"
#include "io/lora_merge.h"
#include "io/model_loader.h"
#include "io/peft_adapter.h"

namespace smol {
namespace {

namespace fs = std::filesystem;

struct ExportOptions {
  std::string checkpoint;
  std::string out;
  std::string dtype = "f32";
  std::string base;
  bool force = false;
};

DType parse_export_dtype(const std::string& text) {
  if (text == "f32" || text == "float32" || text == "F32") return DType::F32;
  if (text == "bf16" || text == "bfloat16" || text == "BF16") return DType::BF16;
  throw_error("--dtype ", quoted_excerpt(text), " is not supported (f32 or bf16)");
}

std::optional<HfTokenizerSource> tokenizer_of_loaded(const LoadedModel& m) {
  if (!m.tokenizer_json_path.empty())
    return tokenizer_of_directory(fs::path(m.tokenizer_json_path).parent_path(), m.chat_template);
  if (m.bpe) {
    HfTokenizerSource source;
    source.bpe = *m.bpe;
    source.chat_template = m.chat_template;
    return source;
  }
  return std::nullopt;
}

// The tokenizer must fit the embedding: every id it produces needs a row (the model's
// vocabulary may be larger, padded; never smaller).
void check_tokenizer_fits(const HfTokenizerSource& source, const LlamaConfig& config,
                          const std::string& where) {
  const size_t tokens = source.bpe ? source.bpe->tokens.size()
                                   : read_tokenizer_json(source.tokenizer_json_path).tokens.size();
  SMOL_CHECK(static_cast<int64_t>(tokens) <= config.vocab_size, where, ": the tokenizer has ",
             tokens, " tokens but the model's vocabulary has only ", config.vocab_size,
             " rows (a tokenizer of another model?)");
}

void run_export(const ExportOptions& o) {
  const auto t_start = std::chrono::steady_clock::now();
  const DType dtype = parse_export_dtype(o.dtype);
  check_export_destination(o.out, o.force);  // before any loading
  const fs::path checkpoint(o.checkpoint);
  SMOL_CHECK(fs::is_directory(checkpoint), o.checkpoint,
             ": not a directory (expected a checkpoint: a PEFT adapter directory or a full "
             "checkpoint with config.json + model.safetensors)");
  std::error_code ec;
  SMOL_CHECK(!fs::exists(o.out, ec) || !fs::equivalent(checkpoint, o.out, ec), o.out,
             ": --out is the checkpoint itself");

  HfExportContents contents;
  contents.dtype = dtype;
  std::string summary;
  if (fs::exists(checkpoint / "adapter_config.json")) {
    const PeftAdapter adapter = read_peft_adapter(o.checkpoint);
    const std::string base = o.base.empty() ? adapter.config.base_model_name_or_path : o.base;
    SMOL_CHECK(!base.empty(), o.checkpoint,
               "/adapter_config.json has no base_model_name_or_path; pass --base MODEL");
    LoadedModel m = load_model(base);
    merge_peft_adapter(m.weights, adapter, o.checkpoint);
    contents.config = m.config;
    contents.tokenizer = tokenizer_of_loaded(m);
    contents.weights = std::move(m.weights);
    summary = "merged a rank-" + std::to_string(adapter.config.r) + " LoRA (" +
              std::to_string(adapter.tensors.size() / 2) + " matrices) into " + m.source;
  } else if (fs::exists(checkpoint / "config.json")) {
    LoadedModel m = load_model(o.checkpoint);
    contents.config = m.config;
    contents.tokenizer = tokenizer_of_loaded(m);
    if (!contents.tokenizer && !o.base.empty()) contents.tokenizer = tokenizer_of_source(o.base);
    contents.weights = std::move(m.weights);
    summary = "full checkpoint " + m.source;
  } else {
    throw_error(o.checkpoint, ": neither a PEFT adapter (adapter_config.json + ",
                "adapter_model.safetensors) nor a full checkpoint (config.json + ",
                "model.safetensors)");
  }
  if (contents.tokenizer) check_tokenizer_fits(*contents.tokenizer, contents.config, o.checkpoint);
  if (!contents.tokenizer)
    std::fprintf(stderr, "warning: no tokenizer found (checkpoint%s); %s gets no tokenizer files\n",
                 o.base.empty() ? "; pass --base MODEL to take its tokenizer" : " nor --base",
                 o.out.c_str());
  write_hf_export_dir(o.out, contents, o.force);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  std::fprintf(stderr, "exported %s -> %s (%s, %zu tensors%s) in %.2f s\n", summary.c_str(),
               o.out.c_str(), dtype_name(dtype), contents.weights.size(),
               contents.tokenizer ? ", tokenizer" : "", seconds);
}

}  // namespace

void add_export_command(CLI::App& app) {
  auto options = std::make_shared<ExportOptions>();
  CLI::App* cmd = app.add_subcommand(
      "export", "Write a checkpoint (LoRA merged into its base, or full) as an HF model directory");
  cmd->add_option("checkpoint", options->checkpoint,
                  "a PEFT adapter directory or a full checkpoint (config.json + "
                  "model.safetensors)")
      ->required();
  cmd->add_option("--out", options->out, "the HF model directory to write")->required();
  cmd->add_option("--dtype", options->dtype, "f32 (default) or bf16");
  cmd->add_option("--base", options->base,
                  "the base model (.gguf, HF directory or hub id); default: the adapter's "
                  "base_model_name_or_path");
  cmd->add_flag("--force", options->force, "replace --out if it exists and is not empty");
  cmd->callback([options] { run_export(*options); });
}

}  // namespace smol
