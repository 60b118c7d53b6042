// A tiny random model's loss falls on real GSM8K text: the first rows of
// ../shared/data/gsm8k/train.jsonl rendered with the seed's GSM8K prompt template
// (docs/seed-behaviour.md §1 table, §2: prompt and completion encoded separately, both stripped,
// EOS appended and supervised, labels −100 on the prompt), tokenized by the real SmolLM2 tokenizer
// (from the GGUF), then 30 optimizer steps (4 rows each) of full fine-tuning with gradient
// accumulation, AdamW, clipping and a warmup schedule. To keep the test fast the token ids that
// occur are renumbered densely (EOS stays 0), so the model's vocabulary is a few hundred, not
// 49152.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "data/bpe_tokenizer.h"
#include "engine/lr_schedule.h"
#include "engine/optimizer.h"
#include "engine/train_step.h"
#include "io/gguf_reader.h"
#include "io/gguf_tokenizer.h"
#include "kernels/cpu/cpu_backend.h"
#include "training_fixtures.h"

namespace smol {
namespace {

std::string strip(const std::string& s) {
  const size_t begin = s.find_first_not_of(" \t\n\r\f\v");
  if (begin == std::string::npos) return "";
  const size_t end = s.find_last_not_of(" \t\n\r\f\v");
  return s.substr(begin, end - begin + 1);
}

// docs/seed-behaviour.md §2.3-2.6 for the 135m_gsm8k config.
TokenRow render_gsm8k(const Tokenizer& tokenizer, const std::string& question,
                      const std::string& answer) {
  const std::string prompt = strip(
      "Below is a math problem. Solve it step by step and provide the final answer.\n\n"
      "### Question:\n" +
      question + "\n\n### Answer:\n");
  const std::string completion = strip(answer + "\n");  // response_template "{target}\n"
  const std::vector<int32_t> p = tokenizer.encode(prompt, /*parse_special=*/false);
  std::vector<int32_t> c = tokenizer.encode(completion, /*parse_special=*/false);
  // The seed trains the base SmolLM2, whose EOS is <|endoftext|> (id 0); the Instruct GGUF
  // says eos = <|im_end|>, so the seed's token is named explicitly.
  const int32_t eos = tokenizer.token_to_id("<|endoftext|>");
  if (c.empty() || c.back() != eos) c.push_back(eos);
  TokenRow row;
  row.input_ids = p;
  row.input_ids.insert(row.input_ids.end(), c.begin(), c.end());
  row.labels.assign(p.size(), -100);
  row.labels.insert(row.labels.end(), c.begin(), c.end());
  return row;
}

TEST(Gsm8kTraining, TinyModelLossFallsOnRenderedGsm8k) {
  const std::string gguf_path =
      std::string(SMOL_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
  const std::string data_path = std::string(SMOL_SOURCE_DIR) + "/../shared/data/gsm8k/train.jsonl";
  if (!std::filesystem::exists(gguf_path))
    GTEST_SKIP() << "\n*** SKIPPED: " << gguf_path
                 << " is absent (its tokenizer renders GSM8K); run scripts/fetch-model.sh ***";
  if (!std::filesystem::exists(data_path))
    GTEST_SKIP() << "\n*** SKIPPED: GSM8K not found at " << data_path << " ***";

  const BpeTokenizer tokenizer(bpe_spec_from_gguf(GgufFile::open(gguf_path)), gguf_path);
  ASSERT_EQ(tokenizer.token_to_id("<|endoftext|>"),
            0);  // docs/seed-behaviour.md: bos = eos = pad = 0

  constexpr int kRows = 16;
  std::ifstream in(data_path);
  std::vector<TokenRow> rows;
  std::string line;
  while (static_cast<int>(rows.size()) < kRows && std::getline(in, line)) {
    const nlohmann::json j = nlohmann::json::parse(line);
    rows.push_back(render_gsm8k(tokenizer, j.at("question"), j.at("answer")));
  }
  ASSERT_EQ(static_cast<int>(rows.size()), kRows);
  // The first row's completion starts right after "### Answer:" with no separator (B5) and
  // ends with a supervised EOS.
  EXPECT_EQ(rows[0].labels.back(), 0);
  EXPECT_EQ(rows[0].labels.front(), -100);

  // Dense renumbering of the ids that occur (0 = EOS/pad keeps its id).
  std::map<int32_t, int32_t> dense = {{0, 0}};
  for (const TokenRow& r : rows)
    for (int32_t id : r.input_ids) dense.emplace(id, 0);
  int32_t next = 0;
  for (auto& [id, index] : dense) index = next++;
  for (TokenRow& r : rows) {
    for (int32_t& id : r.input_ids) id = dense.at(id);
    for (int32_t& label : r.labels)
      if (label != -100) label = dense.at(label);
  }

  LlamaConfig config;
  config.hidden_size = 64;
  config.intermediate_size = 128;
  config.num_hidden_layers = 2;
  config.num_attention_heads = 4;
  config.num_key_value_heads = 2;
  config.head_dim = 16;
  config.vocab_size = next;
  config.rope_theta = 100000;
  config.max_position_embeddings = 1024;
  std::unique_ptr<Backend> backend = make_cpu_backend();
  LlamaModel model(*backend, config, TrainMode::Full);
  model.init_random(42, 0.02f);

  AdamWSettings settings;
  settings.weight_decay = 0.01;
  settings.max_grad_norm = 1.0;
  AdamW optimizer(*backend, model.trainable_params(), settings);
  constexpr int kSteps = 30;
  const LrSchedule schedule(LrScheduleKind::Cosine, 5e-3, kSteps,
                            resolve_warmup_steps(kSteps, 0.06, 0));
  double first = 0, last = 0;
  for (int step = 0; step < kSteps; ++step) {
    // 4 rows per step as 2 micro-batches of 2 (gradient accumulation), cycling the rows.
    std::vector<std::vector<TokenRow>> micro_batches;
    for (int m = 0; m < 2; ++m) {
      std::vector<TokenRow> batch;
      for (int i = 0; i < 2; ++i) batch.push_back(rows[(step * 4 + m * 2 + i) % kRows]);
      micro_batches.push_back(test::padded(batch));
    }
    const TrainStepResult r = train_step(model, optimizer, schedule, micro_batches, step);
    ASSERT_TRUE(std::isfinite(r.loss));
    if (step < 3) first += r.loss / 3;  // mean of the first three (one full pass of the rows)
    if (step >= kSteps - 4) last += r.loss / 4;  // and over the last
  }
  std::printf("[gsm8k] vocab %d, loss %.3f -> %.3f (ratio %.3f)\n", next, first, last,
              last / first);
  EXPECT_LT(last, 0.7 * first);
}

}  // namespace
}  // namespace smol
