// Writes the seed corpus of every fuzz target: small valid files of each format (a few KB),
// built with the engine's own writers where it has them, so the fuzzer starts from inputs that
// get deep into each parser. Run once by hand when a format changes; the output is committed:
//   build-fuzz/make_seed_corpus fuzz/corpus
// Hand-written seeds (YAML configs, JSON variants) sit beside these and are not regenerated.
#include <sentencepiece_trainer.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "data/bpe_spec.h"
#include "data/byte_level.h"
#include "data/tokenizer_json.h"
#include "fuzz/fuzz_support.h"
#include "io/peft_adapter.h"
#include "io/safetensors_io.h"

namespace fs = std::filesystem;
using Bytes = std::string;

namespace {

fs::path g_root;

void write_seed(const std::string& target, const std::string& name, const Bytes& bytes) {
  const fs::path dir = g_root / target;
  fs::create_directories(dir);
  std::ofstream out(dir / ("seed-" + name), std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

Bytes read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

Bytes join_parts(const std::vector<Bytes>& parts) {
  Bytes out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) out += smol::fuzz::kPartSeparator;
    out += parts[i];
  }
  return out;
}

template <typename T>
void put(Bytes& out, T value) {
  char raw[sizeof(T)];
  std::memcpy(raw, &value, sizeof(T));
  out.append(raw, sizeof(T));
}
void put_string(Bytes& out, const std::string& s) {
  put<uint64_t>(out, s.size());
  out += s;
}

// ---- GGUF: a complete tiny Llama (1 layer), in F32 and in a mix of quantised types --------

struct GgufTensor {
  std::string name;
  std::vector<uint64_t> ne;
  uint32_t type;
  Bytes data;
};

Bytes gguf_file(const Bytes& kvs, uint64_t kv_count, const std::vector<GgufTensor>& tensors) {
  Bytes out;
  put<uint32_t>(out, 0x46554747);
  put<uint32_t>(out, 3);
  put<uint64_t>(out, tensors.size());
  put<uint64_t>(out, kv_count);
  out += kvs;
  uint64_t offset = 0;
  std::vector<uint64_t> offsets;
  for (const GgufTensor& t : tensors) {
    put_string(out, t.name);
    put<uint32_t>(out, static_cast<uint32_t>(t.ne.size()));
    for (uint64_t d : t.ne) put<uint64_t>(out, d);
    put<uint32_t>(out, t.type);
    put<uint64_t>(out, offset);
    offsets.push_back(offset);
    offset += (t.data.size() + 31) / 32 * 32;
  }
  out.append((32 - out.size() % 32) % 32, '\0');
  for (const GgufTensor& t : tensors) {
    out += t.data;
    out.append((32 - t.data.size() % 32) % 32, '\0');
  }
  return out;
}

// Bytes of `rows` rows of `cols` elements of ggml type `type`: F32 ramps, quantised blocks with
// scale 1.0 (f16 0x3C00) and varied quants, so every value is finite.
Bytes tensor_bytes(uint32_t type, uint64_t rows, uint64_t cols) {
  Bytes out;
  const uint64_t n = rows * cols;
  if (type == 0) {
    for (uint64_t i = 0; i < n; ++i) put<float>(out, 0.01f * static_cast<float>(i % 17) - 0.05f);
    return out;
  }
  if (type == 1) {
    for (uint64_t i = 0; i < n; ++i) put<uint16_t>(out, static_cast<uint16_t>(0x2000 + i % 512));
    return out;
  }
  const uint64_t blocks = n / 32;
  for (uint64_t b = 0; b < blocks; ++b) {
    put<uint16_t>(out, 0x2C00);  // d = 1/16
    size_t quant_bytes = 0;
    if (type == 2) quant_bytes = 16;                              // Q4_0
    if (type == 3) put<uint16_t>(out, 0x0000), quant_bytes = 16;  // Q4_1: m
    if (type == 6) quant_bytes = 4 + 16;                          // Q5_0: qh + qs
    if (type == 7) put<uint16_t>(out, 0x0000), quant_bytes = 4 + 16;
    if (type == 8) quant_bytes = 32;  // Q8_0
    for (size_t i = 0; i < quant_bytes; ++i) out += static_cast<char>((b * 7 + i * 13) & 0xff);
  }
  return out;
}

void gguf_seeds() {
  struct Shape {
    int64_t hidden, heads, head_dim, kv_heads, ffn, vocab;
  };
  auto model = [](const Shape& s, uint32_t matrix_type, bool untied) {
    Bytes kvs;
    uint64_t count = 0;
    auto kv_u32 = [&](const std::string& k, uint32_t v) {
      put_string(kvs, k), put<uint32_t>(kvs, 4), put<uint32_t>(kvs, v), ++count;
    };
    auto kv_f32 = [&](const std::string& k, float v) {
      put_string(kvs, k), put<uint32_t>(kvs, 6), put<float>(kvs, v), ++count;
    };
    auto kv_str = [&](const std::string& k, const std::string& v) {
      put_string(kvs, k), put<uint32_t>(kvs, 8), put_string(kvs, v), ++count;
    };
    auto kv_strs = [&](const std::string& k, const std::vector<std::string>& v) {
      put_string(kvs, k), put<uint32_t>(kvs, 9), put<uint32_t>(kvs, 8),
          put<uint64_t>(kvs, v.size());
      for (const std::string& s : v) put_string(kvs, s);
      ++count;
    };
    kv_str("general.architecture", "llama");
    kv_u32("general.alignment", 32);
    kv_u32("llama.context_length", 64);
    kv_u32("llama.embedding_length", static_cast<uint32_t>(s.hidden));
    kv_u32("llama.block_count", 1);
    kv_u32("llama.feed_forward_length", static_cast<uint32_t>(s.ffn));
    kv_u32("llama.attention.head_count", static_cast<uint32_t>(s.heads));
    kv_u32("llama.attention.head_count_kv", static_cast<uint32_t>(s.kv_heads));
    kv_f32("llama.rope.freq_base", 10000.0f);
    kv_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
    kv_u32("llama.rope.dimension_count", static_cast<uint32_t>(s.head_dim));
    kv_str("tokenizer.ggml.model", "gpt2");
    kv_str("tokenizer.ggml.pre", "smollm");
    std::vector<std::string> tokens = {
        "<|endoftext|>", "<|im_start|>", "<|im_end|>", "H", "i", "Ġ", "1", "2", "Hi", "12"};
    tokens.resize(static_cast<size_t>(s.vocab), "x");
    for (size_t i = 10; i < tokens.size(); ++i) tokens[i] = "t" + std::to_string(i);
    kv_strs("tokenizer.ggml.tokens", tokens);
    put_string(kvs, "tokenizer.ggml.token_type"), put<uint32_t>(kvs, 9), put<uint32_t>(kvs, 5);
    put<uint64_t>(kvs, tokens.size());
    for (size_t i = 0; i < tokens.size(); ++i) put<int32_t>(kvs, i < 3 ? 3 : 1);
    ++count;
    kv_strs("tokenizer.ggml.merges", {"H i", "1 2"});
    kv_u32("tokenizer.ggml.bos_token_id", 1);
    kv_u32("tokenizer.ggml.eos_token_id", 2);
    kv_str("tokenizer.chat_template", "{{ messages }}");

    std::vector<GgufTensor> tensors;
    auto add = [&](const std::string& name, uint64_t rows, uint64_t cols, uint32_t type) {
      GgufTensor t{name,
                   rows == 1 ? std::vector<uint64_t>{cols} : std::vector<uint64_t>{cols, rows},
                   type, tensor_bytes(type, rows, cols)};
      tensors.push_back(std::move(t));
    };
    const uint64_t C = s.hidden, F = s.ffn, Q = s.heads * s.head_dim, KV = s.kv_heads * s.head_dim;
    add("token_embd.weight", s.vocab, C, matrix_type);
    add("blk.0.attn_norm.weight", 1, C, 0);
    add("blk.0.attn_q.weight", Q, C, matrix_type);
    add("blk.0.attn_k.weight", KV, C, matrix_type == 2 ? 3 : matrix_type);
    add("blk.0.attn_v.weight", KV, C, matrix_type == 2 ? 6 : matrix_type);
    add("blk.0.attn_output.weight", C, Q, matrix_type == 2 ? 7 : matrix_type);
    add("blk.0.ffn_norm.weight", 1, C, 0);
    add("blk.0.ffn_gate.weight", F, C, matrix_type == 2 ? 8 : matrix_type);
    add("blk.0.ffn_up.weight", F, C, matrix_type == 2 ? 1 : matrix_type);
    add("blk.0.ffn_down.weight", C, F, matrix_type);
    add("output_norm.weight", 1, C, 0);
    if (untied) add("output.weight", s.vocab, C, matrix_type);
    return gguf_file(kvs, count, tensors);
  };
  write_seed("gguf", "tiny-f32.gguf", model({8, 2, 4, 1, 8, 10}, 0, false));
  write_seed("gguf", "tiny-quant.gguf", model({32, 2, 16, 1, 32, 10}, 2, true));
}

// ---- safetensors -------------------------------------------------------------------------

void safetensors_seeds(const fs::path& scratch) {
  const float values[12] = {0.5f, -1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
  const int32_t ids[4] = {1, 2, 3, -4};
  const std::string path = (scratch / "seed.safetensors").string();
  smol::write_safetensors(path,
                          {smol::SafetensorsWriteEntry::f32("a.weight", {3, 4}, values),
                           smol::SafetensorsWriteEntry::bf16("b.bias", {4}, values),
                           smol::SafetensorsWriteEntry::i32("ids", {2, 2}, ids)},
                          {{"note", "seed"}});
  write_seed("safetensors", "mixed.safetensors", read_bytes(path));
  smol::write_safetensors(path, {smol::SafetensorsWriteEntry::f32("scalar", {}, values)});
  write_seed("safetensors", "scalar.safetensors", read_bytes(path));
}

// ---- tokenizer.json / tokenizer_config.json ----------------------------------------------

void tokenizer_json_seeds() {
  smol::BpeSpec spec;
  const smol::ByteLevelMap& map = smol::byte_level_map();
  for (int b = 0; b < 256; ++b) spec.tokens.push_back(map.char_utf8_of(static_cast<uint8_t>(b)));
  spec.tokens.push_back("Hi");
  spec.tokens.push_back("ĠHi");
  spec.merges = {{"H", "i"}, {"Ġ", "Hi"}};
  spec.added_tokens = {{258, "<|im_start|>", true}, {259, "<|im_end|>", true}};
  const std::string config =
      R"({"bos_token": "<|im_start|>", "eos_token": {"content": "<|im_end|>"}, )"
      R"("pad_token": null, "chat_template": "{{ messages }}"})";
  write_seed("tokenizer_json", "strings.json", smol::write_tokenizer_json(spec, false));
  write_seed("tokenizer_json", "pairs-with-config.json",
             join_parts({smol::write_tokenizer_json(spec, true), config}));
  spec.pre_tokenizer = "gpt2";
  write_seed("tokenizer_json", "gpt2.json", smol::write_tokenizer_json(spec, false));
}

// ---- sentencepiece -----------------------------------------------------------------------

void sentencepiece_seeds(const fs::path& scratch) {
  const fs::path text = scratch / "spm.txt";
  {
    std::ofstream out(text);
    for (int i = 0; i < 50; ++i)
      out << "Hello world " << i << ", the quick brown fox jumps over the lazy dog.\n";
  }
  for (const std::string type : {"bpe", "unigram"}) {
    const fs::path prefix = scratch / ("spm-" + type);
    const auto status = sentencepiece::SentencePieceTrainer::Train(
        "--input=" + text.string() + " --model_prefix=" + prefix.string() +
        " --vocab_size=" + (type == "bpe" ? "48" : "300") + " --model_type=" + type +
        " --normalization_rule_name=identity --character_coverage=1.0 --byte_fallback=" +
        (type == "bpe" ? "false" : "true") + " --minloglevel=2");
    if (!status.ok()) {
      std::cerr << "sentencepiece training failed: " << status.ToString() << "\n";
      std::exit(1);
    }
    write_seed("sentencepiece", type + ".model", read_bytes(prefix.string() + ".model"));
  }
}

// ---- PEFT adapter and checkpoint ---------------------------------------------------------

smol::HostTensor host(std::vector<int64_t> dims) {
  smol::HostTensor t;
  t.shape.rank = static_cast<int>(dims.size());
  for (size_t i = 0; i < dims.size(); ++i) t.shape.dims[i] = dims[i];
  t.data.assign(static_cast<size_t>(t.shape.numel()), 0.25f);
  return t;
}

void adapter_and_checkpoint_seeds(const fs::path& scratch) {
  smol::PeftAdapterConfig config;
  config.r = 2;
  config.lora_alpha = 4;
  config.target_modules = {"q_proj", "v_proj"};
  smol::HostTensorMap lora;
  for (const char* proj : {"q_proj", "v_proj"}) {
    const std::string base = std::string("model.layers.0.self_attn.") + proj;
    lora[base + ".lora_A.weight"] = host({2, 8});
    lora[base + ".lora_B.weight"] = host({proj[0] == 'q' ? 8 : 4, 2});
  }
  const fs::path adapter = scratch / "adapter";
  smol::write_peft_adapter(adapter.string(), config, lora);
  write_seed("peft_adapter", "lora.txt",
             join_parts({read_bytes(adapter / "adapter_config.json"),
                         read_bytes(adapter / "adapter_model.safetensors")}));

  // A LoRA checkpoint: training_state.safetensors (parameters, moments, metadata) and
  // trainer_state.json; a full one adds model.safetensors.
  const float values[16] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f,
                            0.9f, 1.0f, 1.1f, 1.2f, 1.3f, 1.4f, 1.5f, 1.6f};
  auto state = [&](const std::string& mode) {
    const std::string path = (scratch / "training_state.safetensors").string();
    std::vector<smol::SafetensorsWriteEntry> entries = {
        smol::SafetensorsWriteEntry::f32("param.x.lora_A.weight", {2, 4}, values),
        smol::SafetensorsWriteEntry::f32("optimizer.exp_avg.x.lora_A.weight", {2, 4}, values),
        smol::SafetensorsWriteEntry::f32("optimizer.exp_avg_sq.x.lora_A.weight", {2, 4}, values),
        smol::SafetensorsWriteEntry::f32("initial.x.lora_A.weight", {2, 4}, values)};
    smol::write_safetensors(path, entries,
                            {{"smolengine.format", "smolengine.training_state.v1"},
                             {"mode", mode},
                             {"global_step", "3"},
                             {"optimizer_steps", "3"},
                             {"cursor_epoch", "0"},
                             {"cursor_micro_batch", "6"},
                             {"seed", "42"},
                             {"data_seed", "42"},
                             {"best_metric", "0.75"},
                             {"best_checkpoint", "checkpoint-2"},
                             {"patience_counter", "1"}});
    return read_bytes(path);
  };
  const std::string trainer_state =
      R"({"global_step": 3, "epoch": 0.5, "max_steps": 6, "best_metric": 0.75,)"
      R"( "log_history": [{"loss": 2.5, "step": 1, "learning_rate": 0.001},)"
      R"( {"eval_loss": 2.25, "step": 2}]})";
  write_seed("checkpoint", "lora.txt", join_parts({state("lora"), trainer_state}));
  const std::string model_path = (scratch / "model.safetensors").string();
  smol::write_safetensors(model_path,
                          {smol::SafetensorsWriteEntry::f32("model.norm.weight", {4}, values)});
  write_seed("checkpoint", "full.txt",
             join_parts({state("full"), trainer_state, read_bytes(model_path)}));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: make_seed_corpus <fuzz/corpus>\n";
    return 2;
  }
  g_root = argv[1];
  const fs::path scratch = fs::temp_directory_path() / "smol-make-seeds";
  fs::remove_all(scratch);
  fs::create_directories(scratch);
  gguf_seeds();
  safetensors_seeds(scratch);
  tokenizer_json_seeds();
  sentencepiece_seeds(scratch);
  adapter_and_checkpoint_seeds(scratch);
  fs::remove_all(scratch);
  return 0;
}
