// HF model directory writer (see hf_export.h; docs/formats.md §1, §4, §5).
#include "io/hf_export.h"

#include <unistd.h>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "common/error.h"
#include "data/tokenizer_json.h"
#include "io/gguf_reader.h"
#include "io/gguf_tokenizer.h"
#include "io/hf_config.h"
#include "io/safetensors_io.h"
#include "io/tokenizer_loader.h"

namespace smol {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

const char* torch_dtype_name(DType dtype) {
  switch (dtype) {
    case DType::F32:
      return "float32";
    case DType::BF16:
      return "bfloat16";
    default:
      throw_error("HF export: dtype ", dtype_name(dtype), " is not a weight dtype (F32 or BF16)");
  }
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  SMOL_CHECK(out.good(), "cannot write ", path.string());
  out << text;
  out.flush();
  SMOL_CHECK(out.good(), "error writing ", path.string(), " (disk full?)");
}

void copy_file_checked(const std::string& from, const fs::path& to) {
  std::error_code ec;
  fs::copy_file(from, to, fs::copy_options::overwrite_existing, ec);
  SMOL_CHECK(!ec, "cannot copy ", from, " to ", to.string(), ": ", ec.message());
}

// The token string of `id`, or "" when the id is absent/out of range.
std::string token_content(const BpeSpec& spec, int32_t id) {
  for (const AddedToken& t : spec.added_tokens)
    if (t.id == id) return t.content;
  if (id >= 0 && static_cast<size_t>(id) < spec.tokens.size()) return spec.tokens[id];
  return "";
}

// Fills the spec's missing special ids from the model config (tokenizer.json alone does not
// say which tokens are bos/eos/pad; config.json does).
BpeSpec with_config_ids(BpeSpec spec, const LlamaConfig& config) {
  const auto vocab = static_cast<int64_t>(spec.tokens.size());
  auto fill = [&](int32_t& id, int64_t from_config) {
    if (id < 0 && from_config >= 0 && from_config < vocab) id = static_cast<int32_t>(from_config);
  };
  fill(spec.bos_id, config.bos_token_id);
  fill(spec.eos_id, config.eos_token_id);
  fill(spec.pad_id, config.pad_token_id);
  return spec;
}

void write_tokenizer_files(const fs::path& dir, const HfTokenizerSource& source,
                           const LlamaConfig& config) {
  const int64_t max_length = config.max_position_embeddings;
  if (!source.tokenizer_json_path.empty()) {
    copy_file_checked(source.tokenizer_json_path, dir / "tokenizer.json");
    if (!source.tokenizer_config_json_path.empty()) {
      copy_file_checked(source.tokenizer_config_json_path, dir / "tokenizer_config.json");
      return;
    }
    BpeSpec spec = with_config_ids(read_tokenizer_json(source.tokenizer_json_path), config);
    if (spec.chat_template.empty()) spec.chat_template = source.chat_template;
    write_text(dir / "tokenizer_config.json", hf_tokenizer_config_json(spec, max_length));
    return;
  }
  SMOL_CHECK(source.bpe.has_value(), "HF export: the tokenizer source has neither a ",
             "tokenizer.json nor a BPE description");
  BpeSpec spec = with_config_ids(*source.bpe, config);
  if (spec.chat_template.empty()) spec.chat_template = source.chat_template;
  // "a b" merge strings are read by every tokenizers version; pairs only by >= 0.20. Strings
  // are ambiguous only when a merge part itself contains a space (never in byte-level BPE).
  bool merges_as_pairs = false;
  for (const auto& [left, right] : spec.merges)
    merges_as_pairs |= left.find(' ') != std::string::npos || right.find(' ') != std::string::npos;
  write_text(dir / "tokenizer.json", write_tokenizer_json(spec, merges_as_pairs));
  write_text(dir / "tokenizer_config.json", hf_tokenizer_config_json(spec, max_length));
}

}  // namespace

std::string hf_config_json(const LlamaConfig& config, DType dtype) {
  nlohmann::json j = llama_config_to_hf_json(config);
  j["torch_dtype"] = torch_dtype_name(dtype);
  return j.dump(2) + "\n";
}

void write_hf_model_safetensors(const std::string& path, const HostTensorMap& weights,
                                DType dtype) {
  torch_dtype_name(dtype);  // throws for I32
  auto embed = weights.find("model.embed_tokens.weight");
  std::vector<SafetensorsWriteEntry> entries;
  for (const auto& [name, t] : weights) {
    if (name == "lm_head.weight" && embed != weights.end() && embed->second.data == t.data)
      continue;  // tied: transformers re-ties it from the embedding
    SMOL_CHECK(static_cast<int64_t>(t.data.size()) == t.shape.numel(), path, ": tensor '", name,
               "' holds ", t.data.size(), " values for shape ", t.shape.str());
    std::vector<int64_t> shape(t.shape.dims.begin(), t.shape.dims.begin() + t.shape.rank);
    entries.push_back(dtype == DType::BF16
                          ? SafetensorsWriteEntry::bf16(name, std::move(shape), t.data.data())
                          : SafetensorsWriteEntry::f32(name, std::move(shape), t.data.data()));
  }
  write_safetensors(path, entries);
}

std::string hf_tokenizer_config_json(const BpeSpec& spec, int64_t model_max_length) {
  json decoder = json::object();
  for (const AddedToken& t : spec.added_tokens)
    decoder[std::to_string(t.id)] = {{"content", t.content}, {"lstrip", false},
                                     {"normalized", false},  {"rstrip", false},
                                     {"single_word", false}, {"special", t.special}};
  auto token_or_null = [&](int32_t id) {
    const std::string content = token_content(spec, id);
    return content.empty() ? json(nullptr) : json(content);
  };
  json j;
  j["add_bos_token"] = false;  // SmolLM2 adds no BOS (docs/formats.md §1, §3)
  j["add_eos_token"] = false;
  j["add_prefix_space"] = false;
  j["added_tokens_decoder"] = decoder;
  j["bos_token"] = token_or_null(spec.bos_id);
  if (!spec.chat_template.empty()) j["chat_template"] = spec.chat_template;
  j["clean_up_tokenization_spaces"] = false;
  j["eos_token"] = token_or_null(spec.eos_id);
  j["model_max_length"] = model_max_length;
  j["pad_token"] = token_or_null(spec.pad_id);
  // The generic fast tokenizer runs tokenizer.json exactly as written (Digits + ByteLevel);
  // a model-specific class may rebuild its own pre-tokenizer (docs/formats.md §5).
  j["tokenizer_class"] = "PreTrainedTokenizerFast";
  j["unk_token"] = token_or_null(spec.unk_id);
  return j.dump(2) + "\n";
}

void check_export_destination(const std::string& out_dir, bool force) {
  SMOL_CHECK(!out_dir.empty(), "export: the output directory is empty");
  const fs::path out(out_dir);
  std::error_code ec;
  if (!fs::exists(out, ec)) return;
  SMOL_CHECK(fs::is_directory(out, ec), out_dir, ": exists and is not a directory");
  SMOL_CHECK(force || fs::is_empty(out, ec), out_dir,
             ": exists and is not empty; choose another --out or pass --force to replace it");
}

void write_hf_export_dir(const std::string& out_dir, const HfExportContents& contents, bool force) {
  check_export_destination(out_dir, force);
  fs::path out(out_dir);
  if (!out.has_filename()) out = out.parent_path();  // "dir/" → "dir"
  const fs::path tmp = out.string() + ".tmp." + std::to_string(::getpid());
  std::error_code ec;
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp, ec);
  SMOL_CHECK(fs::is_directory(tmp), "cannot create ", tmp.string(), ec ? ": " + ec.message() : "");
  try {
    write_hf_model_safetensors((tmp / "model.safetensors").string(), contents.weights,
                               contents.dtype);
    write_text(tmp / "config.json", hf_config_json(contents.config, contents.dtype));
    if (contents.tokenizer) write_tokenizer_files(tmp, *contents.tokenizer, contents.config);
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
  // Swap into place: an existing (empty, or --force) directory moves aside first and is
  // deleted only once the new one is in place.
  const fs::path old = out.string() + ".old." + std::to_string(::getpid());
  const bool had_old = fs::exists(out, ec);
  if (had_old) {
    fs::rename(out, old, ec);
    if (ec) {
      fs::remove_all(tmp, ec);
      throw_error("cannot move the existing ", out.string(), " aside");
    }
  }
  fs::rename(tmp, out, ec);
  if (ec) {
    const std::string message = ec.message();
    if (had_old) fs::rename(old, out, ec);
    fs::remove_all(tmp, ec);
    throw_error("cannot rename ", tmp.string(), " to ", out.string(), ": ", message);
  }
  if (had_old) fs::remove_all(old, ec);
}

// The tokenizer files of an HF model directory, if it has a tokenizer.json.
std::optional<HfTokenizerSource> tokenizer_of_directory(const std::filesystem::path& dir,
                                                        const std::string& chat_template) {
  if (!fs::is_regular_file(dir / "tokenizer.json")) return std::nullopt;
  HfTokenizerSource source;
  source.tokenizer_json_path = (dir / "tokenizer.json").string();
  if (fs::is_regular_file(dir / "tokenizer_config.json"))
    source.tokenizer_config_json_path = (dir / "tokenizer_config.json").string();
  source.chat_template = chat_template;
  return source;
}

// The tokenizer of a model source without loading its weights (for full checkpoints).
std::optional<HfTokenizerSource> tokenizer_of_source(const std::string& source) {
  const TokenizerFiles files = locate_tokenizer(source);
  if (files.kind == TokenizerFileKind::SentencePiece) return std::nullopt;
  HfTokenizerSource out;
  if (files.kind == TokenizerFileKind::TokenizerJson) {
    out.tokenizer_json_path = files.path;
    out.tokenizer_config_json_path = files.config_path;
    return out;
  }
  const GgufFile gguf = GgufFile::open(files.path);
  if (!gguf_has_tokenizer(gguf) || gguf.get_string("tokenizer.ggml.model") != "gpt2")
    return std::nullopt;
  out.bpe = bpe_spec_from_gguf(gguf);
  return out;
}

}  // namespace smol
