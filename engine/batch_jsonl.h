// Micro-batches as JSON lines: one row per line, {"input_ids": [...], "labels": [...]}
// (−100 = not supervised), the format of `smolengine dump-step --batch` and of test fixtures.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/llama_model.h"

namespace smol {

// Reads every non-blank line; a malformed line, an unknown field, mismatched lengths, an id
// outside [0, vocab_size) (a label may also be -100; values are range-checked before any
// narrowing, so a huge number never wraps to -100 or -1), or a row longer than max_positions
// (the model's context; 0 = unbounded) throws smol::Error naming file:line and the key. A
// path that is not a regular file (FIFO, directory) is refused before it is opened.
std::vector<TokenRow> read_token_rows_jsonl(const std::string& path, int64_t vocab_size,
                                            int64_t max_positions = 0);

}  // namespace smol
