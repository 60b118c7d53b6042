// An HF model directory that transformers' AutoModelForCausalLM / AutoTokenizer load
// (docs/formats.md §1, §4, §5), written by `smolengine export` and by full-fine-tuning
// checkpoints:
//
//   model.safetensors      HF names, F32 or BF16, tied embeddings without lm_head.weight
//   config.json            LlamaConfig keys, "architectures": ["LlamaForCausalLM"], torch_dtype
//   tokenizer.json         copied from an HF source, or written from a GGUF's BPE description
//   tokenizer_config.json  bos/eos/pad/unk tokens, chat_template, tokenizer class
//
// Nothing half-written: the directory is assembled as <out>.tmp.<pid> and renamed into place.
#pragma once

#include <filesystem>

#include <optional>
#include <string>

#include "data/bpe_spec.h"
#include "io/host_tensor.h"
#include "io/llama_config.h"
#include "kernels/tensor.h"

namespace smol {

// config.json text for `config`, with torch_dtype naming `dtype` (F32 → "float32", BF16 →
// "bfloat16"); io/hf_config's reader gives `config` back.
std::string hf_config_json(const LlamaConfig& config, DType dtype = DType::F32);

// Writes `weights` (HF names → fp32 values) to `path` as F32 or BF16 (round to nearest even,
// as torch's .to(bfloat16)), atomically. An lm_head.weight equal to model.embed_tokens.weight
// (tied) is left out, as transformers saves tied models. Throws for dtype I32.
void write_hf_model_safetensors(const std::string& path, const HostTensorMap& weights, DType dtype);

// tokenizer_config.json text for a byte-level BPE tokenizer: special tokens by content,
// added_tokens_decoder, chat_template (when non-empty), no BOS added, model_max_length.
std::string hf_tokenizer_config_json(const BpeSpec& spec, int64_t model_max_length);

// Where the tokenizer files of an export come from.
struct HfTokenizerSource {
  std::string tokenizer_json_path;         // copy this tokenizer.json when set ...
  std::string tokenizer_config_json_path;  // ... and this tokenizer_config.json when set
  std::optional<BpeSpec> bpe;              // otherwise write both from this (e.g. a GGUF's)
  std::string chat_template;               // used when the source has none of its own
};

struct HfExportContents {
  LlamaConfig config;
  HostTensorMap weights;
  DType dtype = DType::F32;
  std::optional<HfTokenizerSource> tokenizer;  // nullopt: no tokenizer files
};

// Throws smol::Error when `out_dir` exists and is not an empty directory, unless `force`
// (then it is replaced as a whole once the new one is complete). Cheap: call it before
// loading anything.
void check_export_destination(const std::string& out_dir, bool force);

// Writes the whole directory (see the top of this file) into <out_dir>.tmp.<pid>, then renames
// it to out_dir. On any error the temporary directory is removed and out_dir is untouched.
void write_hf_export_dir(const std::string& out_dir, const HfExportContents& contents, bool force);

// The tokenizer files of an HF model directory, if it has a tokenizer.json (chat_template is
// used when the directory's own config has none).
std::optional<HfTokenizerSource> tokenizer_of_directory(const std::filesystem::path& dir,
                                                        const std::string& chat_template);
// The tokenizer of a model source (a .gguf, an HF directory or a hub id in the local HF cache)
// without loading its weights; nullopt when it carries none we can write out.
std::optional<HfTokenizerSource> tokenizer_of_source(const std::string& source);

}  // namespace smol
