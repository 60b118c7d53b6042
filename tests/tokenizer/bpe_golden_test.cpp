// SmolLM2 byte-level BPE against HF `tokenizers` (golden ids by
// tests/golden/tokenizer/make_golden.py from the same GGUF's vocab and merges): edge cases,
// decode cases, the "gpt2" flavour, every GSM8K question and answer (by FNV-1a hash), the
// tokenizer.json round trip in both merge formats, and streaming decode.
#include <gtest/gtest.h>

#include <unistd.h>
#include <chrono>
#include <cstdio>

#include "common/error.h"
#include "data/byte_level.h"
#include "data/chat_template.h"
#include "data/tokenizer_json.h"
#include "data/utf8.h"
#include "tests/tokenizer/test_support.h"

namespace smol {
namespace {

using test::golden_dir;
using test::read_json;

std::vector<int32_t> ids_of(const nlohmann::json& node) {
  return node.get<std::vector<int32_t>>();
}

TEST(SmolLmTokenizer, ThirdPartySelfCheckIds) {
  SMOL_REQUIRE_SMOLLM();
  const Tokenizer& tok = *test::smollm_tokenizer();
  // docs/formats.md §5 "Third-party self-check ids".
  EXPECT_EQ(tok.encode("Hello, we can use"), (std::vector<int32_t>{19556, 28, 392, 416, 722}));
  EXPECT_EQ(tok.encode("The capital of France is"),
            (std::vector<int32_t>{504, 3575, 282, 4649, 314}));
  EXPECT_EQ(tok.encode("\n"), (std::vector<int32_t>{198}));
  EXPECT_EQ(tok.encode("Hello world! 123"),
            (std::vector<int32_t>{19556, 905, 17, 216, 33, 34, 35}));
  EXPECT_EQ(tok.encode("  multiple   spaces"), (std::vector<int32_t>{216, 2701, 256, 5600}));
  EXPECT_EQ(tok.encode("Café déjà vu."),
            (std::vector<int32_t>{51, 1939, 2756, 32564, 90, 16739, 386, 101, 30}));
}

TEST(SmolLmTokenizer, SpecialsAndVocabulary) {
  SMOL_REQUIRE_SMOLLM();
  const Tokenizer& tok = *test::smollm_tokenizer();
  EXPECT_EQ(tok.vocab_size(), 49152);
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);
  EXPECT_EQ(tok.token_to_id("<|im_end|>"), 2);
  EXPECT_EQ(tok.token_to_id("no such token at all"), -1);
  EXPECT_EQ(tok.id_to_token(198), "\xC4\x8A");  // "Ċ" = '\n'
  for (int32_t id = 0; id < 17; ++id) EXPECT_TRUE(tok.is_special(id)) << id;
  EXPECT_FALSE(tok.is_special(17));
  EXPECT_EQ(tok.decode({49152}), "");  // past the vocabulary: nothing, as in HF tokenizers
  EXPECT_THROW(tok.decode({-1}), Error);
  EXPECT_THROW(tok.encode("bad \xC3"), Error);
}

TEST(SmolLmTokenizer, EdgeCasesMatchHfTokenizers) {
  SMOL_REQUIRE_SMOLLM();
  const Tokenizer& tok = *test::smollm_tokenizer();
  for (const auto& c : read_json(golden_dir() / "edge_cases.json")) {
    const std::string text = c["text"];
    SCOPED_TRACE(c["name"].get<std::string>());
    const std::vector<int32_t> ids = tok.encode(text);
    EXPECT_EQ(ids, ids_of(c["ids"]));
    EXPECT_EQ(tok.decode(ids_of(c["ids"])), c["decoded"].get<std::string>());
    EXPECT_EQ(tok.decode(ids_of(c["ids"]), true), c["decoded_skip_special"].get<std::string>());
  }
}

TEST(SmolLmTokenizer, Gpt2FlavourEdgeCasesMatchHfTokenizers) {
  SMOL_REQUIRE_SMOLLM();
  BpeSpec spec = *test::smollm_spec();
  spec.pre_tokenizer = "gpt2";  // ByteLevel without Digits
  const BpeTokenizer tok(spec);
  for (const auto& c : read_json(golden_dir() / "edge_cases_gpt2.json")) {
    const std::string text = c["text"];
    EXPECT_EQ(tok.encode(text), ids_of(c["ids"])) << text;
  }
}

TEST(SmolLmTokenizer, DecodeCasesMatchHfTokenizers) {
  SMOL_REQUIRE_SMOLLM();
  const Tokenizer& tok = *test::smollm_tokenizer();
  for (const auto& c : read_json(golden_dir() / "decode_cases.json")) {
    EXPECT_EQ(tok.decode(ids_of(c["ids"]), c["skip_special"].get<bool>()),
              c["text"].get<std::string>())
        << c.dump();
  }
}

TEST(SmolLmTokenizer, ParseSpecialOffTokenisesMarkersAsText) {
  SMOL_REQUIRE_SMOLLM();
  const Tokenizer& tok = *test::smollm_tokenizer();
  const std::string text = "<|im_start|>user\nhi<|im_end|>";
  const std::vector<int32_t> ids = tok.encode(text, /*parse_special=*/false);
  for (int32_t id : ids) EXPECT_FALSE(tok.is_special(id)) << id;
  EXPECT_GT(ids.size(), 5u);
  EXPECT_EQ(tok.decode(ids), text);
}

TEST(SmolLmTokenizer, StreamingDecodeEmitsOnlyWholeCharacters) {
  SMOL_REQUIRE_SMOLLM();
  const Tokenizer& tok = *test::smollm_tokenizer();
  // "€" as three one-byte tokens: nothing is emitted until the third arrives.
  const std::string euro = "\xE2\x82\xAC";
  std::vector<int32_t> byte_ids;
  for (unsigned char b : euro) {
    byte_ids.push_back(tok.token_to_id(byte_level_map().char_utf8_of(b)));
    ASSERT_GE(byte_ids.back(), 0);
  }
  StreamingDecoder stream(tok);
  EXPECT_EQ(stream.push(byte_ids[0]), "");
  EXPECT_EQ(stream.push(byte_ids[1]), "");
  EXPECT_EQ(stream.push(byte_ids[2]), euro);
  EXPECT_EQ(stream.flush(), "");
  // An unfinished character at the end becomes U+FFFD, as decode() does.
  EXPECT_EQ(stream.push(byte_ids[0]), "");
  EXPECT_EQ(stream.flush(), std::string(kReplacementChar));

  // Pushing any id sequence piece by piece gives exactly decode() of the whole.
  const auto stream_all = [&](const std::vector<int32_t>& ids, bool skip) {
    StreamingDecoder s(tok, skip);
    std::string out;
    for (int32_t id : ids) {
      const std::string part = s.push(id);
      EXPECT_EQ(utf8_complete_prefix(part), part.size());
      out += part;
    }
    return out + s.flush();
  };
  for (const auto& c : read_json(golden_dir() / "edge_cases.json")) {
    EXPECT_EQ(stream_all(ids_of(c["ids"]), false), c["decoded"].get<std::string>());
    EXPECT_EQ(stream_all(ids_of(c["ids"]), true), c["decoded_skip_special"].get<std::string>());
  }
  for (const auto& c : read_json(golden_dir() / "decode_cases.json")) {
    EXPECT_EQ(stream_all(ids_of(c["ids"]), c["skip_special"]), c["text"].get<std::string>());
  }
}

TEST(SmolLmTokenizer, Gsm8kFirstRowsMatchFullIds) {
  SMOL_REQUIRE_SMOLLM();
  const Tokenizer& tok = *test::smollm_tokenizer();
  for (const auto& c : read_json(golden_dir() / "gsm8k_head.json")) {
    const std::string text = c["text"];
    const std::vector<int32_t> ids = tok.encode(text);
    EXPECT_EQ(ids, ids_of(c["ids"])) << text;
    EXPECT_EQ(tok.decode(ids), text);  // GSM8K uses no byte the vocabulary lacks
  }
}

TEST(SmolLmTokenizer, EveryGsm8kQuestionAndAnswerMatches) {
  SMOL_REQUIRE_SMOLLM();
  if (!std::filesystem::exists(test::gsm8k_dir() / "train.jsonl")) {
    GTEST_SKIP() << "\n*** SKIPPED: " << test::gsm8k_dir() << " has no GSM8K ***";
  }
  std::vector<std::string> texts;
  for (const char* split : {"train.jsonl", "test.jsonl"}) {
    std::istringstream lines(test::read_text(test::gsm8k_dir() / split));
    std::string line;
    while (std::getline(lines, line)) {
      const auto row = nlohmann::json::parse(line);
      texts.push_back(row["question"]);
      texts.push_back(row["answer"]);
    }
  }
  std::istringstream golden(test::read_text(golden_dir() / "gsm8k_hashes.txt"));
  // A fresh tokenizer, so the timing includes filling the piece cache.
  const BpeTokenizer tok(*test::smollm_spec());
  size_t mismatches = 0, tokens = 0;
  const auto start = std::chrono::steady_clock::now();
  for (size_t i = 0; i < texts.size(); ++i) {
    size_t length = 0;
    std::string hash_hex;
    ASSERT_TRUE(golden >> length >> hash_hex) << "gsm8k_hashes.txt ends at line " << i + 1;
    const std::vector<int32_t> ids = tok.encode(texts[i]);
    tokens += ids.size();
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(test::fnv1a64(ids)));
    if (ids.size() != length || hash_hex != hex) {
      if (++mismatches <= 5) {
        ADD_FAILURE() << "GSM8K text " << i << " (" << (i % 2 ? "answer" : "question")
                      << "): " << ids.size() << " ids, expected " << length << "\n"
                      << texts[i];
      }
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::string rest;
  EXPECT_FALSE(golden >> rest) << "gsm8k_hashes.txt has more lines than GSM8K has texts";
  EXPECT_EQ(mismatches, 0u);
  EXPECT_EQ(texts.size(), 17584u);
  std::printf("[ info ] encoded %zu GSM8K texts, %zu tokens, in %.3f s (%.0f tokens/s)\n",
              texts.size(), tokens, seconds, tokens / seconds);
}

TEST(SmolLmTokenizer, TokenizerJsonRoundTripInBothMergeFormats) {
  SMOL_REQUIRE_SMOLLM();
  const BpeSpec& spec = *test::smollm_spec();
  const auto dir = std::filesystem::temp_directory_path() /
                   ("smol_tokenizer_json_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto edge = read_json(golden_dir() / "edge_cases.json");
  for (bool pairs : {false, true}) {
    SCOPED_TRACE(pairs ? "merges as pairs" : "merges as strings");
    const auto path = dir / (pairs ? "pairs.json" : "strings.json");
    std::ofstream(path) << write_tokenizer_json(spec, pairs);
    const BpeSpec read = read_tokenizer_json(path.string());
    EXPECT_EQ(read.tokens, spec.tokens);
    EXPECT_EQ(read.merges, spec.merges);
    EXPECT_EQ(read.pre_tokenizer, "smollm");
    EXPECT_EQ(read.added_tokens.size(), 17u);
    const BpeTokenizer tok(read, path.string());
    for (const auto& c : edge)
      EXPECT_EQ(tok.encode(c["text"].get<std::string>()), ids_of(c["ids"]));
  }
  std::filesystem::remove_all(dir);
}

TEST(SmolLmTokenizer, ChatTemplateMatchesJinjaRendering) {
  const auto golden = read_json(golden_dir() / "chat_template.json");
  EXPECT_TRUE(is_chatml_template(golden["template"]));
  const BpeTokenizer* tok = test::smollm_tokenizer();
  if (test::smollm_spec() != nullptr) {
    EXPECT_EQ(test::smollm_spec()->chat_template, golden["template"].get<std::string>());
  }
  for (const auto& c : golden["cases"]) {
    std::vector<ChatMessage> messages;
    for (const auto& m : c["messages"]) messages.push_back({m["role"], m["content"]});
    const std::string text = render_chatml(messages, c["add_generation_prompt"]);
    EXPECT_EQ(text, c["text"].get<std::string>());
    if (tok != nullptr) EXPECT_EQ(tok->encode(text), ids_of(c["ids"]));
  }
  if (tok == nullptr) {
    GTEST_SKIP() << "\n*** rendering checked; ids SKIPPED: " << test::gguf_path()
                 << " is missing (scripts/fetch-model.sh) ***";
  }
}

}  // namespace
}  // namespace smol
