// Byte-level BPE (docs/formats.md §5). Parity notes, each a trap HF `tokenizers` sets:
// - Digits(individual_digits) runs BEFORE the ByteLevel regex, on each added-token-free
//   stretch, so "! 123" gives pieces "! ", "1", "2", "3" and the regex then sees "! " alone
//   (a whitespace run before a digit ends its piece, so `\s+(?!\S)` takes all of it).
// - The regex needs the negative lookahead `\s+(?!\S)`: PCRE2 has it, std::regex can't do
//   \p{..}. UCP makes \s, \p{L}, \p{N} Unicode-aware like Oniguruma's. Oniguruma's \s is
//   Unicode White_Space, which includes U+0085 (NEL); PCRE2's UCP \s does not, so \s is
//   spelled [\s\x{85}] here.
// - Chars whose one-char token is absent from the vocabulary are dropped before merging
//   (unk null, no byte fallback); their neighbours then become adjacent and may merge.
// - Merges apply lowest rank first, ties leftmost: tokenizers' Word::merge_all uses a heap
//   ordered by (rank, position), which is what the heap below does.
#include "data/bpe_tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <mutex>
#include <queue>

#include "common/error.h"
#include "common/quote.h"
#include "data/byte_level.h"
#include "data/utf8.h"

namespace smol {

// A compiled PCRE2 pattern (UTF + UCP, JIT when available). Immutable after construction,
// so one instance is shared by every thread; match data is per call.
class PcreRegex {
 public:
  explicit PcreRegex(const std::string& pattern) {
    int error_code = 0;
    PCRE2_SIZE error_offset = 0;
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.c_str()), pattern.size(),
                          PCRE2_UTF | PCRE2_UCP, &error_code, &error_offset, nullptr);
    if (code_ == nullptr) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error_code, message, sizeof message);
      throw_error("regex '", pattern, "' does not compile at offset ", error_offset, ": ",
                  reinterpret_cast<const char*>(message));
    }
    // JIT is an optimisation: when it is unavailable pcre2_match interprets.
    pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE);
  }
  ~PcreRegex() { pcre2_code_free(code_); }
  PcreRegex(const PcreRegex&) = delete;
  PcreRegex& operator=(const PcreRegex&) = delete;

  // Per-call match state (not shareable between threads).
  class Matcher {
   public:
    explicit Matcher(const PcreRegex& regex)
        : code_(regex.code_), data_(pcre2_match_data_create_from_pattern(regex.code_, nullptr)) {
      SMOL_CHECK(data_ != nullptr, "out of memory creating regex match data");
    }
    ~Matcher() { pcre2_match_data_free(data_); }
    Matcher(const Matcher&) = delete;
    Matcher& operator=(const Matcher&) = delete;

    // Next match in `text` at or after `offset`: true and [*begin, *end), or false.
    // `text` must be valid UTF-8 (checked once by the caller).
    bool find(std::string_view text, size_t offset, size_t* begin, size_t* end) {
      const int rc = pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(),
                                 offset, PCRE2_NO_UTF_CHECK, data_, nullptr);
      if (rc == PCRE2_ERROR_NOMATCH) return false;
      SMOL_CHECK(rc >= 0, "regex match failed with PCRE2 error ", rc);
      const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data_);
      *begin = ovector[0];
      *end = ovector[1];
      return true;
    }

   private:
    const pcre2_code* code_;
    pcre2_match_data* data_;
  };

 private:
  pcre2_code* code_ = nullptr;
};

namespace {

// tokenizers' ByteLevel pre-tokenizer regex (byte_level.rs), \s widened to Oniguruma's.
constexpr const char* kByteLevelPattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\x{85}\p{L}\p{N}]+|[\s\x{85}]+(?![^\s\x{85}])|[\s\x{85}]+)";
// Rust's char::is_numeric (Digits pre-tokenizer) is general category N*.
constexpr const char* kNumericPattern = R"(\p{N})";

uint64_t pair_key(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

}  // namespace

BpeTokenizer::BpeTokenizer(const BpeSpec& spec, const std::string& source)
    : pre_tokenizer_(spec.pre_tokenizer),
      bos_id_(spec.bos_id),
      eos_id_(spec.eos_id),
      pad_id_(spec.pad_id) {
  if (pre_tokenizer_ == "smollm") {
    split_digits_ = true;
  } else if (pre_tokenizer_ != "gpt2") {
    throw_error(source, ": unsupported pre-tokenizer '", pre_tokenizer_,
                "' (byte-level BPE supports \"smollm\" = Digits + ByteLevel, and \"gpt2\")");
  }
  SMOL_CHECK(!spec.tokens.empty(), source, ": the vocabulary is empty");

  tokens_ = spec.tokens;
  // Added tokens may extend the id range, but only by as many ids as there are added tokens:
  // an id read from a file never sizes the table beyond the entries present (docs/design.md §9).
  const size_t id_limit = spec.tokens.size() + spec.added_tokens.size();
  for (const AddedToken& added : spec.added_tokens) {
    SMOL_CHECK(added.id >= 0 && static_cast<size_t>(added.id) < id_limit, source, ": added token ",
               quoted_excerpt(added.content), " has id ", added.id, ", outside [0, ", id_limit,
               ")");
    SMOL_CHECK(!added.content.empty(), source, ": added token ", added.id, " is empty");
    if (static_cast<size_t>(added.id) >= tokens_.size()) tokens_.resize(added.id + 1);
    tokens_[added.id] = added.content;
  }
  special_.assign(tokens_.size(), false);
  for (const AddedToken& added : spec.added_tokens) special_[added.id] = added.special;

  token_ids_.reserve(tokens_.size() * 2);
  for (size_t id = 0; id < tokens_.size(); ++id) {
    SMOL_CHECK(!tokens_[id].empty(), source, ": token id ", id,
               " has no string (the "
               "vocabulary must be dense)");
    const auto [it, inserted] = token_ids_.emplace(tokens_[id], static_cast<int32_t>(id));
    SMOL_CHECK(inserted, source, ": token '", tokens_[id], "' appears twice (ids ", it->second,
               " and ", id, ")");
  }
  for (const AddedToken& added : spec.added_tokens) token_ids_[added.content] = added.id;
  for (int32_t id : {bos_id_, eos_id_, pad_id_}) {
    SMOL_CHECK(id >= -1 && id < vocab_size(), source, ": special id ", id,
               " is outside the vocabulary of ", vocab_size());
  }

  const ByteLevelMap& byte_map = byte_level_map();
  for (int b = 0; b < 256; ++b) {
    const auto it = token_ids_.find(byte_map.char_utf8_of(static_cast<uint8_t>(b)));
    byte_ids_[b] = it == token_ids_.end() ? -1 : it->second;
  }

  merges_.reserve(spec.merges.size() * 2);
  for (size_t rank = 0; rank < spec.merges.size(); ++rank) {
    // Plain references, not a structured binding: clang before 16 cannot capture those.
    const std::string& left = spec.merges[rank].first;
    const std::string& right = spec.merges[rank].second;
    const auto lookup = [&](const std::string& token) {
      const auto it = token_ids_.find(token);
      SMOL_CHECK(it != token_ids_.end(), source, ": merge ", rank, " ('", left, "' '", right,
                 "') uses '", token, "', which is not in the vocabulary");
      return it->second;
    };
    const int32_t left_id = lookup(left), right_id = lookup(right);
    const int32_t merged_id = lookup(left + right);
    // A repeated pair keeps its last rank, as tokenizers' HashMap collect does.
    merges_[pair_key(left_id, right_id)] = {static_cast<int32_t>(rank), merged_id};
  }

  token_bytes_.resize(tokens_.size());
  for (size_t id = 0; id < tokens_.size(); ++id) {
    token_bytes_[id] = byte_map.decode_token(tokens_[id]);
  }
  added_ = AddedTokenMatcher(spec.added_tokens);
  byte_level_regex_ = std::make_unique<PcreRegex>(kByteLevelPattern);
  numeric_regex_ = std::make_unique<PcreRegex>(kNumericPattern);
}

BpeTokenizer::~BpeTokenizer() = default;

std::string BpeTokenizer::id_to_token(int32_t id) const {
  check_id(id);
  return tokens_[id];
}

int32_t BpeTokenizer::token_to_id(std::string_view token) const {
  const auto it = token_ids_.find(std::string(token));
  return it == token_ids_.end() ? -1 : it->second;
}

bool BpeTokenizer::is_special(int32_t id) const {
  check_id(id);
  return special_[id];
}

std::string BpeTokenizer::token_bytes(int32_t id, bool skip_special, bool) const {
  check_id(id);
  if (skip_special && special_[id]) return {};
  return token_bytes_[id];
}

std::vector<int32_t> BpeTokenizer::encode(std::string_view text, bool parse_special) const {
  check_utf8(text, "text to encode");
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  for (const TextSegment& segment : added_.split(text, parse_special)) {
    if (segment.id >= 0) {
      ids.push_back(segment.id);
    } else {
      encode_plain(segment.text, ids);
    }
  }
  return ids;
}

void BpeTokenizer::encode_plain(std::string_view text, std::vector<int32_t>& ids) const {
  if (!split_digits_) {
    encode_regex_pieces(text, ids);
    return;
  }
  // Digits(individual_digits = true): each numeric char is isolated into its own piece.
  PcreRegex::Matcher numeric(*numeric_regex_);
  size_t pos = 0, begin = 0, end = 0;
  while (pos < text.size() && numeric.find(text, pos, &begin, &end)) {
    if (begin > pos) encode_regex_pieces(text.substr(pos, begin - pos), ids);
    encode_regex_pieces(text.substr(begin, end - begin), ids);
    pos = end;
  }
  if (pos < text.size()) encode_regex_pieces(text.substr(pos), ids);
}

void BpeTokenizer::encode_regex_pieces(std::string_view text, std::vector<int32_t>& ids) const {
  PcreRegex::Matcher matcher(*byte_level_regex_);
  size_t pos = 0, begin = 0, end = 0;
  while (pos < text.size() && matcher.find(text, pos, &begin, &end)) {
    // The pattern matches every char, so there are no gaps; a gap would still be a piece
    // (tokenizers' Split with Isolated behaviour keeps unmatched spans).
    if (begin > pos) encode_word(text.substr(pos, begin - pos), ids);
    if (end == begin) {  // cannot happen with this pattern; guard against looping forever
      end = begin + std::max<size_t>(1, utf8_sequence_length(text, begin));
    }
    encode_word(text.substr(begin, end - begin), ids);
    pos = end;
  }
  if (pos < text.size()) encode_word(text.substr(pos), ids);
}

void BpeTokenizer::encode_word(std::string_view word, std::vector<int32_t>& ids) const {
  const std::string key(word);
  {
    std::shared_lock lock(cache_mutex_);
    const auto it = cache_.find(key);
    if (it != cache_.end()) {
      ids.insert(ids.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> word_ids;
  bpe(word, word_ids);
  ids.insert(ids.end(), word_ids.begin(), word_ids.end());
  std::unique_lock lock(cache_mutex_);
  if (cache_.size() < kCacheCapacity) cache_.emplace(key, std::move(word_ids));
}

void BpeTokenizer::bpe(std::string_view word, std::vector<int32_t>& ids) const {
  // Symbols in a doubly linked list over the word's bytes; dropped bytes never enter it.
  struct Symbol {
    int32_t id;
    int32_t prev, next;  // indices into symbols, -1 at the ends
  };
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  for (char c : word) {
    const int32_t id = byte_ids_[static_cast<uint8_t>(c)];
    if (id < 0) continue;  // byte char absent from the vocabulary: dropped (docs/formats.md §5)
    const auto index = static_cast<int32_t>(symbols.size());
    symbols.push_back({id, index - 1, -1});
    if (index > 0) symbols[index - 1].next = index;
  }
  if (symbols.empty()) return;

  // Candidate merges ordered by (rank, left position); stale entries are skipped on pop.
  struct Candidate {
    int32_t rank, left, left_id, right_id;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : left > o.left;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
  const auto push_pair = [&](int32_t left) {
    if (left < 0 || symbols[left].next < 0) return;
    const Symbol& l = symbols[left];
    const Symbol& r = symbols[l.next];
    const auto it = merges_.find(pair_key(l.id, r.id));
    if (it != merges_.end()) queue.push({it->second.rank, left, l.id, r.id});
  };
  for (int32_t i = 0; i < static_cast<int32_t>(symbols.size()); ++i) push_pair(i);

  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.left];
    if (left.id != top.left_id || left.next < 0 || symbols[left.next].id != top.right_id) {
      continue;  // stale: one side has merged since this candidate was queued
    }
    const int32_t right_index = left.next;
    Symbol& right = symbols[right_index];
    left.id = merges_.at(pair_key(top.left_id, top.right_id)).merged_id;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = top.left;
    right.id = -1;  // removed
    right.prev = right.next = -1;
    push_pair(left.prev);
    push_pair(top.left);
  }
  for (int32_t i = 0; i >= 0; i = symbols[i].next) ids.push_back(symbols[i].id);
}

}  // namespace smol
