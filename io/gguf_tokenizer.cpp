// GGUF tokenizer metadata → BpeSpec (docs/formats.md §3 "Metadata for SmolLM2"). Token types:
// 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte.
#include "io/gguf_tokenizer.h"

#include "common/error.h"

namespace smol {
namespace {
constexpr int64_t kTokenTypeControl = 3;
constexpr int64_t kTokenTypeUserDefined = 4;

int32_t special_id(const GgufFile& gguf, const std::string& key, size_t vocab) {
  const std::optional<int64_t> id = gguf.get_int_opt(key);
  if (!id) return -1;
  // llama.cpp writes -1 (as u32 0xFFFFFFFF) for "none" in some converters.
  if (*id == -1 || *id == 0xFFFFFFFFLL) return -1;
  if (*id < 0 || static_cast<uint64_t>(*id) >= vocab)
    throw_error(gguf.path(), ": ", key, " = ", *id, " is outside the vocabulary of ", vocab,
                " tokens");
  return static_cast<int32_t>(*id);
}
}  // namespace

bool gguf_has_tokenizer(const GgufFile& gguf) {
  return gguf.has("tokenizer.ggml.model");
}

BpeSpec bpe_spec_from_gguf(const GgufFile& gguf) {
  const std::string model = gguf.get_string("tokenizer.ggml.model");
  if (model != "gpt2")
    throw_error(gguf.path(), ": tokenizer.ggml.model is '", model,
                "'; only byte-level BPE ('gpt2') tokenizers can be built from GGUF metadata");
  BpeSpec spec;
  spec.tokens = gguf.get_string_array("tokenizer.ggml.tokens");
  SMOL_CHECK(!spec.tokens.empty() && spec.tokens.size() <= (size_t{1} << 31), gguf.path(),
             ": tokenizer.ggml.tokens has ", spec.tokens.size(), " entries");
  const size_t vocab = spec.tokens.size();

  if (gguf.has("tokenizer.ggml.merges")) {
    const std::vector<std::string>& merges = gguf.get_string_array("tokenizer.ggml.merges");
    spec.merges.reserve(merges.size());
    for (size_t rank = 0; rank < merges.size(); ++rank) {
      const std::string& merge = merges[rank];
      // Searching from 1 as llama.cpp does: a left part is never empty, so a merge whose
      // left symbol is itself a space byte still splits at the separator.
      const size_t space = merge.size() > 1 ? merge.find(' ', 1) : std::string::npos;
      if (space == std::string::npos || space + 1 >= merge.size())
        throw_error(gguf.path(), ": tokenizer.ggml.merges[", rank, "] = '", merge,
                    "' is not 'left right'");
      spec.merges.emplace_back(merge.substr(0, space), merge.substr(space + 1));
    }
  } else {
    throw_error(gguf.path(), ": missing metadata key 'tokenizer.ggml.merges' (needed for BPE)");
  }

  if (gguf.has("tokenizer.ggml.token_type")) {
    const std::vector<int64_t> types = gguf.get_int_array("tokenizer.ggml.token_type");
    SMOL_CHECK(types.size() == vocab, gguf.path(), ": tokenizer.ggml.token_type has ", types.size(),
               " entries but tokenizer.ggml.tokens has ", vocab);
    for (size_t id = 0; id < vocab; ++id) {
      if (types[id] == kTokenTypeControl || types[id] == kTokenTypeUserDefined) {
        AddedToken added;
        added.id = static_cast<int32_t>(id);
        added.content = spec.tokens[id];
        added.special = types[id] == kTokenTypeControl;
        spec.added_tokens.push_back(std::move(added));
      }
    }
  }

  spec.pre_tokenizer = gguf.get_string_opt("tokenizer.ggml.pre").value_or("gpt2");
  spec.bos_id = special_id(gguf, "tokenizer.ggml.bos_token_id", vocab);
  spec.eos_id = special_id(gguf, "tokenizer.ggml.eos_token_id", vocab);
  spec.unk_id = special_id(gguf, "tokenizer.ggml.unknown_token_id", vocab);
  spec.pad_id = special_id(gguf, "tokenizer.ggml.padding_token_id", vocab);
  spec.chat_template = gguf.get_string_opt("tokenizer.chat_template").value_or("");
  return spec;
}

}  // namespace smol
