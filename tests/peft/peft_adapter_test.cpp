// PEFT adapter directories: reading what PEFT saved (config and tensors; our model with them
// gives PEFT's logits), writing files equal to PEFT's, and every malformed input ending in one
// clear error (tests/golden/peft, made by make_peft_fixtures.py).
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "common/error.h"
#include "peft_test_util.h"

namespace smol::test {
namespace {

namespace fs = std::filesystem;

TEST(PeftAdapter, ReadsTheAdapterPeftSaved) {
  const PeftAdapter a = read_peft_adapter(peft_golden("lora_adapter"));
  EXPECT_EQ(a.config.r, 4);
  EXPECT_EQ(a.config.lora_alpha, 8);
  EXPECT_DOUBLE_EQ(a.config.lora_dropout, 0.05);
  EXPECT_FALSE(a.config.use_rslora);
  EXPECT_EQ(a.config.init_lora_weights, "true");
  EXPECT_EQ(a.config.task_type, "CAUSAL_LM");
  EXPECT_EQ(a.config.base_model_name_or_path, "tests/golden/model/tiny");
  EXPECT_EQ(std::set<std::string>(a.config.target_modules.begin(), a.config.target_modules.end()),
            (std::set<std::string>{"q_proj", "v_proj", "o_proj", "up_proj"}));
  EXPECT_DOUBLE_EQ(a.config.scaling(), 2.0);
  ASSERT_EQ(a.tensors.size(), 2u * 4u * 2u);  // 2 layers × 4 modules × {A, B}
  const HostTensor& up_b = a.tensors.at("model.layers.1.mlp.up_proj.lora_B.weight");
  EXPECT_EQ(up_b.shape, (Shape{96, 4}));
  EXPECT_EQ(a.tensors.at("model.layers.0.self_attn.v_proj.lora_B.weight").shape, (Shape{32, 4}));
  EXPECT_EQ(a.tensors.at("model.layers.0.self_attn.o_proj.lora_A.weight").shape, (Shape{4, 64}));
}

TEST(PeftAdapter, OurModelWithPeftsTensorsGivesPeftsLogits) {
  const PeftAdapter adapter = read_peft_adapter(peft_golden("lora_adapter"));
  const LoadedModel base = load_model(tiny_base_dir());
  const SafetensorsFile expected = SafetensorsFile::open(peft_golden("lora_expected.safetensors"));
  const std::vector<int32_t> ids = expected.read_i32("ids");
  const std::vector<float> ours = logits_with_adapter(base, &adapter, ids);
  const std::vector<float> plain = logits_with_adapter(base, nullptr, ids);
  const double err = max_abs_diff(ours, expected.read_f32("lora_logits").data);
  const double base_err = max_abs_diff(plain, expected.read_f32("base_logits").data);
  const double effect = max_abs_diff(ours, plain);
  // The reference is PEFT's forward in float64 rounded once to fp32, so the error is ours
  // alone: fp32 rounding through 2 layers of width ≤ 96 plus the rank-4 LoRA path, ~1e-6
  // relative on logits of magnitude ~3 (measured below); 1e-4 absolute, as the model's own
  // golden forward test (tests/model/golden_tiny_test.cpp).
  EXPECT_LE(err, 1e-4);
  EXPECT_LE(base_err, 1e-4);
  // The adapter moves the logits by ~3 (B is non-zero), far outside the tolerance: a no-op
  // adapter (wrong names, wrong scaling) cannot pass.
  EXPECT_GT(effect, 0.5);
  std::printf("[peft] logits with PEFT's adapter: max |err| %.3g (adapter effect %.3g)\n", err,
              effect);
}

TEST(PeftAdapter, WrittenFilesEqualPeftsAndReadBack) {
  const PeftAdapter peft = read_peft_adapter(peft_golden("lora_adapter"));
  const fs::path dir = scratch_dir("written_adapter") / "adapter";  // created by the writer
  write_peft_adapter(dir.string(), peft.config, peft.tensors);
  std::printf("[peft] adapter written to %s (check with make_peft_fixtures.py --check)\n",
              dir.c_str());

  const SafetensorsFile ours = SafetensorsFile::open((dir / "adapter_model.safetensors").string());
  const SafetensorsFile theirs =
      SafetensorsFile::open(peft_golden("lora_adapter/adapter_model.safetensors"));
  EXPECT_EQ(ours.metadata().at("format"), "pt");
  ASSERT_EQ(ours.entries().size(), theirs.entries().size());
  for (size_t i = 0; i < ours.entries().size(); ++i) {
    const SafetensorsEntry& o = ours.entries()[i];
    const SafetensorsEntry& t = theirs.entries()[i];
    EXPECT_EQ(o.name, t.name);  // same PEFT keys (entries are sorted by name)
    EXPECT_EQ(o.dtype, t.dtype);
    EXPECT_EQ(o.shape, t.shape);
    ASSERT_EQ(o.end - o.begin, t.end - t.begin);
    EXPECT_EQ(std::memcmp(o.data, t.data, o.end - o.begin), 0) << o.name << " values differ";
  }

  // The config carries every field PEFT's LoraConfig needs, with PEFT's values.
  const nlohmann::json ours_json =
      nlohmann::json::parse(read_file_text(dir / "adapter_config.json"));
  const nlohmann::json peft_json =
      nlohmann::json::parse(read_file_text(peft_golden("lora_adapter/adapter_config.json")));
  for (const char* key :
       {"peft_type", "r", "lora_alpha", "lora_dropout", "bias", "fan_in_fan_out", "use_rslora",
        "use_dora", "init_lora_weights", "inference_mode", "task_type", "modules_to_save",
        "layers_to_transform", "layers_pattern", "rank_pattern", "alpha_pattern", "lora_bias",
        "base_model_name_or_path", "revision"}) {
    ASSERT_TRUE(ours_json.contains(key)) << key;
    EXPECT_EQ(ours_json[key], peft_json[key]) << key;
  }
  std::multiset<std::string> ours_targets(ours_json["target_modules"].begin(),
                                          ours_json["target_modules"].end());
  std::multiset<std::string> peft_targets(peft_json["target_modules"].begin(),
                                          peft_json["target_modules"].end());
  EXPECT_EQ(ours_targets, peft_targets);

  const PeftAdapter back = read_peft_adapter(dir.string());
  EXPECT_EQ(back.config.r, peft.config.r);
  EXPECT_EQ(back.config.lora_alpha, peft.config.lora_alpha);
  EXPECT_EQ(back.config.lora_dropout, peft.config.lora_dropout);
  EXPECT_EQ(back.config.target_modules, peft.config.target_modules);
  ASSERT_EQ(back.tensors.size(), peft.tensors.size());
  for (const auto& [name, t] : peft.tensors) EXPECT_EQ(back.tensors.at(name).data, t.data) << name;
  // Nothing but the two files (no temporaries left behind).
  size_t files = 0;
  for (const auto& entry : fs::directory_iterator(dir)) files += entry.is_regular_file();
  EXPECT_EQ(files, 2u);
}

TEST(PeftAdapter, ConfigValuesRoundTrip) {
  PeftAdapterConfig c;
  c.base_model_name_or_path = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
  c.r = 8;
  c.lora_alpha = 11.313708498984761;  // α·√2 (rslora conversion): written as a double
  c.lora_dropout = 0.1;
  c.use_rslora = true;
  c.init_lora_weights = "gaussian";
  c.target_modules = {"q_proj", "k_proj", "down_proj"};
  const std::string text = peft_adapter_config_json(c);
  const nlohmann::json j = nlohmann::json::parse(text);
  EXPECT_TRUE(j["init_lora_weights"].is_string());
  EXPECT_TRUE(j["revision"].is_null());
  const PeftAdapterConfig back = parse_peft_adapter_config(text, "roundtrip");
  EXPECT_EQ(back.base_model_name_or_path, c.base_model_name_or_path);
  EXPECT_EQ(back.r, c.r);
  EXPECT_EQ(back.lora_alpha, c.lora_alpha);  // shortest round-trip decimal: exact
  EXPECT_EQ(back.lora_dropout, c.lora_dropout);
  EXPECT_EQ(back.use_rslora, true);
  EXPECT_EQ(back.init_lora_weights, "gaussian");
  EXPECT_EQ(back.target_modules, c.target_modules);
  EXPECT_DOUBLE_EQ(back.scaling(), c.lora_alpha / std::sqrt(8.0));
  c.lora_alpha = 16;
  c.init_lora_weights = "false";
  const nlohmann::json k = nlohmann::json::parse(peft_adapter_config_json(c));
  EXPECT_TRUE(k["lora_alpha"].is_number_integer());  // 16, as PEFT writes it
  EXPECT_EQ(k["init_lora_weights"], false);
}

// ---- errors ---------------------------------------------------------------------------------

// Runs `f`, expecting a smol::Error whose message contains every one of `parts`.
template <typename F>
void expect_error(F&& f, std::initializer_list<std::string> parts) {
  try {
    f();
    ADD_FAILURE() << "no error thrown (expected one mentioning '" << *parts.begin() << "')";
  } catch (const Error& e) {
    for (const std::string& part : parts)
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos)
          << "message '" << e.what() << "' lacks '" << part << "'";
  }
}

// A copy of PEFT's adapter directory whose config JSON is replaced by `config_text`.
fs::path adapter_with_config(const std::string& name, const std::string& config_text) {
  const fs::path dir = scratch_dir(name);
  fs::copy_file(peft_golden("lora_adapter/adapter_model.safetensors"),
                dir / "adapter_model.safetensors");
  write_file_text(dir / "adapter_config.json", config_text);
  return dir;
}

std::string peft_config_with(const std::string& key, const nlohmann::json& value) {
  nlohmann::json j =
      nlohmann::json::parse(read_file_text(peft_golden("lora_adapter/adapter_config.json")));
  if (value.is_discarded())
    j.erase(key);
  else
    j[key] = value;
  return j.dump();
}

TEST(PeftAdapterErrors, MissingFilesAndDirectories) {
  expect_error([] { read_peft_adapter("/nonexistent/adapter"); },
               {"/nonexistent/adapter", "not a directory"});
  const fs::path empty = scratch_dir("empty_adapter");
  expect_error([&] { read_peft_adapter(empty.string()); }, {"adapter_config.json"});
  const fs::path no_weights = scratch_dir("no_weights");
  fs::copy_file(peft_golden("lora_adapter/adapter_config.json"),
                no_weights / "adapter_config.json");
  expect_error([&] { read_peft_adapter(no_weights.string()); }, {"adapter_model.safetensors"});
  write_file_text(no_weights / "adapter_model.bin", "pickle");
  expect_error([&] { read_peft_adapter(no_weights.string()); },
               {"adapter_model.bin", "safe_serialization"});
}

TEST(PeftAdapterErrors, BadConfigJson) {
  const fs::path truncated = adapter_with_config("bad_json", "{\"peft_type\": \"LORA\", \"r\": ");
  expect_error([&] { read_peft_adapter(truncated.string()); },
               {"adapter_config.json", "invalid JSON"});
  const fs::path array = adapter_with_config("json_array", "[1, 2]");
  expect_error([&] { read_peft_adapter(array.string()); }, {"not a JSON object"});
  struct Case {
    std::string key;
    nlohmann::json value;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"peft_type", "IA3", "peft_type"},
      {"peft_type", nlohmann::json(nlohmann::json::value_t::discarded), "peft_type"},
      {"r", "4", "'r' must be an integer"},
      {"r", 0, "r must be positive"},
      {"lora_alpha", "8", "'lora_alpha' must be a number"},
      {"lora_dropout", 1.5, "lora_dropout"},
      {"target_modules", ".*q_proj", "regex"},
      {"target_modules", nlohmann::json::array({"q_proj", "embed_tokens"}), "embed_tokens"},
      {"use_dora", true, "use_dora"},
      {"bias", "all", "bias"},
      {"fan_in_fan_out", true, "fan_in_fan_out"},
      {"rank_pattern", {{"q_proj", 8}}, "rank_pattern"},
      {"modules_to_save", nlohmann::json::array({"lm_head"}), "modules_to_save"},
      {"layers_to_transform", nlohmann::json::array({0}), "layers_to_transform"},
      {"init_lora_weights", 3, "init_lora_weights"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.key + " = " + c.value.dump());
    const fs::path dir = adapter_with_config("bad_" + c.key, peft_config_with(c.key, c.value));
    expect_error([&] { read_peft_adapter(dir.string()); }, {"adapter_config.json", c.message});
  }
  // q/v/o/up tensors with target_modules [q_proj, v_proj]: o and up are not listed.
  const fs::path unlisted = adapter_with_config(
      "unlisted", peft_config_with("target_modules", nlohmann::json::array({"q_proj", "v_proj"})));
  expect_error([&] { read_peft_adapter(unlisted.string()); },
               {"up_proj", "target_modules does not list"});
  // r 8 in the config but rank-4 tensors.
  const fs::path wrong_r = adapter_with_config("wrong_r", peft_config_with("r", 8));
  expect_error([&] { read_peft_adapter(wrong_r.string()); }, {"lora_A", "r = 8"});
}

// A copy of PEFT's adapter whose safetensors holds `tensors` (PEFT keys → values).
fs::path adapter_with_tensors(const std::string& name,
                              const std::vector<SafetensorsWriteEntry>& tensors) {
  const fs::path dir = scratch_dir(name);
  fs::copy_file(peft_golden("lora_adapter/adapter_config.json"), dir / "adapter_config.json");
  write_safetensors((dir / "adapter_model.safetensors").string(), tensors);
  return dir;
}

std::vector<SafetensorsWriteEntry> peft_tensors_except(const std::string& skip) {
  const PeftAdapter a = read_peft_adapter(peft_golden("lora_adapter"));
  std::vector<SafetensorsWriteEntry> out;
  for (const auto& [name, t] : a.tensors)
    if (name != skip)
      out.push_back(SafetensorsWriteEntry::from_host(peft_key_from_lora_name(name), t));
  return out;
}

TEST(PeftAdapterErrors, BadTensors) {
  const std::vector<float> zeros(96 * 8, 0.0f);
  {  // a key that is not a LoRA tensor of a Llama projection
    auto tensors = peft_tensors_except("");
    tensors.push_back(
        SafetensorsWriteEntry::f32("base_model.model.lm_head.weight", {4, 4}, zeros.data()));
    const fs::path dir = adapter_with_tensors("unknown_key", tensors);
    expect_error([&] { read_peft_adapter(dir.string()); },
                 {"base_model.model.lm_head.weight", "not a PEFT LoRA key"});
  }
  {  // the adapter name left inside the key (".default"): PEFT itself would load it as a no-op
    auto tensors = peft_tensors_except("model.layers.0.self_attn.q_proj.lora_A.weight");
    tensors.push_back(SafetensorsWriteEntry::f32(
        "base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight", {4, 64},
        zeros.data()));
    const fs::path dir = adapter_with_tensors("default_key", tensors);
    expect_error([&] { read_peft_adapter(dir.string()); }, {"lora_A.default.weight"});
  }
  {  // a lora_A without its lora_B
    const fs::path dir = adapter_with_tensors(
        "missing_b", peft_tensors_except("model.layers.1.mlp.up_proj.lora_B.weight"));
    expect_error([&] { read_peft_adapter(dir.string()); },
                 {"up_proj.lora_A", "no matching lora_B"});
  }
  {  // B with the wrong rank
    auto tensors = peft_tensors_except("model.layers.1.mlp.up_proj.lora_B.weight");
    tensors.push_back(SafetensorsWriteEntry::f32(
        "base_model.model.model.layers.1.mlp.up_proj.lora_B.weight", {96, 8}, zeros.data()));
    const fs::path dir = adapter_with_tensors("wrong_b_rank", tensors);
    expect_error([&] { read_peft_adapter(dir.string()); }, {"lora_B", "r = 4"});
  }
  {  // layers disagreeing on a module's shape
    auto tensors = peft_tensors_except("model.layers.1.mlp.up_proj.lora_B.weight");
    tensors.push_back(SafetensorsWriteEntry::f32(
        "base_model.model.model.layers.1.mlp.up_proj.lora_B.weight", {64, 4}, zeros.data()));
    const fs::path dir = adapter_with_tensors("layer_mismatch", tensors);
    expect_error([&] { read_peft_adapter(dir.string()); }, {"up_proj", "another layer"});
  }
  {  // a truncated safetensors file
    const fs::path dir = scratch_dir("truncated_weights");
    fs::copy_file(peft_golden("lora_adapter/adapter_config.json"), dir / "adapter_config.json");
    const std::string bytes = read_file_text(peft_golden("lora_adapter/adapter_model.safetensors"));
    write_file_text(dir / "adapter_model.safetensors", bytes.substr(0, bytes.size() - 100));
    expect_error([&] { read_peft_adapter(dir.string()); }, {"adapter_model.safetensors"});
  }
}

TEST(PeftAdapterErrors, WriterRefusesMalformedAdapters) {
  const PeftAdapter a = read_peft_adapter(peft_golden("lora_adapter"));
  const fs::path dir = scratch_dir("writer_errors") / "out";
  HostTensorMap renamed = a.tensors;
  auto node = renamed.extract("model.layers.0.self_attn.q_proj.lora_A.weight");
  node.key() = "model.layers.0.self_attn.q_proj.lora_a.weight";
  renamed.insert(std::move(node));
  expect_error([&] { write_peft_adapter(dir.string(), a.config, renamed); }, {"lora_a.weight"});
  PeftAdapterConfig no_targets = a.config;
  no_targets.target_modules.clear();
  expect_error([&] { write_peft_adapter(dir.string(), no_targets, a.tensors); },
               {"target_modules is empty"});
  expect_error([&] { write_peft_adapter(dir.string(), a.config, {}); }, {"no LoRA tensors"});
  EXPECT_FALSE(fs::exists(dir / "adapter_model.safetensors")) << "nothing written on error";
}

}  // namespace
}  // namespace smol::test
