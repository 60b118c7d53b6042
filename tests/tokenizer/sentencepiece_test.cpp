// SentencePieceTokenizer over a tiny model trained here by the sentencepiece library (no
// committed binary): results must be the library's own, specials split when asked, and
// streaming decode equal to decode.
#include <gtest/gtest.h>

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>
#include <unistd.h>

#include "common/error.h"
#include "data/sentencepiece_tokenizer.h"
#include "tests/tokenizer/test_support.h"

namespace smol {
namespace {

class SentencePieceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = std::filesystem::temp_directory_path() / ("smol_sp_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    std::ofstream corpus(dir_ / "corpus.txt");
    const char* lines[] = {"Janet sells 16 eggs a day at the farmers market.",
                           "She eats three for breakfast and bakes muffins with four.",
                           "How much in dollars does she make every day?",
                           "The answer is 18 dollars, because 16 - 3 - 4 = 9 and 9 * 2 = 18.",
                           "Café au lait costs more than plain coffee.",
                           "A robe takes 2 bolts of blue fiber and half that much white fiber."};
    for (int repeat = 0; repeat < 20; ++repeat) {
      for (const char* line : lines) corpus << line << "\n";
    }
    corpus.close();
    const auto status = sentencepiece::SentencePieceTrainer::Train(
        "--input=" + (dir_ / "corpus.txt").string() +
        " --model_prefix=" + (dir_ / "tiny").string() +
        " --vocab_size=400 --model_type=bpe --byte_fallback=true --character_coverage=1.0"
        " --minloglevel=2");
    ASSERT_TRUE(status.ok()) << status.ToString();
  }
  static void TearDownTestSuite() { std::filesystem::remove_all(dir_); }
  static std::string model_path() { return (dir_ / "tiny.model").string(); }
  static std::filesystem::path dir_;
};
std::filesystem::path SentencePieceTest::dir_;

TEST_F(SentencePieceTest, EncodeDecodeAreTheLibrarys) {
  const SentencePieceTokenizer tok(model_path());
  sentencepiece::SentencePieceProcessor reference;
  ASSERT_TRUE(reference.Load(model_path()).ok());
  EXPECT_EQ(tok.vocab_size(), 400);
  EXPECT_EQ(tok.bos_id(), reference.bos_id());
  EXPECT_EQ(tok.eos_id(), reference.eos_id());
  for (const std::string text :
       {"Janet sells 16 eggs.", "  spaced   out  ", "Café 🤗 zebra", ""}) {
    std::vector<int> want;
    ASSERT_TRUE(reference.Encode(text, &want).ok());
    const std::vector<int32_t> ids = tok.encode(text);
    EXPECT_EQ(ids, std::vector<int32_t>(want.begin(), want.end())) << text;
    std::string decoded;
    ASSERT_TRUE(reference.Decode(want, &decoded).ok());
    EXPECT_EQ(tok.decode(ids), decoded) << text;
    // Streaming gives the same text as decode (byte-fallback pieces of "🤗" included).
    StreamingDecoder stream(tok);
    std::string streamed;
    for (int32_t id : ids) streamed += stream.push(id);
    EXPECT_EQ(streamed + stream.flush(), decoded) << text;
  }
  EXPECT_EQ(tok.token_to_id("no-such-piece"), -1);
  EXPECT_EQ(tok.token_to_id(tok.id_to_token(50)), 50);
}

TEST_F(SentencePieceTest, ControlPiecesSplitOnlyWhenParsingSpecials) {
  const SentencePieceTokenizer tok(model_path());
  const std::vector<int32_t> ids = tok.encode("<s>Janet</s>");
  ASSERT_GE(ids.size(), 3u);
  EXPECT_EQ(ids.front(), tok.bos_id());
  EXPECT_EQ(ids.back(), tok.eos_id());
  EXPECT_TRUE(tok.is_special(tok.bos_id()));
  for (int32_t id : tok.encode("<s>Janet</s>", /*parse_special=*/false)) {
    EXPECT_NE(id, tok.bos_id());
    EXPECT_NE(id, tok.eos_id());
  }
  EXPECT_EQ(tok.decode(ids, /*skip_special=*/true), "Janet");
}

TEST(SentencePiece, BadModelFileIsNamed) {
  try {
    SentencePieceTokenizer tok("/nonexistent/tiny.model");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/tiny.model"), std::string::npos);
  }
}

}  // namespace
}  // namespace smol
