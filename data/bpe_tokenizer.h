// BpeTokenizer: byte-level BPE exactly as HF `tokenizers` runs it for SmolLM2 and GPT-2
// (docs/formats.md §5), built from a BpeSpec (tokenizer.json or GGUF metadata).
//
// encode: added tokens split out first (leftmost-longest, AddedTokenMatcher) -> Digits
// pre-tokenizer ("smollm" flavour: every \p{N} char its own piece) -> ByteLevel regex per
// piece (PCRE2, UTF + UCP) -> each byte to its GPT-2 char -> BPE merges by lowest rank, ties
// leftmost, chars absent from the vocabulary dropped. Results are cached per regex piece.
// decode: each token's bytes through the inverse byte map, then lossy UTF-8.
#pragma once

#include <array>
#include <memory>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "data/added_tokens.h"
#include "data/bpe_spec.h"
#include "data/tokenizer.h"

namespace smol {

class PcreRegex;  // data/bpe_tokenizer.cpp

class BpeTokenizer : public Tokenizer {
 public:
  // Throws smol::Error naming `source` (a file name) for an inconsistent spec: duplicate
  // tokens, merges whose parts or result are not in the vocabulary, an unknown pre-tokenizer.
  explicit BpeTokenizer(const BpeSpec& spec, const std::string& source = "BpeSpec");
  ~BpeTokenizer() override;

  std::vector<int32_t> encode(std::string_view text, bool parse_special = true) const override;
  int32_t vocab_size() const override { return static_cast<int32_t>(tokens_.size()); }
  std::string id_to_token(int32_t id) const override;
  int32_t token_to_id(std::string_view token) const override;
  int32_t bos_id() const override { return bos_id_; }
  int32_t eos_id() const override { return eos_id_; }
  int32_t pad_id() const override { return pad_id_; }
  bool is_special(int32_t id) const override;
  std::string token_bytes(int32_t id, bool skip_special, bool first_in_sequence) const override;

  const std::string& pre_tokenizer() const { return pre_tokenizer_; }

 private:
  // BPE over one regex piece (raw bytes), appending its ids.
  void encode_word(std::string_view word, std::vector<int32_t>& ids) const;
  void bpe(std::string_view word, std::vector<int32_t>& ids) const;
  // One added-token-free stretch of text: Digits (smollm) then the ByteLevel regex.
  void encode_plain(std::string_view text, std::vector<int32_t>& ids) const;
  void encode_regex_pieces(std::string_view text, std::vector<int32_t>& ids) const;

  struct Merge {
    int32_t rank;
    int32_t merged_id;
  };

  std::string pre_tokenizer_;
  bool split_digits_ = false;
  std::vector<std::string> tokens_;       // id -> token string (byte-char form)
  std::vector<std::string> token_bytes_;  // id -> decoded bytes (ByteLevel decoder)
  std::vector<bool> special_;             // id -> special added token
  std::unordered_map<std::string, int32_t> token_ids_;
  std::unordered_map<uint64_t, Merge> merges_;  // (left id << 32 | right id) -> merge
  std::array<int32_t, 256> byte_ids_{};         // byte -> id of its one-char token, -1 if none
  AddedTokenMatcher added_;
  int32_t bos_id_ = -1, eos_id_ = -1, pad_id_ = -1;
  std::unique_ptr<PcreRegex> byte_level_regex_;
  std::unique_ptr<PcreRegex> numeric_regex_;

  // Per-instance cache of piece -> ids (tokenizers caches words the same way). Bounded: once
  // full it stops growing, as tokenizers' cache does.
  static constexpr size_t kCacheCapacity = 200000;
  mutable std::shared_mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace smol
