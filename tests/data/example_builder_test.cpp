// Tokenised examples (docs/seed-behaviour.md §2.4–2.7): separate encoding, EOS, add_bos text, the
// truncation cases of §2.5, empty completions dropped, label masking, collation to multiples
// of 8 and the pad-id fallbacks. A byte-level fake tokenizer makes every id predictable; the
// GSM8K check at the end uses the real SmolLM2 tokenizer when the GGUF is present.
#include <gtest/gtest.h>

#include "common/error.h"
#include "data/bpe_tokenizer.h"
#include "data/collate.h"
#include "data/example_builder.h"
#include "data_test_support.h"
#include "io/gguf_reader.h"
#include "io/gguf_tokenizer.h"

namespace smol {
namespace {

using test::ByteTokenizer;
using Ids = std::vector<int32_t>;

Ids concat(Ids a, const Ids& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}
Ids ignored(size_t n) {
  return Ids(n, kIgnoreLabel);
}

ExampleFormat format_with(int64_t max_length) {
  ExampleFormat f;
  f.max_length = max_length;
  f.eos_id = 0;
  return f;
}

TEST(ExampleBuilder, SeparateEncodingEosAndMasking) {
  const ByteTokenizer tok;
  auto e = build_example(tok, {"Q: x", "ans"}, format_with(0));
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->prompt_tokens, 4);
  EXPECT_EQ(e->input_ids, concat(concat(ByteTokenizer::ids("Q: x"), ByteTokenizer::ids("ans")),
                                 {0}));  // no separator (B5), EOS appended
  EXPECT_EQ(e->labels,
            concat(concat(ignored(4), ByteTokenizer::ids("ans")), {0}));  // EOS supervised
  // EOS is not doubled when the completion already ends with it (special text is parsed).
  e = build_example(tok, {"p", "a<eos>"}, format_with(0));
  EXPECT_EQ(e->input_ids, concat(ByteTokenizer::ids("pa"), {0}));
  // Prefixes/suffix wrap the response; add_bos prepends the BOS *text*, which encodes to its id.
  ExampleFormat f = format_with(0);
  f.add_bos = true;
  f.assistant_prefix = "A:";
  f.completion_prefix = "<";
  f.completion_suffix = ">";
  e = build_example(tok, {"p", "r"}, f);
  EXPECT_EQ(e->input_ids, concat(concat({1}, ByteTokenizer::ids("pA:<r>")), {0}));
  EXPECT_EQ(e->prompt_tokens, 2);
  // append_eos false.
  f = format_with(0);
  f.append_eos = false;
  e = build_example(tok, {"p", "r"}, f);
  EXPECT_EQ(e->input_ids, ByteTokenizer::ids("pr"));
  // Missing specials are errors, not silent garbage.
  EXPECT_THROW(build_example(ByteTokenizer(false, true), {"p", "r"},
                             [] {
                               ExampleFormat g = format_with(0);
                               g.add_bos = true;
                               return g;
                             }()),
               Error);
  EXPECT_THROW(build_example(tok, {"p", "r"}, ExampleFormat{}), Error);  // eos_id -1
}

TEST(ExampleBuilder, TruncationPromptFirstFromTheStart) {
  const ByteTokenizer tok;
  // |p| = 6, |c| = 3 + EOS = 4, max 8: overflow 2 comes off the prompt's start.
  auto e = build_example(tok, {"abcdef", "xyz"}, format_with(8));
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->input_ids, concat(ByteTokenizer::ids("cdefxyz"), {0}));
  EXPECT_EQ(e->labels, concat(concat(ignored(4), ByteTokenizer::ids("xyz")), {0}));
  // Exactly max_length: untouched.
  e = build_example(tok, {"abcdef", "xyz"}, format_with(10));
  EXPECT_EQ(e->input_ids.size(), 10u);
  EXPECT_EQ(e->prompt_tokens, 6);
}

TEST(ExampleBuilder, TruncationRemainderFromTheCompletionEnd) {
  const ByteTokenizer tok;
  // max 3: the whole prompt (6) goes, then 1 more from the completion's end: the EOS (B6).
  auto e = build_example(tok, {"abcdef", "xyz"}, format_with(3));
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->prompt_tokens, 0);
  EXPECT_EQ(e->input_ids, ByteTokenizer::ids("xyz"));
  EXPECT_EQ(e->labels, ByteTokenizer::ids("xyz"));
  // truncate_from_end false: the completion loses its start instead.
  ExampleFormat f = format_with(3);
  f.truncate_from_end = false;
  e = build_example(tok, {"abcdef", "xyz"}, f);
  EXPECT_EQ(e->input_ids, concat(ByteTokenizer::ids("yz"), {0}));
  // truncate_prompt_only false: all the overflow comes off the completion, the prompt stays.
  f = format_with(8);
  f.truncate_prompt_only = false;
  e = build_example(tok, {"abcdef", "xyz"}, f);
  EXPECT_EQ(e->input_ids, ByteTokenizer::ids("abcdefxy"));
  EXPECT_EQ(e->prompt_tokens, 6);
}

TEST(ExampleBuilder, EmptyCompletionIsDropped) {
  const ByteTokenizer tok;
  ExampleFormat f = format_with(6);
  f.truncate_prompt_only = false;  // overflow 4 >= |c| = 4: nothing left
  EXPECT_FALSE(build_example(tok, {"abcdef", "xyz"}, f).has_value());
  f = format_with(0);
  f.append_eos = false;
  EXPECT_FALSE(build_example(tok, {"abc", ""}, f).has_value());
  EXPECT_TRUE(build_example(tok, {"abc", ""}, format_with(0)).has_value());  // just the EOS
}

TEST(Collate, RightPadsToMultiplesOfEight) {
  const ByteTokenizer tok;
  std::vector<TokenizedExample> batch;
  for (const char* response : {"a", "abcde", "abcdefghijklm"})
    batch.push_back(*build_example(tok, {"pp", response}, format_with(0)));
  // Lengths 4, 8, 16 -> 16.
  CollatedBatch c = collate_examples(batch, 8, 7);
  EXPECT_EQ(c.rows, 3);
  EXPECT_EQ(c.length, 16);
  for (int64_t r = 0; r < c.rows; ++r) {
    const TokenizedExample& e = batch[static_cast<size_t>(r)];
    for (int64_t t = 0; t < c.length; ++t) {
      const size_t i = static_cast<size_t>(r * c.length + t);
      const bool real = t < static_cast<int64_t>(e.input_ids.size());
      EXPECT_EQ(c.input_ids[i], real ? e.input_ids[static_cast<size_t>(t)] : 7);
      EXPECT_EQ(c.labels[i], real ? e.labels[static_cast<size_t>(t)] : kIgnoreLabel);
      EXPECT_EQ(c.attention_mask[i], real ? 1 : 0);
    }
  }
  batch.pop_back();  // longest 8 -> stays 8
  EXPECT_EQ(collate_examples(batch, 8, 0).length, 8);
  batch.pop_back();  // longest 4 -> 8
  EXPECT_EQ(collate_examples(batch, 8, 0).length, 8);
  EXPECT_EQ(collate_examples(batch, 1, 0).length, 4);
  EXPECT_THROW(collate_examples({}, 8, 0), Error);
  EXPECT_THROW(collate_examples(batch, 0, 0), Error);
}

TEST(ExampleBuilder, Gsm8kRowWithTheRealTokenizer) {
  if (!std::filesystem::exists(test::gguf_path()))
    GTEST_SKIP() << "\n*** SKIPPED: " << test::gguf_path()
                 << " is absent (run scripts/fetch-model.sh) ***";
  const BpeTokenizer tok(bpe_spec_from_gguf(GgufFile::open(test::gguf_path().string())),
                         test::gguf_path().string());
  const std::string prompt =
      "Below is a math problem. Solve it step by step and provide the final answer.\n\n"
      "### Question:\nNatalia sold clips to 48 of her friends in April, and then she sold half "
      "as many clips in May. How many clips did Natalia sell altogether in April and May?\n\n"
      "### Answer:";
  const std::string response =
      "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 "
      "clips altogether in April and May.\n#### 72";
  ExampleFormat f = format_with(1024);
  f.eos_id = tok.token_to_id("<|endoftext|>");  // the seed's EOS (id 0); see the configs
  ASSERT_EQ(f.eos_id, 0);
  const auto e = build_example(tok, {prompt, response}, f);
  ASSERT_TRUE(e.has_value());
  const Ids p = tok.encode(prompt), c = tok.encode(response);
  EXPECT_EQ(e->input_ids, concat(concat(p, c), {0}));
  EXPECT_EQ(e->prompt_tokens, static_cast<int64_t>(p.size()));
  const Ids completion(e->input_ids.begin() + e->prompt_tokens, e->input_ids.end());
  EXPECT_EQ(tok.decode(completion), response + "<|endoftext|>");
  EXPECT_EQ(tok.decode(Ids(e->input_ids.begin(), e->input_ids.begin() + e->prompt_tokens)), prompt);
  // max_length = |c| + EOS + 5: the prompt keeps its last 5 tokens, the completion is whole.
  f.max_length = static_cast<int64_t>(c.size()) + 1 + 5;
  const auto t = build_example(tok, {prompt, response}, f);
  EXPECT_EQ(t->prompt_tokens, 5);
  EXPECT_EQ(Ids(t->input_ids.begin(), t->input_ids.begin() + 5), Ids(p.end() - 5, p.end()));
}

}  // namespace
}  // namespace smol
