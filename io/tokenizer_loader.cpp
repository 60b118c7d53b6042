// load_tokenizer (see tokenizer_loader.h); moved here from cmd_tokenize so that every command
// that reads text (tokenize, dump-step, train) finds the tokenizer the same way.
#include "io/tokenizer_loader.h"

#include <filesystem>

#include "common/error.h"
#include "data/bpe_tokenizer.h"
#include "data/sentencepiece_tokenizer.h"
#include "data/tokenizer_json.h"
#include "io/gguf_reader.h"
#include "io/gguf_tokenizer.h"
#include "io/hf_cache.h"

namespace smol {

namespace {

namespace fs = std::filesystem;

TokenizerFiles json_files(const fs::path& json_path) {
  TokenizerFiles files{TokenizerFileKind::TokenizerJson, json_path.string(), ""};
  const fs::path config = json_path.parent_path() / "tokenizer_config.json";
  if (fs::exists(config)) files.config_path = config.string();
  return files;
}

TokenizerFiles files_in_directory(const fs::path& path, const std::string& source) {
  if (fs::exists(path / "tokenizer.json")) return json_files(path / "tokenizer.json");
  if (fs::exists(path / "tokenizer.model"))
    return TokenizerFiles{TokenizerFileKind::SentencePiece, (path / "tokenizer.model").string(),
                          ""};
  throw_error(source, ": directory has neither tokenizer.json nor tokenizer.model");
}

}  // namespace

TokenizerFiles locate_tokenizer(const std::string& source) {
  const fs::path path(source);
  if (!fs::exists(path)) {
    // A hub repo id ("HuggingFaceTB/SmolLM2-135M") resolved through the local HF cache.
    if (looks_like_hub_repo_id(source))
      if (const std::optional<std::string> snapshot = resolve_hf_snapshot(source))
        return files_in_directory(*snapshot, source);
    throw_error(source, ": no such file or directory (nor a hub repo in the local HF cache)");
  }
  if (fs::is_directory(path)) return files_in_directory(path, source);
  if (path.extension() == ".gguf") return TokenizerFiles{TokenizerFileKind::Gguf, source, ""};
  if (path.extension() == ".model")
    return TokenizerFiles{TokenizerFileKind::SentencePiece, source, ""};
  if (path.extension() == ".json") return json_files(path);
  throw_error(source,
              ": not a tokenizer source (.gguf, tokenizer.json, .model or an HF model "
              "directory)");
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& source) {
  const TokenizerFiles files = locate_tokenizer(source);
  switch (files.kind) {
    case TokenizerFileKind::Gguf: {
      const GgufFile gguf = GgufFile::open(files.path);
      SMOL_CHECK(gguf_has_tokenizer(gguf), source, ": GGUF file carries no tokenizer");
      return std::make_unique<BpeTokenizer>(bpe_spec_from_gguf(gguf), files.path);
    }
    case TokenizerFileKind::SentencePiece:
      return std::make_unique<SentencePieceTokenizer>(files.path);
    case TokenizerFileKind::TokenizerJson: {
      BpeSpec spec = read_tokenizer_json(files.path);
      if (!files.config_path.empty()) read_hf_tokenizer_config(files.config_path, spec);
      return std::make_unique<BpeTokenizer>(spec, files.path);
    }
  }
  throw_error(source, ": unknown tokenizer kind");
}

}  // namespace smol
