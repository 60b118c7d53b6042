// tokenizer.json: a tiny BPE trained with `tokenizers` (committed, merges as pairs, a
// non-special added token outside the base vocab) against its golden ids, and every refusal
// of a tokenizer.json we would tokenise differently (named file + field in the message).
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "data/tokenizer_json.h"
#include "tests/tokenizer/test_support.h"

namespace smol {
namespace {

using nlohmann::json;
using test::golden_dir;

TEST(TokenizerJson, TinyTrainedTokenizerMatchesHfTokenizers) {
  const auto path = golden_dir() / "tiny/tokenizer.json";
  const BpeSpec spec = read_tokenizer_json(path.string());
  EXPECT_EQ(spec.pre_tokenizer, "gpt2");
  const BpeTokenizer tok(spec, path.string());
  EXPECT_EQ(tok.vocab_size(), 401);  // 400 trained + the added token with id 400
  for (const auto& c : test::read_json(golden_dir() / "tiny/golden.json")) {
    const std::string text = c["text"];
    const auto ids = c["ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(tok.encode(text), ids) << text;
    EXPECT_EQ(tok.decode(ids), c["decoded"].get<std::string>()) << text;
    EXPECT_EQ(tok.decode(ids, true), c["decoded_skip_special"].get<std::string>()) << text;
  }
  EXPECT_TRUE(tok.is_special(0));
  EXPECT_FALSE(tok.is_special(400));  // added, not special: kept by skip_special
}

// An id at or past the vocabulary decodes to nothing, as HF tokenizers' decode does
// (checked with tokenizers on this file: decode([259, 401, 408, 380, ...]) == "hello world");
// a model whose embedding is padded past its tokenizer can predict such ids. Streaming decode
// agrees; a negative id is still refused.
TEST(TokenizerJson, IdsPastTheVocabularyDecodeToNothing) {
  const auto path = golden_dir() / "tiny/tokenizer.json";
  const BpeTokenizer tok(read_tokenizer_json(path.string()), path.string());
  const std::vector<int32_t> ids = tok.encode("hello world");
  ASSERT_GE(ids.size(), 2u);
  std::vector<int32_t> padded = {ids[0], 401, 408};
  padded.insert(padded.end(), ids.begin() + 1, ids.end());
  EXPECT_EQ(tok.decode(padded), "hello world");
  StreamingDecoder stream(tok);
  std::string streamed;
  for (int32_t id : padded) streamed += stream.push(id);
  EXPECT_EQ(streamed + stream.flush(), "hello world");
  EXPECT_THROW(tok.decode({ids[0], -1}), Error);
}

// Writes `text` to a temp file and expects read_tokenizer_json to fail with a message that
// names the file and contains `expected`.
void expect_refused(const std::string& text, const std::string& expected) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("smol_bad_tokenizer_" + std::to_string(::getpid()) + ".json");
  std::ofstream(path) << text;
  try {
    read_tokenizer_json(path.string());
    ADD_FAILURE() << "accepted a tokenizer.json that should fail with '" << expected << "'";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(path.string()), std::string::npos) << message;
    EXPECT_NE(message.find(expected), std::string::npos) << message;
  }
  std::filesystem::remove(path);
}

json tiny_json() {
  return test::read_json(golden_dir() / "tiny/tokenizer.json");
}

// docs/design.md §9 "Untrusted input": an id read from the file never sizes a table beyond the
// entries the file holds (a 10 KB tokenizer.json with one added token id near 2^31 used to
// allocate gigabytes), JSON nesting is bounded, and a FIFO is refused instead of read.
TEST(TokenizerJson, BoundsIdsNestingAndSpecialFiles) {
  json j = tiny_json();
  j["added_tokens"].push_back({{"id", 2147483000}, {"content", "<big>"}, {"special", true}});
  expect_refused(j.dump(), "added_tokens[" + std::to_string(j["added_tokens"].size() - 1) +
                               "].id = 2147483000 is outside [0, ");
  j = tiny_json();
  j["added_tokens"].push_back({{"id", uint64_t{1} << 63}, {"content", "<big>"}});
  expect_refused(j.dump(), "is outside [0, ");
  j = tiny_json();
  j["added_tokens"].push_back({{"id", -7}, {"content", "<neg>"}});
  expect_refused(j.dump(), "].id = -7 is outside");
  expect_refused(std::string(5000, '[') + std::string(5000, ']'), "nested deeper than 64 levels");

  // The same bound in BpeTokenizer itself, whatever built the spec.
  BpeSpec spec = read_tokenizer_json((golden_dir() / "tiny/tokenizer.json").string());
  spec.added_tokens.push_back({1 << 30, "<far>", true});
  try {
    const BpeTokenizer tokenizer(spec, "spec");
    ADD_FAILURE() << "an added token id of 2^30 was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("has id 1073741824, outside [0, "), std::string::npos)
        << e.what();
  }

  const auto fifo = std::filesystem::temp_directory_path() /
                    ("smol_fifo_tokenizer_" + std::to_string(::getpid()) + ".json");
  std::filesystem::remove(fifo);
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  try {
    read_tokenizer_json(fifo.string());
    ADD_FAILURE() << "a FIFO was read as tokenizer.json";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("FIFO"), std::string::npos) << e.what();
  }
  std::filesystem::remove(fifo);
}

TEST(TokenizerJson, RefusesWhatItWouldTokeniseDifferently) {
  json j = tiny_json();
  j["model"]["type"] = "WordPiece";
  expect_refused(j.dump(), "model.type 'WordPiece'");
  j = tiny_json();
  j["model"]["type"] = "Unigram";
  expect_refused(j.dump(), "model.type 'Unigram'");
  j = tiny_json();
  j.erase("model");
  expect_refused(j.dump(), "model is missing");
  j = tiny_json();
  j["normalizer"] = {{"type", "NFC"}};
  expect_refused(j.dump(), "normalizer 'NFC'");
  j = tiny_json();
  j["pre_tokenizer"] = {{"type", "Whitespace"}};
  expect_refused(j.dump(), "pre_tokenizer.type 'Whitespace'");
  j = tiny_json();
  j["pre_tokenizer"] = nullptr;
  expect_refused(j.dump(), "pre_tokenizer is null");
  j = tiny_json();
  j["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers", json::array({{{"type", "Split"}}, {{"type", "ByteLevel"}}})}};
  expect_refused(j.dump(), "pretokenizers[0].type 'Split'");
  j = tiny_json();
  j["pre_tokenizer"]["add_prefix_space"] = true;
  expect_refused(j.dump(), "add_prefix_space");
  j = tiny_json();
  j["model"]["byte_fallback"] = true;
  expect_refused(j.dump(), "byte_fallback");
  j = tiny_json();
  j["model"]["dropout"] = 0.1;
  expect_refused(j.dump(), "dropout");
  j = tiny_json();
  j["model"]["merges"][3] = "a b c";
  expect_refused(j.dump(), "model.merges[3]");
  j = tiny_json();
  j["model"]["merges"][5] = json::array({"a"});
  expect_refused(j.dump(), "model.merges[5]");
  j = tiny_json();
  j["model"]["vocab"]["zz-extra"] = 100000;
  expect_refused(j.dump(), "out of range or repeated");
  j = tiny_json();
  j["decoder"] = {{"type", "WordPiece"}};
  expect_refused(j.dump(), "decoder.type 'WordPiece'");
  j = tiny_json();
  j["post_processor"] = {{"type", "TemplateProcessing"}};
  expect_refused(j.dump(), "post_processor.type 'TemplateProcessing'");
  expect_refused("{\"model\": {\"type\": \"BPE\", ", "malformed JSON");
  expect_refused("[1, 2]", "not a JSON object");
}

TEST(TokenizerJson, MissingFileIsNamed) {
  try {
    read_tokenizer_json("/nonexistent/tokenizer.json");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/tokenizer.json"), std::string::npos);
  }
}

TEST(TokenizerJson, InconsistentMergesAreRefusedWhenBuilding) {
  BpeSpec spec = read_tokenizer_json((golden_dir() / "tiny/tokenizer.json").string());
  spec.merges.push_back({"Ġ", "not-a-token"});
  try {
    BpeTokenizer tok(spec, "tiny.json");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not-a-token"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("tiny.json"), std::string::npos) << e.what();
  }
  spec = read_tokenizer_json((golden_dir() / "tiny/tokenizer.json").string());
  spec.pre_tokenizer = "llama3";
  EXPECT_THROW(BpeTokenizer(spec, "tiny.json"), Error);
  spec = read_tokenizer_json((golden_dir() / "tiny/tokenizer.json").string());
  spec.tokens[7] = spec.tokens[8];
  EXPECT_THROW(BpeTokenizer(spec, "tiny.json"), Error);
}

}  // namespace
}  // namespace smol
