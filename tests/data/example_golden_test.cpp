// Rendered and tokenised training examples against goldens from the seed's Python rules
// (docs/seed-behaviour.md §2.2–2.6): tests/golden/data/make_example_goldens.py re-implements
// rendering, separate prompt / completion encoding, EOS, add_bos text, truncation (§2.5) and
// label masking in plain Python over HF `tokenizers` on the real SmolLM2 tokenizer, and writes
// tests/golden/data/examples.json. Here every case is rebuilt with our PromptFormat /
// ExampleFormat, rendered (data/prompt_render.h), tokenised (data/example_builder.h) and run
// through the engine's build_examples (engine/training_data.h), and the strings, ids, labels
// and dropped rows must equal the golden exactly — token ids are integers, so there is no
// tolerance. Needs models/SmolLM2-135M-Instruct.Q4_1.gguf (scripts/fetch-model.sh); the GSM8K
// cases also need <data root>/gsm8k/train.jsonl. Each skips loudly without them.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "data/bpe_tokenizer.h"
#include "data/example_builder.h"
#include "data/prompt_render.h"
#include "data_test_support.h"
#include "engine/training_data.h"
#include "io/gguf_reader.h"
#include "io/gguf_tokenizer.h"

namespace smol {
namespace {

using nlohmann::json;
using Ids = std::vector<int32_t>;

std::filesystem::path golden_path() {
  return test::source_dir() / "tests/golden/data/examples.json";
}

const json& golden() {
  static const json parsed = [] {
    std::ifstream in(golden_path(), std::ios::binary);
    if (!in) throw std::runtime_error("cannot open " + golden_path().string());
    std::ostringstream text;
    text << in.rdbuf();
    return json::parse(text.str());
  }();
  return parsed;
}

// The SmolLM2 tokenizer spec from the GGUF, as the other data tests load it (null when the
// model has not been fetched). Each user builds its own BpeTokenizer over it.
const BpeSpec* smollm_spec() {
  static const std::unique_ptr<BpeSpec> spec = []() -> std::unique_ptr<BpeSpec> {
    if (!std::filesystem::exists(test::gguf_path())) return nullptr;
    return std::make_unique<BpeSpec>(
        bpe_spec_from_gguf(GgufFile::open(test::gguf_path().string())));
  }();
  return spec.get();
}

#define SMOL_REQUIRE_GGUF()                                                                     \
  do {                                                                                          \
    if (smollm_spec() == nullptr)                                                               \
      GTEST_SKIP() << "\n*** SKIPPED: " << test::gguf_path()                                    \
                   << " is absent (run scripts/fetch-model.sh); example goldens unchecked ***"; \
  } while (0)

// FNV-1a 64 over bytes (make_example_goldens.py fnv1a64_hex), as 16 hex digits.
std::string fnv1a64_hex(const std::string& bytes) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char b : bytes) {
    h ^= b;
    h *= 0x100000001b3ull;
  }
  char out[17];
  std::snprintf(out, sizeof out, "%016llx", static_cast<unsigned long long>(h));
  return out;
}

// The JSONL lines of a row set: verbatim in the golden, or the first lines of a file under
// the shared data root pinned by fingerprint. nullopt (with `why`) when that file is absent.
std::optional<std::vector<std::string>> row_set_lines(const std::string& name, std::string* why) {
  const json& set = golden().at("row_sets").at(name);
  if (set.is_array()) return set.get<std::vector<std::string>>();
  const auto path = test::shared_data_dir() / set.at("file").get<std::string>();
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *why = path.string() + " not found";
    return std::nullopt;
  }
  std::vector<std::string> lines;
  std::string line, joined;
  const int64_t count = set.at("first_lines").get<int64_t>();
  while (static_cast<int64_t>(lines.size()) < count && std::getline(in, line)) {
    lines.push_back(line);
    joined += line + "\n";
  }
  EXPECT_EQ(static_cast<int64_t>(lines.size()), count) << path;
  EXPECT_EQ(fnv1a64_hex(joined), set.at("fnv1a64").get<std::string>())
      << path << ": its first " << count << " lines are not the rows the goldens were made from";
  return lines;
}

PromptFormat prompt_format_of(const json& j) {
  PromptFormat f;
  f.input_fields = j.at("input_fields").get<std::vector<std::string>>();
  f.target_field = j.at("target_field").get<std::string>();
  if (!j.at("prompt_template").is_null())
    f.prompt_template = j.at("prompt_template").get<std::string>();
  f.response_template = j.at("response_template").get<std::string>();
  f.strip_prompt = j.at("strip_prompt").get<bool>();
  return f;
}

ExampleFormat example_format_of(const json& j, int32_t eos_id) {
  ExampleFormat f;
  f.max_length = j.at("max_length").get<int64_t>();
  f.append_eos = j.at("append_eos").get<bool>();
  f.add_bos = j.at("add_bos").get<bool>();
  f.assistant_prefix = j.at("assistant_prefix").get<std::string>();
  f.completion_prefix = j.at("completion_prefix").get<std::string>();
  f.completion_suffix = j.at("completion_suffix").get<std::string>();
  f.truncate_prompt_only = j.at("truncate_prompt_only").get<bool>();
  f.truncate_from_end = j.at("truncate_from_end").get<bool>();
  f.eos_id = eos_id;
  return f;
}

const json& case_named(const std::string& name) {
  for (const json& c : golden().at("cases"))
    if (c.at("name") == name) return c;
  throw std::runtime_error("examples.json has no case '" + name + "'");
}

// "first difference at i: want W got G" — where two id sequences part, for failure messages.
std::string first_difference(const Ids& want, const Ids& got) {
  size_t i = 0;
  while (i < want.size() && i < got.size() && want[i] == got[i]) ++i;
  std::ostringstream s;
  s << "sizes want " << want.size() << " got " << got.size() << "; first difference at " << i;
  if (i < want.size()) s << ": want " << want[i];
  if (i < got.size()) s << " got " << got[i];
  return s.str();
}

// Rebuilds one golden case and compares every row: rendering, drop decision, ids, labels,
// prompt length; then the engine's build_examples over the same dataset.
void check_case(const std::string& name) {
  const json& golden_case = case_named(name);
  std::string why;
  const auto lines = row_set_lines(golden_case.at("rows").get<std::string>(), &why);
  if (!lines) GTEST_SKIP() << "\n*** SKIPPED: " << why << "; case " << name << " unchecked ***";
  const int64_t row_count = golden_case.at("row_count").get<int64_t>();
  ASSERT_LE(row_count, static_cast<int64_t>(lines->size()));
  std::string jsonl;
  for (int64_t i = 0; i < row_count; ++i) jsonl += (*lines)[static_cast<size_t>(i)] + "\n";
  const Dataset dataset =
      read_jsonl_dataset(test::write_file(test::temp_dir("golden_" + name) / "rows.jsonl", jsonl));
  ASSERT_EQ(dataset.size(), row_count);

  auto tokenizer = std::make_unique<BpeTokenizer>(*smollm_spec(), test::gguf_path().string());
  const json& tokens = golden().at("tokenizer");
  const int32_t eos_id = tokenizer->token_to_id(tokens.at("eos_token").get<std::string>());
  ASSERT_EQ(eos_id, tokens.at("eos_id").get<int32_t>());
  ASSERT_EQ(tokenizer->bos_id(), tokens.at("bos_id").get<int32_t>());
  ASSERT_EQ(tokenizer->id_to_token(tokenizer->bos_id()), tokens.at("bos_token").get<std::string>());

  const PromptFormat prompt = prompt_format_of(golden_case.at("prompt_format"));
  const ExampleFormat format = example_format_of(golden_case.at("example_format"), eos_id);
  const ResolvedFields fields = resolve_fields(dataset, prompt);
  EXPECT_EQ(fields.inputs,
            golden_case.at("resolved_fields").at("inputs").get<std::vector<std::string>>());
  EXPECT_EQ(fields.target, golden_case.at("resolved_fields").at("target").get<std::string>());

  // Cases sharing a row set and prompt format store the rendered strings once.
  const json& rendering_case = golden_case.contains("rendering_of")
                                   ? case_named(golden_case.at("rendering_of").get<std::string>())
                                   : golden_case;
  const json& examples = golden_case.at("examples");
  ASSERT_EQ(static_cast<int64_t>(examples.size()), row_count) << "one entry per row";

  std::vector<TokenizedExample> kept;  // the golden's examples, in row order
  for (int64_t row = 0; row < row_count; ++row) {
    const json& want = examples.at(static_cast<size_t>(row));
    ASSERT_EQ(want.at("row").get<int64_t>(), row);
    SCOPED_TRACE("case " + name + ", row " + std::to_string(row));
    const std::string dropped = want.value("dropped", "");
    const auto rendered = render_example(dataset, row, fields, prompt);
    if (dropped == "null_target") {
      EXPECT_FALSE(rendered.has_value()) << "a null target drops the row";
      continue;
    }
    ASSERT_TRUE(rendered.has_value()) << "row dropped, the golden keeps it";
    const json& strings = rendering_case.at("examples").at(static_cast<size_t>(row));
    EXPECT_EQ(rendered->prompt, strings.at("prompt").get<std::string>());
    EXPECT_EQ(rendered->response, strings.at("response").get<std::string>());

    const auto built = build_example(*tokenizer, *rendered, format);
    if (dropped == "empty_completion") {
      EXPECT_FALSE(built.has_value()) << "an empty completion drops the example";
      continue;
    }
    ASSERT_EQ(dropped, "") << "unknown drop reason in the golden";
    ASSERT_TRUE(built.has_value()) << "example dropped, the golden keeps it";
    const Ids want_ids = want.at("input_ids").get<Ids>();
    const Ids want_labels = want.at("labels").get<Ids>();
    EXPECT_EQ(built->input_ids, want_ids) << first_difference(want_ids, built->input_ids);
    EXPECT_EQ(built->labels, want_labels) << first_difference(want_labels, built->labels);
    EXPECT_EQ(built->prompt_tokens, want.at("prompt_tokens").get<int64_t>());
    kept.push_back({want_ids, want_labels, want.at("prompt_tokens").get<int64_t>()});
  }

  // The path training takes: rows in order, dropped ones skipped, nothing else different.
  TextPipeline pipeline;
  pipeline.tokenizer = std::move(tokenizer);
  pipeline.prompt = prompt;
  pipeline.example = format;
  pipeline.model_vocab = pipeline.tokenizer->vocab_size();
  const std::vector<TokenizedExample> engine = build_examples(pipeline, dataset);
  ASSERT_EQ(engine.size(), kept.size());
  for (size_t i = 0; i < kept.size(); ++i) {
    EXPECT_EQ(engine[i].input_ids, kept[i].input_ids) << "build_examples example " << i;
    EXPECT_EQ(engine[i].labels, kept[i].labels) << "build_examples example " << i;
  }
}

const std::set<std::string>& checked_cases() {
  static const std::set<std::string> names = {"gsm8k_max1024",
                                              "gsm8k_max96",
                                              "gsm8k_completion_only_max128",
                                              "gsm8k_from_start_max96",
                                              "gsm8k_completion_only_from_start_max128",
                                              "metamath_template",
                                              "pairs_bos_prefixes",
                                              "template_no_strip_eos_kept",
                                              "no_eos",
                                              "python_float_text"};
  return names;
}

TEST(ExampleGolden, EveryGoldenCaseIsChecked) {
  std::set<std::string> in_file;
  for (const json& c : golden().at("cases")) in_file.insert(c.at("name").get<std::string>());
  EXPECT_EQ(in_file, checked_cases()) << "a case was added to or removed from " << golden_path();
}

// configs/smol/135m_gsm8k.yaml on the first 64 GSM8K train rows, max_length 1024: no
// truncation; B5 (no separator) and the supervised EOS.
TEST(ExampleGolden, Gsm8kMax1024) {
  SMOL_REQUIRE_GGUF();
  check_case("gsm8k_max1024");
}

// The same rows at max_length 96: §2.5 prompt-first truncation from its start, the remainder
// off the completion's end (EOS and answer lost, B6).
TEST(ExampleGolden, Gsm8kMax96) {
  SMOL_REQUIRE_GGUF();
  check_case("gsm8k_max96");
}

TEST(ExampleGolden, Gsm8kTruncateCompletionOnly) {
  SMOL_REQUIRE_GGUF();
  check_case("gsm8k_completion_only_max128");
}

TEST(ExampleGolden, Gsm8kTruncateFromStart) {
  SMOL_REQUIRE_GGUF();
  check_case("gsm8k_from_start_max96");
}

TEST(ExampleGolden, Gsm8kTruncateCompletionOnlyFromStart) {
  SMOL_REQUIRE_GGUF();
  check_case("gsm8k_completion_only_from_start_max128");
}

// configs/smol/135m_metamath.yaml's template with inferred fields: {response} renders "" (B4).
TEST(ExampleGolden, MetaMathTemplate) {
  SMOL_REQUIRE_GGUF();
  check_case("metamath_template");
}

// No template ("field: value" pairs), add_bos_token, assistant / completion prefixes and
// suffix, a null target, braces and special-token text in values, a truncated BOS.
TEST(ExampleGolden, PairsWithBosAndPrefixes) {
  SMOL_REQUIRE_GGUF();
  check_case("pairs_bos_prefixes");
}

TEST(ExampleGolden, TemplateWithoutStripAndEosAlreadyLast) {
  SMOL_REQUIRE_GGUF();
  check_case("template_no_strip_eos_kept");
}

TEST(ExampleGolden, NoEosDropsEmptyCompletions) {
  SMOL_REQUIRE_GGUF();
  check_case("no_eos");
}

// str() of JSON floats (docs/seed-behaviour.md §2.3: Python's str() text): repr's shortest
// round trip, fixed notation for decimal exponents -4..15 ("1000000000000000.0"), exponent
// notation outside ("1e+16", "1e-05").
TEST(ExampleGolden, PythonFloatText) {
  SMOL_REQUIRE_GGUF();
  check_case("python_float_text");
}

}  // namespace
}  // namespace smol
