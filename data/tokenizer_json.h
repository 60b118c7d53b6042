// HF tokenizer.json <-> BpeSpec, for byte-level BPE tokenizers only (docs/formats.md §5).
//
// Accepted: model.type "BPE" (vocab {token: id}, merges as "a b" strings or [["a","b"]]
// pairs), added_tokens, normalizer null, pre_tokenizer ByteLevel(use_regex, no prefix space)
// alone ("gpt2") or Sequence[Digits(individual_digits), ByteLevel] ("smollm"), decoder
// ByteLevel or null, post_processor ByteLevel or null. Anything else is refused with a
// smol::Error naming the file and the field, because it would tokenise differently.
#pragma once

#include <string>

#include "data/bpe_spec.h"

namespace smol {

// Reads and validates `path`. bos/eos/pad stay -1 (tokenizer.json does not say which tokens
// play those roles; tokenizer_config.json does — see read_hf_special_ids).
BpeSpec read_tokenizer_json(const std::string& path);
// The same from the JSON text; `source` names it in errors.
BpeSpec parse_tokenizer_json(const std::string& json_text, const std::string& source);

// Fills spec.bos_id/eos_id/pad_id and chat_template from an HF tokenizer_config.json
// ("bos_token": "<|im_start|>" or {"content": ...}). Missing keys leave -1.
void read_hf_tokenizer_config(const std::string& path, BpeSpec& spec);

// Serialises a BpeSpec as a tokenizer.json that HF `tokenizers` loads; merges as "a b"
// strings (merges_as_pairs false, tokenizers < 0.20) or [["a","b"]] pairs (>= 0.20).
std::string write_tokenizer_json(const BpeSpec& spec, bool merges_as_pairs);

}  // namespace smol
