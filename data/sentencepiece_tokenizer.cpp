// Thin wrapper over sentencepiece::SentencePieceProcessor. Streaming bytes per id follow the
// library's decoder: "▁" (U+2581) is a space, <0xNN> byte pieces are that byte, control and
// unknown pieces... control pieces decode to nothing, unknown to " ⁇ " as the library does;
// the first piece of a sequence loses its leading space (the dummy prefix).
#include "data/sentencepiece_tokenizer.h"

#include <sentencepiece_processor.h>

#include "common/error.h"
#include "common/regular_file.h"
#include "data/utf8.h"

namespace smol {
namespace {

constexpr std::string_view kSpaceSymbol = "\xE2\x96\x81";  // U+2581 "▁"
// Real models are 0.5-5 MB (a 256K-piece vocabulary is ~5 MB).
constexpr uint64_t kMaxSentencePieceBytes = 256ull << 20;

}  // namespace

SentencePieceTokenizer::SentencePieceTokenizer(const std::string& path)
    : path_(path), processor_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {
  // Read here (a regular file, bounded: docs/design.md §9) rather than by the library, whose
  // Load() would block on a FIFO; the library also throws std::exception for some malformed
  // models (darts: "zero-length key"), which becomes the one smol::Error of a bad input.
  const std::string model = read_regular_file(path, "sentencepiece model", kMaxSentencePieceBytes);
  try {
    const auto status = processor_->LoadFromSerializedProto(model);
    SMOL_CHECK(status.ok(), path, ": cannot load sentencepiece model: ", status.ToString());
  } catch (const std::exception& e) {
    if (dynamic_cast<const Error*>(&e) != nullptr) throw;
    throw_error(path, ": cannot load sentencepiece model: ", e.what());
  }
  std::vector<AddedToken> specials;
  for (int id = 0; id < processor_->GetPieceSize(); ++id) {
    // User-defined pieces are matched by the library itself; control pieces ("<s>") never
    // are, so they are split out here when the text asks for them.
    if (processor_->IsControl(id)) {
      specials.push_back({id, processor_->IdToPiece(id), true});
    }
  }
  specials_ = AddedTokenMatcher(std::move(specials));
}

SentencePieceTokenizer::~SentencePieceTokenizer() = default;

std::vector<int32_t> SentencePieceTokenizer::encode(std::string_view text,
                                                    bool parse_special) const {
  check_utf8(text, "text to encode");
  std::vector<int32_t> ids;
  for (const TextSegment& segment : specials_.split(text, parse_special)) {
    if (segment.id >= 0) {
      ids.push_back(segment.id);
      continue;
    }
    std::vector<int> piece_ids;
    const auto status = processor_->Encode(segment.text, &piece_ids);
    SMOL_CHECK(status.ok(), path_, ": encode failed: ", status.ToString());
    ids.insert(ids.end(), piece_ids.begin(), piece_ids.end());
  }
  return ids;
}

std::string SentencePieceTokenizer::decode(const std::vector<int32_t>& ids,
                                           bool skip_special) const {
  std::vector<int> kept;
  kept.reserve(ids.size());
  for (int32_t id : ids) {
    if (decodes_to_nothing(id)) continue;  // as in tokenizers (tokenizer.cpp)
    check_id(id);
    if (skip_special && processor_->IsControl(id)) continue;
    kept.push_back(id);
  }
  std::string text;
  const auto status = processor_->Decode(kept, &text);
  SMOL_CHECK(status.ok(), path_, ": decode failed: ", status.ToString());
  return text;
}

int32_t SentencePieceTokenizer::vocab_size() const {
  return processor_->GetPieceSize();
}

std::string SentencePieceTokenizer::id_to_token(int32_t id) const {
  check_id(id);
  return processor_->IdToPiece(id);
}

int32_t SentencePieceTokenizer::token_to_id(std::string_view token) const {
  const int id = processor_->PieceToId(token);
  // PieceToId answers unk_id for unknown pieces; only a real match counts.
  if (id == processor_->unk_id() && processor_->IdToPiece(id) != token) return -1;
  return id;
}

int32_t SentencePieceTokenizer::bos_id() const {
  return processor_->bos_id();
}
int32_t SentencePieceTokenizer::eos_id() const {
  return processor_->eos_id();
}
int32_t SentencePieceTokenizer::pad_id() const {
  return processor_->pad_id();
}

bool SentencePieceTokenizer::is_special(int32_t id) const {
  check_id(id);
  return processor_->IsControl(id);
}

std::string SentencePieceTokenizer::token_bytes(int32_t id, bool skip_special,
                                                bool first_in_sequence) const {
  check_id(id);
  if (processor_->IsControl(id)) return {};  // the library decodes control pieces to nothing
  (void)skip_special;
  // Decoding one id alone gives its text with the library's rules (byte pieces, unknown
  // pieces, "▁" -> space), except that a leading space is dropped as a dummy prefix.
  std::string piece = processor_->IdToPiece(id);
  if (processor_->IsByte(id)) {
    // "<0xNN>"
    return std::string(1, static_cast<char>(std::stoi(piece.substr(3, 2), nullptr, 16)));
  }
  if (processor_->IsUnknown(id)) return " \xE2\x81\x87 ";  // " ⁇ ", the library's unk surface
  std::string out;
  size_t pos = 0;
  while (pos < piece.size()) {
    if (piece.compare(pos, kSpaceSymbol.size(), kSpaceSymbol) == 0) {
      out.push_back(' ');
      pos += kSpaceSymbol.size();
    } else {
      out.push_back(piece[pos++]);
    }
  }
  if (first_in_sequence && !out.empty() && out[0] == ' ') out.erase(0, 1);
  return out;
}

}  // namespace smol
