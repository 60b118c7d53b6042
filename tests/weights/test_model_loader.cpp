// Model loader tests: a hand-built tiny Llama GGUF loads into HF names and layout (q/k rows
// un-permuted, docs/formats.md §3), HF directories (single file and sharded) and hub-cache
// resolution (docs/formats.md §7) work, config.json round-trips, and each failure names its cause.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>

#include "common/error.h"
#include "io/dequantize.h"
#include "io/gguf_reader.h"
#include "io/hf_cache.h"
#include "io/hf_config.h"
#include "io/model_loader.h"
#include "io/safetensors_io.h"
#include "tests/weights/test_files.h"
#include "tests/weights/tiny_llama_gguf.h"

namespace smol {
namespace {

using namespace smol::test;
using L = TinyLlama;

void expect_error(const std::function<void()>& call, const std::string& phrase) {
  try {
    call();
    ADD_FAILURE() << "no error (expected '" << phrase << "')";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(phrase), std::string::npos)
        << "expected '" << phrase << "' in: " << e.what();
  }
}

LlamaConfig tiny_config(bool tied = true) {
  LlamaConfig c;
  c.hidden_size = L::kHidden;
  c.intermediate_size = L::kFfn;
  c.num_hidden_layers = L::kLayers;
  c.num_attention_heads = L::kHeads;
  c.num_key_value_heads = L::kKvHeads;
  c.head_dim = L::kHeadDim;
  c.vocab_size = L::kVocab;
  c.max_position_embeddings = 256;
  c.rope_theta = 100000;
  c.rms_norm_eps = 1e-5;
  c.tie_word_embeddings = tied;
  c.bos_token_id = 1;
  c.eos_token_id = 2;
  c.pad_token_id = 2;
  return c;
}

// Every element equals tiny_value(name, HF row, col): proves names, shapes and row order.
void expect_tiny_values(const HostTensorMap& weights, bool bf16_rounded) {
  for (const auto& [name, t] : weights) {
    const int64_t rows = t.shape.rank == 1 ? 1 : t.shape[0], cols = t.shape.cols();
    int64_t bad = 0;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) {
        float want = tiny_value(name, r, c);
        if (bf16_rounded) want = bf16_to_fp32(fp32_to_bf16(want));
        if (t.data[r * cols + c] != want && ++bad <= 2)
          ADD_FAILURE() << name << "[" << r << "," << c << "] = " << t.data[r * cols + c]
                        << ", expected " << want;
      }
  }
}

TEST(ModelLoader, TinyGgufLoadsInHfLayout) {
  TempDir dir;
  const std::string path = dir.write("tiny.gguf", tiny_llama_gguf().build());
  const LoadedModel m = load_model(path);
  EXPECT_EQ(m.format, "gguf");
  EXPECT_EQ(m.source, path);
  const LlamaConfig& c = m.config;
  EXPECT_EQ(c.hidden_size, L::kHidden);
  EXPECT_EQ(c.intermediate_size, L::kFfn);
  EXPECT_EQ(c.num_hidden_layers, L::kLayers);
  EXPECT_EQ(c.num_attention_heads, L::kHeads);
  EXPECT_EQ(c.num_key_value_heads, L::kKvHeads);  // stored as u64: any integer type accepted
  EXPECT_EQ(c.head_dim, L::kHeadDim);
  EXPECT_EQ(c.vocab_size, L::kVocab);
  EXPECT_EQ(c.max_position_embeddings, 256);
  EXPECT_EQ(c.rope_theta, 100000.0);
  EXPECT_EQ(c.rms_norm_eps, 1e-5);  // f32 1e-5 read back as the decimal 1e-05
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_id, 2);
  EXPECT_EQ(c.pad_token_id, 2);
  EXPECT_EQ(m.weights.count("lm_head.weight"), 0u);
  EXPECT_EQ(m.weights.size(), 2u + 9u * L::kLayers);
  EXPECT_EQ(m.num_parameters(), tiny_config().num_parameters());
  EXPECT_EQ(m.weights.at("model.layers.1.self_attn.q_proj.weight").shape,
            (Shape{L::kHeads * L::kHeadDim, L::kHidden}));
  EXPECT_EQ(m.weights.at("model.layers.0.mlp.down_proj.weight").shape,
            (Shape{L::kHidden, L::kFfn}));
  EXPECT_EQ(m.weights.at("model.norm.weight").stored_dtype, "F32");
  expect_tiny_values(m.weights, false);
  ASSERT_TRUE(m.bpe.has_value());
  EXPECT_EQ(m.bpe->tokens.size(), static_cast<size_t>(L::kVocab));
  EXPECT_EQ(m.chat_template, "{{ messages }}");
  EXPECT_EQ(m.tokenizer_json_path, "");

  const LoadedModel untied = load_model(dir.write("untied.gguf", tiny_llama_gguf(true).build()));
  EXPECT_FALSE(untied.config.tie_word_embeddings);
  ASSERT_EQ(untied.weights.count("lm_head.weight"), 1u);
  expect_tiny_values(untied.weights, false);
}

// docs/design.md §9 "Untrusted input": a NaN in a weight file is refused at load, naming the
// tensor (HF name) and the element, instead of training or answering with NaN.
TEST(ModelLoader, RefusesNonFiniteWeightsNamingTheTensor) {
  TempDir dir;
  const std::string path = dir.write("nan.gguf", tiny_llama_gguf().build());
  uint64_t at = 0;
  {
    const GgufFile gguf = GgufFile::open(path);
    const GgufTensorInfo& t = gguf.tensor("blk.1.ffn_up.weight");
    at = gguf.data_offset() + t.offset + 4 * (L::kHidden + 3);  // row 1, col 3 (F32)
  }
  std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
  const float nan = std::nanf("");
  file.seekp(static_cast<std::streamoff>(at));
  file.write(reinterpret_cast<const char*>(&nan), 4);
  file.close();
  expect_error([&] { load_model(path); }, "tensor 'model.layers.1.mlp.up_proj.weight'");
  expect_error([&] { load_model(path); }, "nan at [1, 3]");

  HostTensorMap weights;
  weights["a"].shape = Shape{2, 3};
  weights["a"].data = {0, 1, 2, 3, -INFINITY, 5};
  expect_error([&] { check_weights_finite(weights, "w.safetensors"); },
               "w.safetensors: tensor 'a' (F32 [2, 3]) holds -inf at [1, 1]");
  weights["a"].data[4] = 4;
  check_weights_finite(weights, "w.safetensors");  // all finite: no error
}

// A FIFO, a device or a directory given as a model file is refused at once (reading a FIFO
// would block forever, /dev/zero never ends), with a message naming the kind of file.
TEST(ModelLoader, RefusesSpecialFilesWithoutBlocking) {
  TempDir dir;
  const std::string fifo = dir.file("model.gguf");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  expect_error([&] { load_model(fifo); }, "FIFO");
  expect_error([&] { GgufFile::open(fifo); }, "not a regular file");
  expect_error([&] { SafetensorsFile::open(fifo); }, "FIFO");
  const std::string fifo_noext = dir.file("model");
  ASSERT_EQ(::mkfifo(fifo_noext.c_str(), 0600), 0);
  expect_error([&] { load_model(fifo_noext); }, "FIFO");
  expect_error([&] { load_model("/dev/zero"); }, "character device");
  expect_error([&] { GgufFile::open(dir.path().string()); }, "directory");
  const auto model_dir = dir.path() / "hf";
  std::filesystem::create_directories(model_dir);
  ASSERT_EQ(::mkfifo((model_dir / "config.json").c_str(), 0600), 0);
  expect_error([&] { read_hf_config_file((model_dir / "config.json").string()); }, "FIFO");
}

// config.json sizes are bounded before they size anything (docs/design.md §9).
TEST(HfConfig, BoundsSizesThatWouldSizeAllocations) {
  nlohmann::json j = llama_config_to_hf_json(tiny_config());
  j["max_position_embeddings"] = int64_t{1} << 40;
  expect_error([&] { llama_config_from_hf_json(j, "c.json"); },
               "c.json: max_position_embeddings = 1099511627776 is not in [1, 4194304]");
  j = llama_config_to_hf_json(tiny_config());
  j["vocab_size"] = 4'000'000;
  j["hidden_size"] = 65536;
  j["head_dim"] = 1024;
  j["num_attention_heads"] = 64;
  j["num_key_value_heads"] = 64;
  j["intermediate_size"] = 262144;
  j["num_hidden_layers"] = 1024;
  expect_error([&] { llama_config_from_hf_json(j, "c.json"); }, "parameters, more than the");
  // Nesting is bounded while parsing.
  TempDir dir;
  const std::string deep =
      dir.write_text("config.json", std::string(100000, '[') + std::string(100000, ']'));
  expect_error([&] { read_hf_config_file(deep); }, "nested deeper than 64 levels");
}

TEST(ModelLoader, PermutationMatchesFormatsExample) {
  // docs/formats.md §3: with 64-row heads, GGUF rows 0,1,2,3 = HF rows 0,32,1,33.
  const int64_t rows = 128, cols = 2;
  std::vector<float> gguf(rows * cols);
  for (int64_t r = 0; r < rows; ++r) gguf[r * cols] = gguf[r * cols + 1] = static_cast<float>(r);
  const std::vector<float> hf = unpermute_rows_gguf_to_hf(gguf, rows, cols, 2);
  EXPECT_EQ(hf[0 * cols], 0);                   // HF row 0 ← GGUF row 0
  EXPECT_EQ(hf[32 * cols], 1);                  // HF row 32 ← GGUF row 1
  EXPECT_EQ(hf[1 * cols], 2);                   // HF row 1 ← GGUF row 2
  EXPECT_EQ(hf[33 * cols], 3);                  // HF row 33 ← GGUF row 3
  EXPECT_EQ(hf[(64 + 32) * cols + 1], 64 + 1);  // second head, same pattern
  EXPECT_EQ(permute_rows_hf_to_gguf(hf, rows, cols, 2), gguf);
  expect_error([&] { unpermute_rows_gguf_to_hf(gguf, rows, cols, 3); }, "heads of even size");
}

TEST(ModelLoader, GgufErrorsNameTheProblem) {
  TempDir dir;
  GgufBuilder arch;
  arch.kv_string("general.architecture", "gpt2");
  const std::string arch_path = dir.write("arch.gguf", arch.build());
  expect_error([&] { load_model(arch_path); }, "only 'llama'");
  GgufBuilder extra = tiny_llama_gguf();
  extra.tensor({"rope_freqs.weight", {16}, 0, f32_bytes(std::vector<float>(16, 1)), {}});
  const std::string extra_path = dir.write("extra.gguf", extra.build());
  expect_error([&] { load_model(extra_path); }, "'rope_freqs.weight' is not a Llama tensor");
  GgufBuilder more_layers = tiny_llama_gguf();
  more_layers.kv_u32("llama.block_count", 3);  // duplicate key → reader error
  const std::string dup_path = dir.write("dup.gguf", more_layers.build());
  expect_error([&] { load_model(dup_path); }, "duplicate metadata key");

  // A file whose metadata promises more than its tensors hold: built with a patched
  // builder that writes block_count 3 and feed_forward_length 128.
  auto patched = [&](const std::string& key, uint32_t value) {
    GgufBuilder g = tiny_llama_gguf();
    Bytes bytes = g.build();
    const std::string needle = key;
    auto it = std::search(bytes.begin(), bytes.end(), needle.begin(), needle.end());
    EXPECT_NE(it, bytes.end());
    const size_t at = (it - bytes.begin()) + needle.size() + 4;  // skip the type id
    std::memcpy(&bytes[at], &value, 4);
    return dir.write(key + ".gguf", bytes);
  };
  const std::string layers_path = patched("llama.block_count", 3);
  expect_error([&] { load_model(layers_path); }, "missing tensor 'model.layers.2.");
  const std::string ffn_path = patched("llama.feed_forward_length", 128);
  expect_error([&] { load_model(ffn_path); }, "expected [128, 64] from the config");
  const std::string heads_path = patched("llama.attention.head_count", 4);
  expect_error([&] { load_model(heads_path); }, "llama.rope.dimension_count 32 != head_dim 16");
  const std::string junk = dir.write_text("junk.bin", "hello");
  expect_error([&] { load_model(junk); }, "not a GGUF file");
  expect_error([&] { load_model(dir.file("absent.gguf")); }, "no such file");
}

// Writes config.json + model.safetensors (BF16, as SmolLM2 ships) for the tiny model.
void write_hf_dir(const std::filesystem::path& d, bool tied, bool lm_head_stored, bool sharded,
                  const std::string& omit = "") {
  std::filesystem::create_directories(d);
  std::ofstream(d / "config.json") << llama_config_to_hf_json(tiny_config(tied)).dump(2);
  std::vector<SafetensorsWriteEntry> entries;
  LlamaConfig c = tiny_config(tied);
  for (const auto& [name, shape] : expected_llama_tensors(c)) {
    if (name == omit) continue;
    const int64_t rows = shape.rank == 1 ? 1 : shape[0];
    std::vector<float> values = tiny_rows(name, rows, shape.cols(), 0);
    entries.push_back(SafetensorsWriteEntry::bf16(
        name, std::vector<int64_t>(shape.dims.begin(), shape.dims.begin() + shape.rank),
        values.data()));
  }
  if (tied && lm_head_stored) {
    std::vector<float> values = tiny_rows("model.embed_tokens.weight", L::kVocab, L::kHidden, 0);
    entries.push_back(
        SafetensorsWriteEntry::bf16("lm_head.weight", {L::kVocab, L::kHidden}, values.data()));
  }
  if (!sharded) {
    write_safetensors((d / "model.safetensors").string(), entries);
    return;
  }
  // Two shards: the embedding in the first, everything else in the second.
  std::vector<SafetensorsWriteEntry> first, second;
  nlohmann::json weight_map;
  for (auto& e : entries) {
    const bool in_first = e.name == "model.embed_tokens.weight";
    weight_map[e.name] =
        in_first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
    (in_first ? first : second).push_back(std::move(e));
  }
  write_safetensors((d / "model-00001-of-00002.safetensors").string(), first);
  write_safetensors((d / "model-00002-of-00002.safetensors").string(), second);
  std::ofstream(d / "model.safetensors.index.json")
      << nlohmann::json{{"metadata", {{"total_size", 0}}}, {"weight_map", weight_map}}.dump();
}

TEST(ModelLoader, HfDirectorySingleAndSharded) {
  TempDir dir;
  const auto single = dir.path() / "single";
  write_hf_dir(single, true, true, false);
  std::ofstream(single / "tokenizer.json") << "{}";
  std::ofstream(single / "tokenizer_config.json") << R"({"chat_template": "T"})";
  const LoadedModel m = load_model(single.string());
  EXPECT_EQ(m.format, "safetensors");
  EXPECT_EQ(m.weights.count("lm_head.weight"), 0u);  // tied: stored copy dropped
  EXPECT_EQ(m.weights.at("model.norm.weight").stored_dtype, "BF16");
  EXPECT_EQ(m.tokenizer_json_path, (single / "tokenizer.json").string());
  EXPECT_EQ(m.chat_template, "T");
  EXPECT_FALSE(m.bpe.has_value());
  EXPECT_EQ(m.num_parameters(), tiny_config().num_parameters());
  expect_tiny_values(m.weights, true);
  // A path to model.safetensors means its directory.
  EXPECT_EQ(load_model((single / "model.safetensors").string()).weights.size(), m.weights.size());

  const auto sharded = dir.path() / "sharded";
  write_hf_dir(sharded, false, false, true);
  const LoadedModel s = load_model(sharded.string());
  EXPECT_FALSE(s.config.tie_word_embeddings);
  EXPECT_EQ(s.weights.count("lm_head.weight"), 1u);
  EXPECT_EQ(s.tokenizer_json_path, "");
  expect_tiny_values(s.weights, true);
}

TEST(ModelLoader, HfDirectoryErrors) {
  TempDir dir;
  const auto d = dir.path() / "m";
  write_hf_dir(d, false, false, true);
  std::filesystem::remove(d / "model-00001-of-00002.safetensors");
  expect_error([&] { load_model(d.string()); }, "missing shard");
  write_hf_dir(d, false, false, true);
  // Index lists a tensor that its shard does not hold.
  std::ofstream(d / "model.safetensors.index.json")
      << R"({"weight_map": {"model.embed_tokens.weight": "model-00002-of-00002.safetensors"}})";
  expect_error([&] { load_model(d.string()); }, "is not in this shard");
  std::ofstream(d / "model.safetensors.index.json") << R"({"weight_map": {"x": "../evil"}})";
  expect_error([&] { load_model(d.string()); }, "not a file name");
  std::ofstream(d / "model.safetensors.index.json") << R"({"weights": {}})";
  expect_error([&] { load_model(d.string()); }, "no 'weight_map'");

  const auto untied = dir.path() / "untied";
  write_hf_dir(untied, false, false, false, "lm_head.weight");  // untied, lm_head absent
  expect_error([&] { load_model(untied.string()); }, "missing tensor 'lm_head.weight'");
  const auto empty = dir.path() / "empty";
  std::filesystem::create_directories(empty);
  expect_error([&] { load_model(empty.string()); }, "no config.json");
  std::ofstream(empty / "config.json") << llama_config_to_hf_json(tiny_config()).dump();
  expect_error([&] { load_model(empty.string()); }, "no model.safetensors");
  std::ofstream(empty / "config.json") << "{not json";
  expect_error([&] { load_model(empty.string()); }, "invalid JSON");
}

TEST(HfConfig, RoundTripDefaultsAndErrors) {
  const LlamaConfig c = tiny_config();
  const LlamaConfig back = llama_config_from_hf_json(llama_config_to_hf_json(c), "rt");
  EXPECT_EQ(llama_config_to_hf_json(back), llama_config_to_hf_json(c));
  EXPECT_EQ(back.head_dim, c.head_dim);
  EXPECT_EQ(back.pad_token_id, 2);

  // transformers' LlamaConfig defaults for absent keys.
  const nlohmann::json minimal = {{"hidden_size", 64},      {"intermediate_size", 96},
                                  {"num_hidden_layers", 2}, {"num_attention_heads", 4},
                                  {"vocab_size", 100},      {"eos_token_id", {7, 8}},
                                  {"pad_token_id", nullptr}};
  const LlamaConfig d = llama_config_from_hf_json(minimal, "min");
  EXPECT_EQ(d.num_key_value_heads, 4);
  EXPECT_EQ(d.head_dim, 16);
  EXPECT_EQ(d.max_position_embeddings, 2048);
  EXPECT_EQ(d.rope_theta, 10000.0);
  EXPECT_EQ(d.rms_norm_eps, 1e-6);
  EXPECT_FALSE(d.tie_word_embeddings);
  EXPECT_EQ(d.bos_token_id, 1);
  EXPECT_EQ(d.eos_token_id, 7);  // first of a list
  EXPECT_EQ(d.pad_token_id, -1);

  auto with = [&](const char* key, nlohmann::json value) {
    nlohmann::json j = minimal;
    j[key] = value;
    return j;
  };
  expect_error([&] { llama_config_from_hf_json(with("hidden_size", "64"), "cfg.json"); },
               "cfg.json: key 'hidden_size' must be an integer");
  expect_error([&] { llama_config_from_hf_json(with("model_type", "mistral"), "c"); },
               "model_type 'mistral'");
  expect_error(
      [&] {
        llama_config_from_hf_json(with("rope_scaling", {{"type", "linear"}}), "c");
      },
      "rope_scaling");
  expect_error(
      [&] {
        llama_config_from_hf_json(with("rope_parameters", {{"rope_type", "llama3"}}), "c");
      },
      "rope_parameters");
  // transformers 5.x: rope_parameters carries rope_theta; "default" type, no scaling.
  const nlohmann::json v5 =
      with("rope_parameters", {{"rope_theta", 100000.0}, {"rope_type", "default"}});
  EXPECT_EQ(llama_config_from_hf_json(v5, "c").rope_theta, 100000.0);
  EXPECT_EQ(
      llama_config_from_hf_json(with("rope_scaling", {{"rope_type", "default"}}), "c").rope_theta,
      10000.0);
  expect_error([&] { llama_config_from_hf_json(with("attention_bias", true), "c"); },
               "attention_bias");
  expect_error([&] { llama_config_from_hf_json(with("num_key_value_heads", 3), "c"); },
               "not a multiple");
  nlohmann::json missing = minimal;
  missing.erase("vocab_size");
  expect_error([&] { llama_config_from_hf_json(missing, "c"); },
               "missing required key 'vocab_size'");
}

// Sets environment variables for one scope and restores them.
class ScopedEnv {
 public:
  void set(const char* name, const char* value) {
    const char* old = std::getenv(name);
    saved_.emplace_back(name, old ? std::optional<std::string>(old) : std::nullopt);
    if (value)
      ::setenv(name, value, 1);
    else
      ::unsetenv(name);
  }
  ~ScopedEnv() {
    for (auto it = saved_.rbegin(); it != saved_.rend(); ++it) {
      if (it->second)
        ::setenv(it->first.c_str(), it->second->c_str(), 1);
      else
        ::unsetenv(it->first.c_str());
    }
  }

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

TEST(HfCache, RootPrecedence) {
  ScopedEnv env;
  env.set("HF_HUB_CACHE", "/a/hub");
  env.set("HUGGINGFACE_HUB_CACHE", "/b/hub");
  env.set("HF_HOME", "/c");
  env.set("XDG_CACHE_HOME", "/d");
  env.set("HOME", "/home/u");
  EXPECT_EQ(hf_hub_cache_root(), "/a/hub");
  env.set("HF_HUB_CACHE", nullptr);
  EXPECT_EQ(hf_hub_cache_root(), "/b/hub");
  env.set("HUGGINGFACE_HUB_CACHE", nullptr);
  EXPECT_EQ(hf_hub_cache_root(), "/c/hub");
  env.set("HF_HOME", "~/hf-$XDG_CACHE_HOME");
  EXPECT_EQ(hf_hub_cache_root(), "/home/u/hf-/d/hub");
  env.set("HF_HOME", nullptr);
  EXPECT_EQ(hf_hub_cache_root(), "/d/huggingface/hub");
  env.set("XDG_CACHE_HOME", nullptr);
  EXPECT_EQ(hf_hub_cache_root(), "/home/u/.cache/huggingface/hub");

  EXPECT_TRUE(looks_like_hub_repo_id("HuggingFaceTB/SmolLM2-135M"));
  EXPECT_TRUE(looks_like_hub_repo_id("gpt2"));
  EXPECT_FALSE(looks_like_hub_repo_id("/abs/path"));
  EXPECT_FALSE(looks_like_hub_repo_id("./rel"));
  EXPECT_FALSE(looks_like_hub_repo_id("a/b/c"));
}

TEST(HfCache, HubNameResolvesThroughRefsOrSingleSnapshot) {
  TempDir dir;
  ScopedEnv env;
  env.set("HF_HUB_CACHE", dir.path().c_str());
  const std::string commit = "0123456789abcdef0123456789abcdef01234567";
  const auto repo = dir.path() / "models--Org--Tiny";
  write_hf_dir(repo / "snapshots" / commit, true, false, false);
  // Without refs/ and with exactly one snapshot: that one.
  EXPECT_EQ(load_model("Org/Tiny").source, (repo / "snapshots" / commit).string());
  std::filesystem::create_directories(repo / "refs");
  std::ofstream(repo / "refs" / "main") << commit << "\n";
  write_hf_dir(repo / "snapshots" / "ffffffffffffffffffffffffffffffffffffffff", true, false, false);
  const LoadedModel m = load_model("Org/Tiny");
  EXPECT_EQ(m.source, (repo / "snapshots" / commit).string());
  expect_tiny_values(m.weights, true);
  EXPECT_EQ(*resolve_hf_snapshot("Org/Tiny", "ffffffffffffffffffffffffffffffffffffffff"),
            (repo / "snapshots" / "ffffffffffffffffffffffffffffffffffffffff").string());
  expect_error([&] { resolve_hf_snapshot("Org/Tiny", "dev"); }, "no refs/dev and 2 snapshots");
  std::ofstream(repo / "refs" / "main") << "1111111111111111111111111111111111111111";
  expect_error([&] { load_model("Org/Tiny"); }, "does not exist");
  EXPECT_FALSE(resolve_hf_snapshot("Org/Absent").has_value());
  expect_error([&] { load_model("Org/Absent"); }, "not in the local HF hub cache");
}

}  // namespace
}  // namespace smol

namespace smol {
namespace {

// A directory written by transformers' save_pretrained (tests/golden/weights/
// make_tiny_hf_dir.py; with transformers 5.x its config.json has rope_parameters instead of
// rope_theta): config and every tensor as transformers reads them back. Sums of BF16 values
// are accumulated in float64 on both sides; only the summation order differs, so the
// tolerance is 1e-12 of Σ|x| (float64 rounding over a few thousand terms).
TEST(ModelLoader, DirectorySavedByTransformers) {
  const std::string golden = std::string(SMOL_SOURCE_DIR) + "/tests/golden/weights/";
  const LoadedModel m = load_model(golden + "tiny_hf_llama");
  std::ifstream in(golden + "tiny_hf_llama.expected.json");
  const nlohmann::json expected = nlohmann::json::parse(in);
  const nlohmann::json& c = expected["config"];
  EXPECT_EQ(m.config.hidden_size, c["hidden_size"].get<int64_t>());
  EXPECT_EQ(m.config.intermediate_size, c["intermediate_size"].get<int64_t>());
  EXPECT_EQ(m.config.num_hidden_layers, c["num_hidden_layers"].get<int64_t>());
  EXPECT_EQ(m.config.num_attention_heads, c["num_attention_heads"].get<int64_t>());
  EXPECT_EQ(m.config.num_key_value_heads, c["num_key_value_heads"].get<int64_t>());
  EXPECT_EQ(m.config.head_dim, c["head_dim"].get<int64_t>());
  EXPECT_EQ(m.config.vocab_size, c["vocab_size"].get<int64_t>());
  EXPECT_EQ(m.config.max_position_embeddings, c["max_position_embeddings"].get<int64_t>());
  EXPECT_EQ(m.config.rope_theta, c["rope_theta"].get<double>());
  EXPECT_EQ(m.config.rms_norm_eps, c["rms_norm_eps"].get<double>());
  EXPECT_EQ(m.config.tie_word_embeddings, c["tie_word_embeddings"].get<bool>());
  EXPECT_EQ(m.num_parameters(), expected["num_parameters"].get<int64_t>());
  EXPECT_EQ(m.weights.size(), expected["tensors"].size());
  for (const auto& [name, info] : expected["tensors"].items()) {
    ASSERT_EQ(m.weights.count(name), 1u) << name;
    const HostTensor& t = m.weights.at(name);
    EXPECT_EQ(t.stored_dtype, "BF16") << name;
    EXPECT_EQ(std::vector<int64_t>(t.shape.dims.begin(), t.shape.dims.begin() + t.shape.rank),
              info["shape"].get<std::vector<int64_t>>())
        << name;
    double sum = 0, abs_sum = 0;
    for (float v : t.data) {
      sum += v;
      abs_sum += std::fabs(v);
    }
    EXPECT_NEAR(sum, info["sum"].get<double>(), 1e-12 * abs_sum) << name;
  }
}

}  // namespace
}  // namespace smol
