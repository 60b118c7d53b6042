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

std::unique_ptr<Tokenizer> tokenizer_from_json(const fs::path& json_path,
                                               const fs::path& config_path) {
  BpeSpec spec = read_tokenizer_json(json_path.string());
  if (fs::exists(config_path)) read_hf_tokenizer_config(config_path.string(), spec);
  return std::make_unique<BpeTokenizer>(spec, json_path.string());
}

std::unique_ptr<Tokenizer> tokenizer_from_directory(const fs::path& path,
                                                    const std::string& source) {
  if (fs::exists(path / "tokenizer.json"))
    return tokenizer_from_json(path / "tokenizer.json", path / "tokenizer_config.json");
  if (fs::exists(path / "tokenizer.model"))
    return std::make_unique<SentencePieceTokenizer>((path / "tokenizer.model").string());
  throw_error(source, ": directory has neither tokenizer.json nor tokenizer.model");
}

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& source) {
  const fs::path path(source);
  if (!fs::exists(path)) {
    // A hub repo id ("HuggingFaceTB/SmolLM2-135M") resolved through the local HF cache.
    if (looks_like_hub_repo_id(source))
      if (const std::optional<std::string> snapshot = resolve_hf_snapshot(source))
        return tokenizer_from_directory(*snapshot, source);
    throw_error(source, ": no such file or directory (nor a hub repo in the local HF cache)");
  }
  if (fs::is_directory(path)) return tokenizer_from_directory(path, source);
  if (path.extension() == ".gguf") {
    const GgufFile gguf = GgufFile::open(source);
    SMOL_CHECK(gguf_has_tokenizer(gguf), source, ": GGUF file carries no tokenizer");
    return std::make_unique<BpeTokenizer>(bpe_spec_from_gguf(gguf), source);
  }
  if (path.extension() == ".model") return std::make_unique<SentencePieceTokenizer>(source);
  if (path.extension() == ".json")
    return tokenizer_from_json(path, path.parent_path() / "tokenizer_config.json");
  throw_error(source,
              ": not a tokenizer source (.gguf, tokenizer.json, .model or an HF model "
              "directory)");
}

}  // namespace smol
