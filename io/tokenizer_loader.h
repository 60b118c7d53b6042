// The tokenizer a model source carries, loading nothing else (no weights are dequantised):
// a .gguf (its tokenizer.ggml.* metadata), a tokenizer.json (+ tokenizer_config.json beside
// it for the special ids), an HF model directory (tokenizer.json [+ tokenizer_config.json], or
// tokenizer.model), a sentencepiece .model, or a hub repo id found in the local HF cache.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "data/tokenizer.h"

namespace smol {

// Where a source's tokenizer lives: the one place the search order above is written down
// (loading here, copying it into an export in io/hf_export.cpp, HF directories in
// io/model_loader.cpp all ask this).
enum class TokenizerFileKind : uint8_t { Gguf, TokenizerJson, SentencePiece };
struct TokenizerFiles {
  TokenizerFileKind kind = TokenizerFileKind::TokenizerJson;
  std::string path;         // the .gguf, tokenizer.json or .model file
  std::string config_path;  // tokenizer_config.json beside a tokenizer.json ("" when absent)
};
// Throws smol::Error naming the source when it is none of the above.
TokenizerFiles locate_tokenizer(const std::string& model_or_tokenizer_path);

// locate_tokenizer, then the tokenizer itself.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& model_or_tokenizer_path);

}  // namespace smol
