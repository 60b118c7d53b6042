// Micro-batches as JSON lines: one row per line, {"input_ids": [...], "labels": [...]}
// (−100 = not supervised), the format of `smolengine dump-step --batch` and of test fixtures.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/llama_model.h"

namespace smol {

// Reads every non-blank line; a malformed line, an unknown field, mismatched lengths or an id
// outside [0, vocab_size) throws smol::Error naming file:line.
std::vector<TokenRow> read_token_rows_jsonl(const std::string& path, int64_t vocab_size);

}  // namespace smol
