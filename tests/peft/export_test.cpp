// `smolengine export` end to end (engine/cli/cmd_export.cpp, io/hf_export.h): the merged weights of
// PEFT's adapter equal PEFT's merge_and_unload(), config.json reads back through io/hf_config,
// the tokenizer.json written from the real GGUF tokenises GSM8K like our tokenizer (and like
// HF `tokenizers`, via the committed hashes), and the refusals (non-empty --out, bad input).
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/error.h"
#include "data/bpe_tokenizer.h"
#include "data/tokenizer_json.h"
#include "io/gguf_reader.h"
#include "io/gguf_tokenizer.h"
#include "io/hf_config.h"
#include "io/hf_export.h"
#include "peft_test_util.h"
#include "tests/support/run_smolengine.h"

namespace smol::test {
namespace {

namespace fs = std::filesystem;

// The path in single quotes, for the shell (appended piecewise: GCC 12 warns falsely,
// -Wrestrict, about "'" + string + "'").
std::string shell_arg(const fs::path& p) {
  std::string arg = "'";
  arg += p.string();
  arg += "'";
  return arg;
}

TEST(Export, MergedAdapterEqualsPeftMergeAndLoadsBack) {
  const fs::path out = scratch_dir("export_lora") / "hf";
  const CommandResult r =
      run_smolengine("export " + shell_arg(peft_golden("lora_adapter")) + " --base " +
                     shell_arg(tiny_base_dir()) + " --out " + shell_arg(out));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::printf("[peft] exported to %s (check with make_peft_fixtures.py --check-export)\n",
              out.c_str());
  EXPECT_TRUE(fs::is_regular_file(out / "model.safetensors"));
  EXPECT_TRUE(fs::is_regular_file(out / "config.json"));
  EXPECT_FALSE(fs::exists(out / "tokenizer.json")) << "the tiny base has no tokenizer";
  for (const auto& entry : fs::directory_iterator(out.parent_path()))
    EXPECT_EQ(entry.path().filename(), "hf") << "left behind: " << entry.path();

  const SafetensorsFile file = SafetensorsFile::open((out / "model.safetensors").string());
  EXPECT_EQ(file.find("lm_head.weight"), nullptr) << "tied embeddings: no lm_head.weight";
  EXPECT_EQ(file.entry("model.embed_tokens.weight").dtype, "F32");
  const LoadedModel exported = load_model(out.string());  // config.json + model.safetensors
  const LoadedModel base = load_model(tiny_base_dir());
  EXPECT_EQ(exported.weights.size(), base.weights.size());
  const SafetensorsFile expected = SafetensorsFile::open(peft_golden("lora_expected.safetensors"));
  for (const auto& [name, t] : base.weights) {
    if (const SafetensorsEntry* merged = expected.find("merged." + name))
      // Tolerance derived in peft_conversion_test.cpp (LoraMerge): a few fp32 roundings.
      EXPECT_LE(max_abs_diff(exported.weights.at(name).data, expected.read_f32(merged->name).data),
                1e-6)
          << name;
    else
      EXPECT_EQ(exported.weights.at(name).data, t.data) << name;
  }
  // config.json round-trips through io/hf_config to the base's architecture.
  const LlamaConfig& c = exported.config;
  const LlamaConfig& b = base.config;
  EXPECT_EQ(c.hidden_size, b.hidden_size);
  EXPECT_EQ(c.intermediate_size, b.intermediate_size);
  EXPECT_EQ(c.num_hidden_layers, b.num_hidden_layers);
  EXPECT_EQ(c.num_attention_heads, b.num_attention_heads);
  EXPECT_EQ(c.num_key_value_heads, b.num_key_value_heads);
  EXPECT_EQ(c.head_dim, b.head_dim);
  EXPECT_EQ(c.vocab_size, b.vocab_size);
  EXPECT_EQ(c.max_position_embeddings, b.max_position_embeddings);
  EXPECT_EQ(c.rope_theta, b.rope_theta);
  EXPECT_EQ(c.rms_norm_eps, b.rms_norm_eps);
  EXPECT_EQ(c.tie_word_embeddings, b.tie_word_embeddings);
  EXPECT_EQ(c.bos_token_id, b.bos_token_id);
  EXPECT_EQ(c.eos_token_id, b.eos_token_id);
  EXPECT_EQ(c.pad_token_id, b.pad_token_id);
  const nlohmann::json j = nlohmann::json::parse(read_file_text(out / "config.json"));
  EXPECT_EQ(j["architectures"], nlohmann::json::array({"LlamaForCausalLM"}));
  EXPECT_EQ(j["model_type"], "llama");
  EXPECT_EQ(j["torch_dtype"], "float32");
  // The exported model alone computes PEFT's adapted function (tolerance as in
  // peft_adapter_test.cpp: fp32 vs a float64 reference, 1e-4).
  const std::vector<float> logits =
      logits_with_adapter(exported, nullptr, expected.read_i32("ids"));
  const double err = max_abs_diff(logits, expected.read_f32("lora_logits").data);
  EXPECT_LE(err, 1e-4);
  std::printf("[peft] exported model logits vs PEFT: max |err| %.3g\n", err);
}

TEST(Export, Bf16AndForceAndRefusals) {
  const fs::path root = scratch_dir("export_bf16");
  const fs::path out = root / "hf";
  const std::string adapter = shell_arg(peft_golden("lora_adapter"));
  const std::string base = " --base " + shell_arg(tiny_base_dir());
  CommandResult r =
      run_smolengine("export " + adapter + base + " --dtype bf16 --out " + shell_arg(out));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const SafetensorsFile file = SafetensorsFile::open((out / "model.safetensors").string());
  EXPECT_EQ(file.entry("model.layers.0.self_attn.q_proj.weight").dtype, "BF16");
  EXPECT_EQ(nlohmann::json::parse(read_file_text(out / "config.json"))["torch_dtype"], "bfloat16");

  // A non-empty --out is refused (and left as it was) unless --force.
  const std::string before = read_file_text(out / "model.safetensors");
  r = run_smolengine("export " + adapter + base + " --out " + shell_arg(out));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("not empty"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("--force"), std::string::npos) << r.output;
  EXPECT_EQ(read_file_text(out / "model.safetensors"), before);
  r = run_smolengine("export " + adapter + base + " --force --out " + shell_arg(out));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(SafetensorsFile::open((out / "model.safetensors").string())
                .entry("model.layers.0.self_attn.q_proj.weight")
                .dtype,
            "F32");
  // An existing empty directory is fine without --force.
  fs::create_directories(root / "empty");
  r = run_smolengine("export " + adapter + base + " --out " + shell_arg(root / "empty"));
  EXPECT_EQ(r.exit_code, 0) << r.output;

  fs::create_directories(root / "plain_dir");  // neither an adapter nor a full checkpoint
  struct Case {
    std::string args;
    std::string message;
  };
  const std::vector<Case> cases = {
      {adapter + base + " --dtype f16 --out " + shell_arg(root / "a"), "--dtype"},
      {shell_arg(root / "missing") + " --out " + shell_arg(root / "b"), "not a directory"},
      {shell_arg(root / "plain_dir") + " --out " + shell_arg(root / "c"), "neither a PEFT adapter"},
      {adapter + " --base " + shell_arg(root / "nope.gguf") + " --out " + shell_arg(root / "d"),
       "nope.gguf"},
      {shell_arg(peft_golden("pissa_trained")) + base + " --out " + shell_arg(root / "e"),
       "residual base"},
  };
  for (const Case& c : cases) {
    r = run_smolengine("export " + c.args);
    EXPECT_NE(r.exit_code, 0) << c.args;
    EXPECT_NE(r.output.find(c.message), std::string::npos) << c.args << "\n" << r.output;
    for (const char* name : {"a", "b", "c", "d", "e"})
      EXPECT_FALSE(fs::exists(root / name)) << "half-written output " << name;
  }
  for (const auto& entry : fs::directory_iterator(root))
    EXPECT_TRUE(entry.path().filename() == "hf" || entry.path().filename() == "empty" ||
                entry.path().filename() == "plain_dir")
        << "left behind: " << entry.path();
}

TEST(Export, FullCheckpointIsRewrittenAsIs) {
  const fs::path out = scratch_dir("export_full") / "hf";
  const CommandResult r =
      run_smolengine("export " + shell_arg(tiny_base_dir()) + " --out " + shell_arg(out));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("no tokenizer"), std::string::npos)
      << "the missing tokenizer is reported";
  const LoadedModel base = load_model(tiny_base_dir());
  const LoadedModel exported = load_model(out.string());
  ASSERT_EQ(exported.weights.size(), base.weights.size());
  for (const auto& [name, t] : base.weights)
    EXPECT_EQ(exported.weights.at(name).data, t.data) << name;
}

TEST(Export, FullCheckpointRefusesATokenizerOfAnotherModel) {
  if (!fs::exists(real_gguf_path()))
    GTEST_SKIP() << "\n*** SKIPPED: " << real_gguf_path()
                 << " is absent (bash scripts/fetch-model.sh) ***";
  const fs::path out = scratch_dir("export_full_gguf_tokenizer") / "hf";
  // The tiny model (vocabulary 300) has no tokenizer; SmolLM2's (49152 tokens) cannot be its.
  const CommandResult r = run_smolengine("export " + shell_arg(tiny_base_dir()) + " --base " +
                                         shell_arg(real_gguf_path()) + " --out " + shell_arg(out));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("49152 tokens"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(out));
}

TEST(Export, HfConfigJsonRoundTripsSmolLM2) {
  LlamaConfig c = smollm2_135m_config();
  c.bos_token_id = 1;
  c.eos_token_id = 2;
  c.pad_token_id = 2;
  const LlamaConfig back =
      llama_config_from_hf_json(nlohmann::json::parse(hf_config_json(c, DType::BF16)), "config");
  EXPECT_EQ(back.hidden_size, 576);
  EXPECT_EQ(back.num_key_value_heads, 3);
  EXPECT_EQ(back.rope_theta, c.rope_theta);
  EXPECT_EQ(back.rms_norm_eps, c.rms_norm_eps);
  EXPECT_EQ(back.tie_word_embeddings, c.tie_word_embeddings);
  EXPECT_EQ(back.bos_token_id, 1);
  EXPECT_EQ(back.eos_token_id, 2);
  EXPECT_EQ(back.pad_token_id, 2);
  EXPECT_EQ(nlohmann::json::parse(hf_config_json(c, DType::BF16))["torch_dtype"], "bfloat16");
  EXPECT_THROW(hf_config_json(c, DType::I32), Error);
}

// FNV-1a 64 over the ids as little-endian int32 (tests/golden/tokenizer/make_golden.py).
uint64_t fnv1a64(const std::vector<int32_t>& ids) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (int32_t id : ids)
    for (int b = 0; b < 4; ++b) {
      h ^= (static_cast<uint32_t>(id) >> (8 * b)) & 0xFF;
      h *= 0x100000001b3ULL;
    }
  return h;
}

TEST(Export, TokenizerWrittenFromTheGgufMatchesOnGsm8k) {
  if (!fs::exists(real_gguf_path()))
    GTEST_SKIP() << "\n*** SKIPPED: " << real_gguf_path()
                 << " is absent (bash scripts/fetch-model.sh) ***";
  const fs::path gsm8k_test = fs::path(SMOL_SOURCE_DIR) / "../shared/data/gsm8k/test.jsonl";
  if (!fs::exists(gsm8k_test)) GTEST_SKIP() << "\n*** SKIPPED: " << gsm8k_test << " is absent ***";
  const GgufFile gguf = GgufFile::open(real_gguf_path());
  const BpeSpec spec = bpe_spec_from_gguf(gguf);
  // The tokenizer files only: tiny weights, the real GGUF's tokenizer.
  HfExportContents contents;
  const LoadedModel tiny = load_model(tiny_base_dir());
  contents.config = tiny.config;
  contents.weights = tiny.weights;
  HfTokenizerSource source;
  source.bpe = spec;
  contents.tokenizer = source;
  const fs::path out = scratch_dir("export_tokenizer") / "hf";
  write_hf_export_dir(out.string(), contents, false);

  BpeSpec written = read_tokenizer_json((out / "tokenizer.json").string());
  EXPECT_EQ(written.pre_tokenizer, "smollm") << "the Digits pre-tokenizer must be written";
  read_hf_tokenizer_config((out / "tokenizer_config.json").string(), written);
  EXPECT_EQ(written.bos_id, spec.bos_id);
  EXPECT_EQ(written.eos_id, spec.eos_id);
  EXPECT_EQ(written.chat_template, spec.chat_template);
  EXPECT_FALSE(written.chat_template.empty());
  const BpeTokenizer ours(spec, "gguf");
  const BpeTokenizer from_json(written, "tokenizer.json");

  // GSM8K test rows are the last 2·1319 lines of gsm8k_hashes.txt (train then test, question
  // then answer per row), ids of HF `tokenizers` on SmolLM2's configuration.
  std::vector<std::string> hash_lines;
  {
    std::istringstream lines(
        read_file_text(fs::path(SMOL_SOURCE_DIR) / "tests/golden/tokenizer/gsm8k_hashes.txt"));
    for (std::string line; std::getline(lines, line);) hash_lines.push_back(line);
  }
  std::istringstream rows(read_file_text(gsm8k_test));
  std::vector<nlohmann::json> test_rows;
  for (std::string line; std::getline(rows, line);)
    if (!line.empty()) test_rows.push_back(nlohmann::json::parse(line));
  ASSERT_GE(hash_lines.size(), 2 * test_rows.size());
  const size_t first = hash_lines.size() - 2 * test_rows.size();
  size_t checked = 0, mismatches = 0;
  for (size_t i = 0; i < test_rows.size(); ++i) {
    const std::string question = test_rows[i]["question"].get<std::string>();
    const std::vector<int32_t> a = from_json.encode(question);
    const std::vector<int32_t> b = ours.encode(question);
    std::ostringstream golden;
    golden << a.size() << " " << std::hex;
    golden.width(16);
    golden.fill('0');
    golden << fnv1a64(a);
    mismatches += a != b || golden.str() != hash_lines[first + 2 * i];
    ++checked;
  }
  EXPECT_EQ(checked, 1319u);
  EXPECT_EQ(mismatches, 0u);
  std::printf("[peft] tokenizer.json from the GGUF: %zu GSM8K test questions, %zu mismatches\n",
              checked, mismatches);
}

}  // namespace
}  // namespace smol::test
