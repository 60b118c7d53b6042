// bpe_spec_from_gguf: the byte-level BPE description stored in a GGUF's `tokenizer.ggml.*`
// metadata (docs/formats.md §3), as a BpeSpec the tokenizer builds on (data/bpe_spec.h).
#pragma once

#include "data/bpe_spec.h"
#include "io/gguf_reader.h"

namespace smol {

// True when the file carries a tokenizer at all (tokenizer.ggml.model present).
bool gguf_has_tokenizer(const GgufFile& gguf);

// Tokens (id order), merges ("left right" split at the separating space, rank order), added
// tokens = ids whose token_type is 3 (control, special = true) or 4 (user-defined,
// special = false, as HF's GGUF conversion marks them), special ids, pre-tokenizer name
// (tokenizer.ggml.pre, "gpt2" when absent), chat template.
// Throws smol::Error naming the file and key for a tokenizer that is not byte-level BPE
// ("gpt2") or whose arrays are inconsistent.
BpeSpec bpe_spec_from_gguf(const GgufFile& gguf);

}  // namespace smol
