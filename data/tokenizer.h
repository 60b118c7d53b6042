// Tokenizer: the one interface the engine uses for text <-> ids, whatever the model file
// (byte-level BPE from tokenizer.json or GGUF, sentencepiece .model). Plus StreamingDecoder,
// which turns ids into text one at a time without ever emitting half a UTF-8 character.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace smol {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Text -> ids. parse_special: special tokens written in the text ("<|im_end|>") become
  // their ids; when false they are tokenised as plain text. Never adds BOS/EOS.
  virtual std::vector<int32_t> encode(std::string_view text, bool parse_special = true) const = 0;
  // Ids -> text; skip_special drops special tokens. Invalid UTF-8 becomes U+FFFD.
  // An id at or past vocab_size() decodes to nothing (as in tokenizers); a negative id throws.
  virtual std::string decode(const std::vector<int32_t>& ids, bool skip_special = false) const;

  virtual int32_t vocab_size() const = 0;
  // The token's string as the vocabulary stores it (byte-char form for byte-level BPE).
  virtual std::string id_to_token(int32_t id) const = 0;
  // -1 when absent.
  virtual int32_t token_to_id(std::string_view token) const = 0;
  virtual int32_t bos_id() const = 0;  // -1 = none
  virtual int32_t eos_id() const = 0;
  virtual int32_t pad_id() const = 0;
  virtual bool is_special(int32_t id) const = 0;

  // The raw bytes `id` contributes to decoded text, before UTF-8 repair ("" when it is a
  // skipped special). first_in_sequence lets sentencepiece drop its dummy-prefix space.
  virtual std::string token_bytes(int32_t id, bool skip_special, bool first_in_sequence) const = 0;

  // True for an id at or past the vocabulary: decode and StreamingDecoder skip it (tokenizer.cpp).
  bool decodes_to_nothing(int32_t id) const;

 protected:
  // Throws smol::Error naming the id when it is outside the vocabulary.
  void check_id(int32_t id) const;
};

// Decodes a stream of ids (generation) into text, emitting only complete characters: the
// bytes of a character split across ids are held until the character is complete. The
// concatenation of every push() and the final flush() equals tokenizer.decode(all ids).
class StreamingDecoder {
 public:
  explicit StreamingDecoder(const Tokenizer& tokenizer, bool skip_special = false)
      : tokenizer_(tokenizer), skip_special_(skip_special) {}

  std::string push(int32_t id);
  // The held bytes of an unfinished character, as U+FFFD (end of stream).
  std::string flush();
  void reset();

 private:
  const Tokenizer& tokenizer_;
  bool skip_special_;
  bool first_ = true;
  std::string pending_;  // bytes of a possibly-incomplete trailing character
};

}  // namespace smol
