// UTF-8 repair and the GPT-2 byte map, checked against hand-derived expectations: the
// maximal-subpart rule of Unicode §3.9 (which Rust's from_utf8_lossy, and so HF decode,
// implements) and the byte table of docs/formats.md §5.
#include <gtest/gtest.h>

#include <set>

#include "common/error.h"
#include "data/byte_level.h"
#include "data/utf8.h"

namespace smol {
namespace {

const std::string R(kReplacementChar);

TEST(Utf8, LossyReplacesEachMaximalSubpartOnce) {
  EXPECT_EQ(utf8_lossy("plain ascii"), "plain ascii");
  EXPECT_EQ(utf8_lossy("caf\xC3\xA9"), "caf\xC3\xA9");
  EXPECT_EQ(utf8_lossy("\xE2\x82"), R);      // truncated 3-byte: one subpart
  EXPECT_EQ(utf8_lossy("\xF0\x9F\x98"), R);  // truncated 4-byte: one subpart
  EXPECT_EQ(utf8_lossy("\xE2\x82x"), R + "x");
  EXPECT_EQ(utf8_lossy("\xC0\xAF"), R + R);                  // overlong lead: each byte alone
  EXPECT_EQ(utf8_lossy("\xED\xA0\x80"), R + R + R);          // surrogate: ED then A0, 80 alone
  EXPECT_EQ(utf8_lossy("\xF4\x90\x80\x80"), R + R + R + R);  // > U+10FFFF
  EXPECT_EQ(utf8_lossy("a\xFF"
                       "b"),
            "a" + R + "b");
  EXPECT_EQ(utf8_lossy("\xE2\xE2\x82\xAC"), R + "\xE2\x82\xAC");
  EXPECT_EQ(utf8_lossy("\x80\x80"), R + R);
}

TEST(Utf8, CompletePrefixHoldsBackOnlyACompletableTail) {
  EXPECT_EQ(utf8_complete_prefix(""), 0u);
  EXPECT_EQ(utf8_complete_prefix("abc"), 3u);
  EXPECT_EQ(utf8_complete_prefix("ab\xE2"), 2u);
  EXPECT_EQ(utf8_complete_prefix("ab\xE2\x82"), 2u);
  EXPECT_EQ(utf8_complete_prefix("ab\xE2\x82\xAC"), 5u);
  EXPECT_EQ(utf8_complete_prefix("\xF0\x9F\x98"), 0u);
  EXPECT_EQ(utf8_complete_prefix("a\x82"), 2u);      // stray continuation: emit (as U+FFFD)
  EXPECT_EQ(utf8_complete_prefix("a\xE2\x41"), 3u);  // already ill-formed: emit
  EXPECT_EQ(utf8_complete_prefix("a\xFF"), 2u);
}

TEST(Utf8, CheckNamesTheInput) {
  EXPECT_NO_THROW(check_utf8("ok \xF0\x9F\xA4\x97", "x"));
  try {
    check_utf8("bad \xC3", "stdin:3");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("stdin:3"), std::string::npos) << e.what();
  }
}

TEST(ByteLevel, Gpt2TableMatchesFormatsSection5) {
  const ByteLevelMap& map = byte_level_map();
  EXPECT_EQ(map.char_of(' '), 0x120u);
  EXPECT_EQ(map.char_of('\n'), 0x10Au);
  EXPECT_EQ(map.char_of('\t'), 0x109u);
  EXPECT_EQ(map.char_of(0x00), 0x100u);
  EXPECT_EQ(map.char_of(0x7F), 0x121u);
  EXPECT_EQ(map.char_of(0xAD), 0x143u);
  EXPECT_EQ(map.char_of('A'), static_cast<uint32_t>('A'));
  EXPECT_EQ(map.char_of(0xE9), 0xE9u);
  std::set<uint32_t> chars;
  for (int b = 0; b < 256; ++b) {
    chars.insert(map.char_of(static_cast<uint8_t>(b)));
    const std::string one(1, static_cast<char>(b));
    EXPECT_EQ(map.decode_token(map.encode(one)), one) << "byte " << b;
  }
  EXPECT_EQ(chars.size(), 256u);  // a bijection
}

TEST(ByteLevel, TokenWithACharOutsideTheMapDecodesToItsOwnUtf8) {
  const ByteLevelMap& map = byte_level_map();
  // "é" alone is byte 0xE9; with "中" (outside the map) the whole token stays UTF-8, as
  // tokenizers' ByteLevel decoder does (checked by the tiny tokenizer golden too).
  EXPECT_EQ(map.decode_token("\xC3\xA9"), "\xE9");
  EXPECT_EQ(map.decode_token("\xC3\xA9\xE4\xB8\xAD"), "\xC3\xA9\xE4\xB8\xAD");
  EXPECT_EQ(map.decode_token("\xC4\xA0hi"), " hi");
}

}  // namespace
}  // namespace smol
