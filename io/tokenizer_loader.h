// The tokenizer a model source carries, loading nothing else (no weights are dequantised):
// a .gguf (its tokenizer.ggml.* metadata), a tokenizer.json (+ tokenizer_config.json beside
// it for the special ids), an HF model directory (tokenizer.json [+ tokenizer_config.json], or
// tokenizer.model), a sentencepiece .model, or a hub repo id found in the local HF cache.
#pragma once

#include <memory>
#include <string>

#include "data/tokenizer.h"

namespace smol {

// Throws smol::Error naming the source when it is none of the above.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& model_or_tokenizer_path);

}  // namespace smol
