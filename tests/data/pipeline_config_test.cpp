// The dataset/tokenizer config sections (strict), the repo's configs, the text pipeline of a
// config (split, render, tokenise, collate) and the lora_ga gradient pass it feeds:
// `smolengine dump-step` with lora_ga on a tiny random model over the first GSM8K rows must
// equal the initialiser called directly on rows built by hand from the same lines (seed
// template, stripped halves, EOS supervised, prompt masked — not the seed's B16 collator).
#include <gtest/gtest.h>

#include "tests/support/run_smolengine.h"

#include <array>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "data/bpe_tokenizer.h"
#include "data/tokenizer_json.h"
#include "data_test_support.h"
#include "engine/config/run_config.h"
#include "engine/model_setup.h"
#include "engine/training_data.h"
#include "io/safetensors_io.h"
#include "kernels/cpu/cpu_backend.h"
#include "model/lora_init.h"

namespace smol {
namespace {

namespace fs = std::filesystem;

const char* const kGsm8kTemplate =
    "Below is a math problem. Solve it step by step and provide the final answer.\n\n"
    "### Question:\n{question}\n\n### Answer:\n";

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

TEST(PipelineConfig, RepositoryConfigsLoadStrictly) {
  const RunConfig gsm8k =
      load_run_config((test::source_dir() / "configs/smol/135m_gsm8k.yaml").string());
  EXPECT_EQ(gsm8k.dataset.name, "gsm8k");
  EXPECT_EQ(gsm8k.dataset.eval_split, "test");
  EXPECT_EQ(gsm8k.dataset.max_length, 1024);
  EXPECT_EQ(gsm8k.dataset.prompt.input_fields, std::vector<std::string>{"question"});
  EXPECT_EQ(gsm8k.dataset.prompt.target_field, "answer");
  EXPECT_EQ(gsm8k.dataset.prompt.prompt_template, kGsm8kTemplate);
  EXPECT_EQ(gsm8k.dataset.prompt.response_template, "{target}\n");
  EXPECT_EQ(gsm8k.tokenizer.eos_token, "<|endoftext|>");
  EXPECT_EQ(gsm8k.training.gradient_accumulation_steps, 8);
  EXPECT_EQ(gsm8k.peft.lora.r, 8);

  const RunConfig metamath =
      load_run_config((test::source_dir() / "configs/smol/135m_metamath.yaml").string());
  EXPECT_EQ(metamath.dataset.name, "meta-math/MetaMathQA");
  EXPECT_EQ(metamath.dataset.train_split, "train[:10000]");
  EXPECT_EQ(metamath.dataset.eval_split, "train[10000:12000]");
  EXPECT_EQ(metamath.dataset.max_length, 512);
  EXPECT_TRUE(metamath.dataset.prompt.input_fields.empty());  // inferred: query / response
  EXPECT_EQ(metamath.peft.init.kind, LoraInitKind::Pissa);

  const RunConfig tiny = load_run_config((test::source_dir() / "configs/tiny_gsm8k.yaml").string());
  EXPECT_TRUE(tiny.model.random_init);
  EXPECT_EQ(tiny.model.architecture.vocab_size, 49152);
  EXPECT_EQ(tiny.training.max_steps, 20);
  // lora_ga on the demo is one --set away.
  EXPECT_EQ(load_run_config((test::source_dir() / "configs/tiny_gsm8k.yaml").string(),
                            {"peft.init_lora_weights=lora_ga"})
                .peft.init.kind,
            LoraInitKind::LoraGa);
}

TEST(PipelineConfig, DatasetAndTokenizerSectionsAreStrict) {
  const auto dir = test::temp_dir("strict");
  auto parse = [&](const std::string& yaml) {
    // task_name (required) goes last so that the line numbers above stay put.
    const std::string path = test::write_file(dir / "c.yaml", yaml + "task_name: t\n");
    return load_run_config(path);
  };
  const std::string base = "model:\n  name_or_path: x.gguf\n";
  std::string message =
      error_of([&] { parse(base + "dataset:\n  name: gsm8k\n  max_lenght: 5\n"); });
  EXPECT_NE(message.find("c.yaml:5: unknown key 'dataset.max_lenght'"), std::string::npos)
      << message;
  message = error_of([&] { parse(base + "dataset:\n  strip_prompt: maybe\n"); });
  EXPECT_NE(message.find("'dataset.strip_prompt' must be true or false"), std::string::npos)
      << message;
  message = error_of([&] { parse(base + "dataset:\n  max_length: -3\n"); });
  EXPECT_NE(message.find("dataset.max_length must be positive"), std::string::npos) << message;
  message = error_of([&] { parse(base + "tokenizer:\n  padding_side: middle\n"); });
  EXPECT_NE(message.find("tokenizer.padding_side"), std::string::npos) << message;
  message = error_of([&] { parse(base + "tokenizer:\n  eos: x\n"); });
  EXPECT_NE(message.find("unknown key 'tokenizer.eos'"), std::string::npos) << message;
  // Numeric strings are numbers (yaml.safe_load gives the seed strings); data_files forms.
  const RunConfig c = parse(base +
                            "dataset:\n  max_length: \"256\"\n  data_files: {train: a.jsonl, "
                            "test: b.json}\n  input_fields: question\n");
  EXPECT_EQ(c.dataset.max_length, 256);
  EXPECT_EQ(c.dataset.data_files.at("test"), "b.json");
  EXPECT_EQ(c.dataset.prompt.input_fields, std::vector<std::string>{"question"});
  EXPECT_FALSE(c.dataset.prompt.prompt_template.has_value());
}

// ---- special ids: one resolution for the pipeline, the collator and the model -----------------

TEST(PipelineConfig, SpecialIdsResolveInOnePlace) {
  RunConfig config;
  config.path = "c.yaml";
  // The tokenizer's pad, else its EOS, else 0 (docs/seed-behaviour.md: pad := eos,
  // docs/seed-behaviour.md §2.7).
  const test::ByteTokenizer with_pad(true, true, true), plain(true, true, false),
      bare(true, false, false);
  EXPECT_EQ(resolve_special_ids(config, &with_pad, nullptr).pad_id, 2);
  const SpecialIds eos_only = resolve_special_ids(config, &plain, nullptr);
  EXPECT_EQ(eos_only.eos_id, 0);
  EXPECT_EQ(eos_only.pad_id, 0);  // eos id is 0 here
  const SpecialIds neither = resolve_special_ids(config, &bare, nullptr);
  EXPECT_EQ(neither.eos_id, -1);
  EXPECT_EQ(neither.pad_id, 0);
  // The config's token texts win, looked up in the tokenizer ("<pad>" is id 2, "<bos>" id 1).
  config.tokenizer.eos_token = "<pad>";
  EXPECT_EQ(resolve_special_ids(config, &plain, nullptr).eos_id, 2);
  EXPECT_EQ(resolve_special_ids(config, &plain, nullptr).pad_id, 2);  // pad := that EOS
  config.tokenizer.pad_token = "<bos>";
  EXPECT_EQ(resolve_special_ids(config, &plain, nullptr).pad_id, 1);
  config.tokenizer.pad_token = "<nope>";
  EXPECT_NE(error_of([&] {
              resolve_special_ids(config, &plain, nullptr);
            }).find("tokenizer.pad_token \"<nope>\" is not a token"),
            std::string::npos);
  // No tokenizer (dump-step on a bare model directory): the model's ids decide.
  LlamaConfig model;
  model.eos_token_id = 5;
  EXPECT_EQ(resolve_special_ids(config, nullptr, &model).pad_id, 5);
  model.pad_token_id = 7;
  EXPECT_EQ(resolve_special_ids(config, nullptr, &model).pad_id, 7);
  EXPECT_EQ(resolve_special_ids(config, nullptr, &model).eos_id, 5);
  EXPECT_EQ(resolve_special_ids(config, nullptr, nullptr).pad_id, 0);
}

// ---- the gradient pass fed by the pipeline --------------------------------------------------

// With the tiny tokenizer the first six rows are 254, 207, 340, 366, 236 and 443 tokens long:
// max_length 200 truncates prompts only (rows 0, 2, 3, 4) and, for row 5, the whole prompt
// and the completion's end, EOS included (B6).
constexpr int64_t kSamples = 6, kBatch = 4, kMaxLength = 200;

fs::path tiny_tokenizer() {
  return test::source_dir() / "tests/golden/tokenizer/tiny/tokenizer.json";
}

// A tiny random Llama whose vocabulary is the tiny test tokenizer's (401 ids), LoRA-GA on q, v.
std::string write_lora_ga_config(const fs::path& dir) {
  std::ostringstream yaml;
  yaml << "task_name: gsm8k\ntask_type: CAUSAL_LM\n"
       << "model:\n  init: random\n  seed: 7\n  architecture:\n"
       << "    hidden_size: 32\n    intermediate_size: 64\n    num_hidden_layers: 2\n"
       << "    num_attention_heads: 4\n    num_key_value_heads: 2\n    head_dim: 8\n"
       << "    vocab_size: 401\n    max_position_embeddings: 256\n    rope_theta: 100000\n"
       << "tokenizer:\n  name_or_path: " << tiny_tokenizer().string()
       << "\n  eos_token: \"<|endoftext|>\"\n"
       << "peft:\n  lora_r: 2\n  lora_alpha: 4\n  lora_dropout: 0\n"
       << "  target_modules: [q_proj, v_proj]\n  init_lora_weights: lora_ga\n"
       << "loraga:\n  batch_size: " << kBatch << "\n  num_samples: " << kSamples << "\n"
       << "dataset:\n  name: gsm8k\n  subset: main\n  max_length: " << kMaxLength << "\n"
       << "  input_fields: [question]\n  target_field: answer\n"
       << "  prompt_template: " << nlohmann::json(kGsm8kTemplate).dump() << "\n"
       << "  response_template: \"{target}\\n\"\n"
       << "training:\n  seed: 42\n  pad_to_multiple_of: 8\n";
  return test::write_file(dir / "lora_ga.yaml", yaml.str());
}

std::string strip_ascii(const std::string& s) {
  const size_t begin = s.find_first_not_of(" \t\n\r\f\v");
  if (begin == std::string::npos) return "";
  return s.substr(begin, s.find_last_not_of(" \t\n\r\f\v") - begin + 1);
}

// The first kSamples GSM8K rows built by hand (docs/seed-behaviour.md §2.3–2.7), batches of kBatch.
std::vector<std::vector<TokenRow>> hand_built_batches(const Tokenizer& tokenizer) {
  std::ifstream in(test::gsm8k_train());
  std::vector<TokenRow> rows;
  std::string line;
  while (static_cast<int64_t>(rows.size()) < kSamples && std::getline(in, line)) {
    const nlohmann::json j = nlohmann::json::parse(line);
    std::string prompt = kGsm8kTemplate;
    prompt.replace(prompt.find("{question}"), 10, j.at("question").get<std::string>());
    std::vector<int32_t> p = tokenizer.encode(strip_ascii(prompt));
    std::vector<int32_t> c =
        tokenizer.encode(strip_ascii(j.at("answer").get<std::string>() + "\n"));
    c.push_back(0);  // <|endoftext|>
    int64_t overflow = static_cast<int64_t>(p.size() + c.size()) - kMaxLength;
    if (overflow > 0) {  // §2.5: prompt start first, the rest from the completion's end
      const int64_t from_prompt = std::min<int64_t>(overflow, static_cast<int64_t>(p.size()));
      p.erase(p.begin(), p.begin() + from_prompt);
      c.resize(c.size() - static_cast<size_t>(overflow - from_prompt));
    }
    TokenRow row;
    row.input_ids = p;
    row.input_ids.insert(row.input_ids.end(), c.begin(), c.end());
    row.labels.assign(p.size(), -100);
    row.labels.insert(row.labels.end(), c.begin(), c.end());
    rows.push_back(row);
  }
  std::vector<std::vector<TokenRow>> batches;
  for (size_t b = 0; b < rows.size(); b += kBatch)
    batches.push_back(pad_rows({rows.begin() + b, rows.begin() + std::min(rows.size(), b + kBatch)},
                               8, /*pad_id=*/0));
  return batches;
}

bool gsm8k_present() {
  return fs::exists(test::gsm8k_train());
}

TEST(PipelineGradientPass, BatchesFromTheConfig) {
  if (!gsm8k_present())
    GTEST_SKIP() << "\n*** SKIPPED: GSM8K not found at " << test::gsm8k_train() << " ***";
  RunConfig config = load_run_config(write_lora_ga_config(test::temp_dir("batches")));
  config.data_dir = test::shared_data_dir().string();
  const auto batches = gradient_pass_batches(config, 401, 256);
  const BpeTokenizer tokenizer(read_tokenizer_json(tiny_tokenizer().string()),
                               tiny_tokenizer().string());
  const auto expected = hand_built_batches(tokenizer);
  ASSERT_EQ(batches.size(), 2u);  // 6 samples in batches of 4: 4 + 2, no shuffle
  ASSERT_EQ(batches[0].size(), 4u);
  ASSERT_EQ(batches[1].size(), 2u);
  for (size_t b = 0; b < batches.size(); ++b)
    for (size_t r = 0; r < batches[b].size(); ++r) {
      EXPECT_EQ(batches[b][r].input_ids, expected[b][r].input_ids) << b << "/" << r;
      EXPECT_EQ(batches[b][r].labels, expected[b][r].labels) << b << "/" << r;
      EXPECT_EQ(batches[b][r].input_ids.size() % 8, 0u);
    }
  EXPECT_EQ(batches[0][0].input_ids.size(), 200u);
  // Row 5 lost its whole prompt and its completion's end, EOS included (B6).
  EXPECT_NE(batches[1][1].labels.front(), -100);
  ASSERT_EQ(batches[1][1].labels.size(), 200u);
  EXPECT_NE(batches[1][1].labels.back(), 0);
  EXPECT_EQ(batches[0][0].labels.front(), -100);  // the prompt is not supervised (B16)
  // A row's last supervised label is the EOS (0).
  const auto& labels = batches[0][0].labels;
  const auto last =
      std::find_if(labels.rbegin(), labels.rend(), [](int32_t l) { return l != -100; });
  ASSERT_NE(last, labels.rend());
  EXPECT_EQ(*last, 0);
}

TEST(PipelineGradientPass, DumpStepLoraGaEqualsTheInitialiserOnHandBuiltRows) {
  if (!gsm8k_present())
    GTEST_SKIP() << "\n*** SKIPPED: GSM8K not found at " << test::gsm8k_train() << " ***";
  const fs::path dir = test::temp_dir("dump_step_lora_ga");
  const std::string config_path = write_lora_ga_config(dir);
  const std::string batch = test::write_file(
      dir / "batch.jsonl", "{\"input_ids\": [5, 6, 7, 8], \"labels\": [-100, 6, 7, 8]}\n");
  const std::string out = (dir / "out.safetensors").string();
  const test::CommandResult r = test::run_smolengine(
      "dump-step " + config_path + " --batch " + batch + " --out " + out +
      " --all-params --device cpu --data-dir " + test::shared_data_dir().string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const SafetensorsFile dumped = SafetensorsFile::open(out);
  EXPECT_EQ(dumped.metadata().at("smolengine.lora_init"), "lora_ga");
  EXPECT_EQ(dumped.metadata().at("smolengine.residualised"), "true");

  // The same initialiser, called directly on rows built by hand.
  const RunConfig config = load_run_config(config_path);
  const BpeTokenizer tokenizer(read_tokenizer_json(tiny_tokenizer().string()),
                               tiny_tokenizer().string());
  const auto batches = hand_built_batches(tokenizer);
  std::unique_ptr<Backend> backend = make_cpu_backend();
  BuiltModel direct = build_model(*backend, config, &batches);
  // Both processes run the same fp32 code on the same rows; only OpenMP's split of a sum could
  // differ, so agreement is expected to the last bits: 1e-6 of each tensor's scale.
  double worst = 0;
  size_t compared = 0;
  for (const std::string& name : direct.model->tensor_names()) {
    if (name.find("q_proj") == std::string::npos && name.find("v_proj") == std::string::npos)
      continue;
    ASSERT_NE(dumped.find("param." + name), nullptr) << name;
    const HostTensor mine = direct.model->read_tensor(name);
    const double error = [&] {
      const auto& theirs = dumped.read_f32("param." + name).data;
      double diff = 0, scale = 0;
      for (size_t i = 0; i < mine.data.size(); ++i) {
        diff = std::max(diff, std::fabs(double(mine.data[i]) - theirs.at(i)));
        scale = std::max(scale, std::fabs(double(mine.data[i])));
      }
      return scale > 0 ? diff / scale : diff;
    }();
    EXPECT_LE(error, 1e-6) << name;
    worst = std::max(worst, error);
    ++compared;
  }
  EXPECT_EQ(compared, 2u * 2u * 3u);  // 2 layers x (q, v) x (W residual, lora_A, lora_B)
  std::printf("[dump-step lora_ga vs direct] %zu tensors, worst max-norm rel %.3g\n", compared,
              worst);

  // The rows matter: the first batch alone gives a different initialisation.
  const std::vector<std::vector<TokenRow>> first_only = {batches[0]};
  BuiltModel other = build_model(*backend, config, &first_only);
  const std::string a = "model.layers.0.self_attn.q_proj.lora_A.weight";
  EXPECT_NE(other.model->read_tensor(a).data, direct.model->read_tensor(a).data);
}

}  // namespace
}  // namespace smol
