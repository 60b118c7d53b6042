// Weight loading from GGUF (docs/formats.md §3), safetensors directories (§4) and the hub cache
// (§7) into HF-named, HF-layout fp32 tensors.
#include "io/model_loader.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "common/error.h"
#include "common/regular_file.h"
#include "data/bounded_json.h"
#include "io/dequantize.h"
#include "io/gguf_reader.h"
#include "io/gguf_tokenizer.h"
#include "io/hf_cache.h"
#include "io/hf_config.h"
#include "io/safetensors_io.h"
#include "io/tokenizer_loader.h"

namespace smol {
namespace fs = std::filesystem;
using nlohmann::json;

int64_t LoadedModel::num_parameters() const {
  int64_t n = 0;
  for (const auto& [name, t] : weights) n += t.shape.numel();
  for (const auto& [name, t] : quantized) n += t.shape.numel();
  return n;
}

std::vector<std::pair<std::string, Shape>> expected_llama_tensors(const LlamaConfig& c) {
  const int64_t C = c.hidden_size, F = c.intermediate_size;
  std::vector<std::pair<std::string, Shape>> out;
  out.emplace_back("model.embed_tokens.weight", Shape{c.vocab_size, C});
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    out.emplace_back(p + "input_layernorm.weight", Shape{C});
    out.emplace_back(p + "self_attn.q_proj.weight", Shape{c.q_dim(), C});
    out.emplace_back(p + "self_attn.k_proj.weight", Shape{c.kv_dim(), C});
    out.emplace_back(p + "self_attn.v_proj.weight", Shape{c.kv_dim(), C});
    out.emplace_back(p + "self_attn.o_proj.weight", Shape{C, c.q_dim()});
    out.emplace_back(p + "post_attention_layernorm.weight", Shape{C});
    out.emplace_back(p + "mlp.gate_proj.weight", Shape{F, C});
    out.emplace_back(p + "mlp.up_proj.weight", Shape{F, C});
    out.emplace_back(p + "mlp.down_proj.weight", Shape{C, F});
  }
  out.emplace_back("model.norm.weight", Shape{C});
  if (!c.tie_word_embeddings) out.emplace_back("lm_head.weight", Shape{c.vocab_size, C});
  return out;
}

namespace {

// Moves whole rows: dst row `to(r)` = src row r, per head of `rows / n_heads` rows. Rows of
// `cols` elements of Elem: fp32 values, or the bytes of a quantised row (whole blocks).
template <typename Elem, typename RowMap>
std::vector<Elem> move_rows(const std::vector<Elem>& src, int64_t rows, int64_t cols,
                            int64_t n_heads, RowMap to) {
  SMOL_CHECK(n_heads > 0 && rows % n_heads == 0 && (rows / n_heads) % 2 == 0, "cannot permute ",
             rows, " rows into ", n_heads, " heads of even size");
  SMOL_CHECK(static_cast<int64_t>(src.size()) == rows * cols, "permute: ", src.size(),
             " values for ", rows, " x ", cols);
  const int64_t head_size = rows / n_heads, half = head_size / 2;
  std::vector<Elem> dst(src.size());
  for (int64_t h = 0; h < n_heads; ++h)
    for (int64_t i = 0; i < half; ++i)
      for (int64_t j = 0; j < 2; ++j) {
        const auto [from, into] = to(h * head_size, i, j, half);
        std::memcpy(&dst[into * cols], &src[from * cols], cols * sizeof(Elem));
      }
  return dst;
}

void check_shape(const std::string& where, const std::string& name, const Shape& got,
                 const Shape& want) {
  SMOL_CHECK(got == want, where, ": tensor '", name, "' has shape ", got.str(), ", expected ",
             want.str(), " from the config");
}

// Checks `weights` against the config: every expected tensor present with its shape and
// nothing else (tied lm_head already dropped).
void check_complete(const std::string& where, const LlamaConfig& config,
                    const HostTensorMap& weights) {
  std::set<std::string> expected;
  for (const auto& [name, shape] : expected_llama_tensors(config)) {
    expected.insert(name);
    auto it = weights.find(name);
    SMOL_CHECK(it != weights.end(), where, ": missing tensor '", name, "'");
    check_shape(where, name, it->second.shape, shape);
  }
  for (const auto& [name, t] : weights)
    SMOL_CHECK(expected.count(name), where, ": unexpected tensor '", name, "' for a Llama with ",
               config.num_hidden_layers, " layers");
}

// ---- GGUF ---------------------------------------------------------------------------------

// GGUF tensor name → HF name (docs/formats.md §3 "Tensor names"); "" when not a Llama tensor.
std::string hf_name_from_gguf(const std::string& name) {
  static const std::map<std::string, std::string> top = {
      {"token_embd.weight", "model.embed_tokens.weight"},
      {"output_norm.weight", "model.norm.weight"},
      {"output.weight", "lm_head.weight"},
  };
  static const std::map<std::string, std::string> per_layer = {
      {"attn_norm.weight", "input_layernorm.weight"},
      {"attn_q.weight", "self_attn.q_proj.weight"},
      {"attn_k.weight", "self_attn.k_proj.weight"},
      {"attn_v.weight", "self_attn.v_proj.weight"},
      {"attn_output.weight", "self_attn.o_proj.weight"},
      {"ffn_norm.weight", "post_attention_layernorm.weight"},
      {"ffn_gate.weight", "mlp.gate_proj.weight"},
      {"ffn_up.weight", "mlp.up_proj.weight"},
      {"ffn_down.weight", "mlp.down_proj.weight"},
  };
  if (auto it = top.find(name); it != top.end()) return it->second;
  if (name.rfind("blk.", 0) != 0) return "";
  const size_t dot = name.find('.', 4);
  if (dot == std::string::npos || dot == 4 || dot - 4 > 6) return "";
  const std::string layer = name.substr(4, dot - 4);
  for (char ch : layer)
    if (ch < '0' || ch > '9') return "";
  auto it = per_layer.find(name.substr(dot + 1));
  if (it == per_layer.end()) return "";
  return "model.layers." + std::to_string(std::stoll(layer)) + "." + it->second;
}

// An f32 metadata value as the double of its shortest round-trip decimal (1e-5f → 1e-05, not
// 9.99999974737875e-06), i.e. the value the HF config.json it was converted from held; the
// fp32 compute sees the same float either way.
std::optional<double> f32_metadata_as_decimal(const GgufFile& g, const std::string& key) {
  const std::optional<double> value = g.get_float_opt(key);
  const GgufValue* raw = g.find(key);
  if (!value || raw->type != GgufType::F32) return value;
  char text[32];
  const auto result = std::to_chars(text, text + sizeof(text), static_cast<float>(*value));
  return std::strtod(std::string(text, result.ptr).c_str(), nullptr);
}

LlamaConfig llama_config_from_gguf(const GgufFile& g) {
  const std::string arch = g.get_string("general.architecture");
  SMOL_CHECK(arch == "llama", g.path(), ": general.architecture is '", arch,
             "'; only 'llama' models are supported");
  auto scalar_int = [&](const std::string& key) {
    const GgufValue* v = g.find(key);
    SMOL_CHECK(v == nullptr || v->type != GgufType::Array, g.path(), ": ", key,
               " is a per-layer array; only uniform layers are supported");
    return g.get_int(key);
  };
  LlamaConfig c;
  c.hidden_size = scalar_int("llama.embedding_length");
  c.intermediate_size = scalar_int("llama.feed_forward_length");
  c.num_hidden_layers = scalar_int("llama.block_count");
  c.num_attention_heads = scalar_int("llama.attention.head_count");
  c.num_key_value_heads = g.has("llama.attention.head_count_kv")
                              ? scalar_int("llama.attention.head_count_kv")
                              : c.num_attention_heads;
  SMOL_CHECK(c.num_attention_heads > 0, g.path(), ": llama.attention.head_count must be positive");
  c.head_dim =
      g.get_int_opt("llama.attention.key_length").value_or(c.hidden_size / c.num_attention_heads);
  if (auto rope_dims = g.get_int_opt("llama.rope.dimension_count"))
    SMOL_CHECK(*rope_dims == c.head_dim, g.path(), ": llama.rope.dimension_count ", *rope_dims,
               " != head_dim ", c.head_dim, " (partial rotary embeddings are not supported)");
  SMOL_CHECK(!g.has("llama.rope.scaling.type") || g.get_string("llama.rope.scaling.type") == "none",
             g.path(), ": RoPE scaling '", g.get_string_opt("llama.rope.scaling.type").value_or(""),
             "' is not supported");
  c.max_position_embeddings = g.get_int_opt("llama.context_length").value_or(2048);
  c.rope_theta = f32_metadata_as_decimal(g, "llama.rope.freq_base").value_or(10000.0);
  c.rms_norm_eps =
      f32_metadata_as_decimal(g, "llama.attention.layer_norm_rms_epsilon").value_or(1e-5);
  if (g.has("tokenizer.ggml.tokens")) {
    c.vocab_size = static_cast<int64_t>(g.get_string_array("tokenizer.ggml.tokens").size());
  } else if (auto v = g.get_int_opt("llama.vocab_size")) {
    c.vocab_size = *v;
  } else if (const GgufTensorInfo* embd = g.find_tensor("token_embd.weight");
             embd && embd->ne.size() == 2) {
    c.vocab_size = embd->ne[1];
  }
  c.tie_word_embeddings = g.find_tensor("output.weight") == nullptr;
  auto token_id = [&](const char* key) -> int64_t {
    const std::optional<int64_t> id = g.get_int_opt(key);
    return id && *id != 0xFFFFFFFFLL ? *id : -1;
  };
  c.bos_token_id = token_id("tokenizer.ggml.bos_token_id");
  c.eos_token_id = token_id("tokenizer.ggml.eos_token_id");
  c.pad_token_id = token_id("tokenizer.ggml.padding_token_id");
  c.validate(g.path());
  return c;
}

// The quantised matmul's format for a ggml type it has kernels for.
std::optional<QuantFormat> quant_format_of(GgmlType type) {
  switch (type) {
    case GgmlType::Q8_0:
      return QuantFormat::Q8_0;
    case GgmlType::Q4_0:
      return QuantFormat::Q4_0;
    case GgmlType::Q4_1:
      return QuantFormat::Q4_1;
    case GgmlType::Q4_K:
      return QuantFormat::Q4_K;
    default:
      return std::nullopt;
  }
}

LoadedModel load_gguf(const std::string& path, const LoadOptions& options) {
  const GgufFile g = GgufFile::open(path);
  LoadedModel m;
  m.source = path;
  m.format = "gguf";
  m.config = llama_config_from_gguf(g);

  // Names, shapes and types first (cheap), so a wrong file fails before any dequantisation.
  std::vector<const GgufTensorInfo*> infos;
  std::vector<HostTensor*> targets;
  for (const GgufTensorInfo& info : g.tensors()) {
    const std::string hf_name = hf_name_from_gguf(info.name);
    SMOL_CHECK(!hf_name.empty(), path, ": tensor '", info.name,
               "' is not a Llama tensor this engine knows");
    SMOL_CHECK(ggml_type_dequantizable(info.type), path, ": tensor '", info.name,
               "' has ggml type ", ggml_type_name(info.type),
               ", which this engine cannot dequantise (supported: F32, F16, BF16, Q8_0, Q4_0, "
               "Q4_1, Q5_0, Q5_1, Q4_K, Q6_K)");
    HostTensor t;
    // ggml ne is innermost-first: HF shape is ne reversed (docs/formats.md §3 "Dimensions").
    t.shape.rank = static_cast<int>(info.ne.size());
    for (size_t d = 0; d < info.ne.size(); ++d) t.shape.dims[d] = info.ne[info.ne.size() - 1 - d];
    t.stored_dtype = ggml_type_name(info.type);
    HostTensor& placed = m.weights.emplace(hf_name, std::move(t)).first->second;
    infos.push_back(&info);
    targets.push_back(&placed);
  }
  check_complete(path, m.config, m.weights);

  // With keep_quantized, supported block formats of the matmul weights stay as they are: their
  // blocks are copied out of the mapped file and leave `weights` (docs/cpu-speed.md).
  if (options.keep_quantized) {
    std::vector<const GgufTensorInfo*> rest_infos;
    std::vector<HostTensor*> rest_targets;
    for (size_t i = 0; i < infos.size(); ++i) {
      const std::string hf_name = hf_name_from_gguf(infos[i]->name);
      const std::optional<QuantFormat> format = quant_format_of(infos[i]->type);
      if (!format || !quantizable_weight_name(hf_name) || targets[i]->shape.rank != 2 ||
          targets[i]->shape[1] % quant_format_traits(*format).block_elems != 0) {
        rest_infos.push_back(infos[i]);
        rest_targets.push_back(targets[i]);
        continue;
      }
      QuantizedHostTensor q;
      q.shape = targets[i]->shape;
      q.format = *format;
      const size_t bytes = static_cast<size_t>(q.matrix().bytes());
      const uint8_t* data = infos[i]->data;
      q.blocks.assign(data, data + bytes);
      m.weights.erase(hf_name);
      m.quantized.emplace(hf_name, std::move(q));
    }
    infos = std::move(rest_infos);
    targets = std::move(rest_targets);
  }

  // One parallel region over tensors (not one per tensor over rows): with a few hundred
  // tensors, per-tensor regions spend their time in OpenMP barriers when the cores are busy.
  std::exception_ptr failure;
#pragma omp parallel for schedule(dynamic)
  for (size_t i = 0; i < infos.size(); ++i) {
    try {
      targets[i]->data = dequantize_tensor(*infos[i], path);
    } catch (...) {
#pragma omp critical(smol_load_gguf_failure)
      if (!failure) failure = std::current_exception();
    }
  }
  if (failure) std::rethrow_exception(failure);

  // q/k rows back into HF order (docs/formats.md §3); shapes were checked by check_complete.
  for (int64_t layer = 0; layer < m.config.num_hidden_layers; ++layer) {
    const std::string prefix = "model.layers." + std::to_string(layer) + ".self_attn.";
    for (const auto& [proj, heads] :
         {std::pair<const char*, int64_t>{"q_proj", m.config.num_attention_heads},
          std::pair<const char*, int64_t>{"k_proj", m.config.num_key_value_heads}}) {
      const std::string name = prefix + proj + ".weight";
      if (auto held = m.quantized.find(name); held != m.quantized.end()) {
        // Whole rows are whole blocks: the same row permutation, on each row's bytes.
        QuantizedHostTensor& q = held->second;
        q.blocks =
            move_rows(q.blocks, q.shape[0], q.matrix().row_bytes(), heads,
                      [](int64_t base, int64_t i, int64_t j, int64_t half) {
                        return std::pair<int64_t, int64_t>{base + 2 * i + j, base + half * j + i};
                      });
        continue;
      }
      HostTensor& t = m.weights.at(name);
      t.data = unpermute_rows_gguf_to_hf(t.data, t.shape[0], t.shape[1], heads);
    }
  }
  if (gguf_has_tokenizer(g) && g.get_string("tokenizer.ggml.model") == "gpt2")
    m.bpe = bpe_spec_from_gguf(g);
  m.chat_template = g.get_string_opt("tokenizer.chat_template").value_or("");
  return m;
}

// ---- safetensors directories --------------------------------------------------------------

json read_json_file(const fs::path& path) {
  const std::string text = read_regular_file(path.string(), "JSON file", kMaxSmallJsonBytes);
  try {
    return parse_bounded_json(text, path.string());
  } catch (const json::exception& e) {
    throw_error(path.string(), ": invalid JSON: ", e.what());
  }
}

// Shard file names come from the index: plain names in the same directory only.
fs::path shard_path(const fs::path& dir, const std::string& shard, const fs::path& index) {
  SMOL_CHECK(!shard.empty() && shard.find('/') == std::string::npos &&
                 shard.find('\\') == std::string::npos && shard != "." && shard != "..",
             index.string(), ": shard name '", shard,
             "' is not a file name in the model directory");
  return dir / shard;
}

void add_safetensors_tensor(LoadedModel& m, const SafetensorsFile& file, const std::string& name) {
  // Some old checkpoints store RoPE inverse frequencies; they are recomputed from rope_theta.
  if (name.find("rotary_emb.inv_freq") != std::string::npos) return;
  if (name == "lm_head.weight" && m.config.tie_word_embeddings) return;  // tied: the embedding
  SMOL_CHECK(!m.weights.count(name), file.path(), ": tensor '", name, "' appears twice");
  m.weights.emplace(name, file.read_f32(name));
}

LoadedModel load_hf_dir(const fs::path& dir) {
  LoadedModel m;
  m.source = dir.string();
  m.format = "safetensors";
  const fs::path config_path = dir / "config.json";
  SMOL_CHECK(fs::is_regular_file(config_path), dir.string(),
             ": not a model directory (no config.json)");
  m.config = read_hf_config_file(config_path.string());

  const fs::path single = dir / "model.safetensors";
  const fs::path index_path = dir / "model.safetensors.index.json";
  if (fs::is_regular_file(single)) {
    const SafetensorsFile file = SafetensorsFile::open(single.string());
    for (const SafetensorsEntry& e : file.entries()) add_safetensors_tensor(m, file, e.name);
  } else if (fs::is_regular_file(index_path)) {
    const json index = read_json_file(index_path);
    SMOL_CHECK(index.is_object() && index.contains("weight_map") && index["weight_map"].is_object(),
               index_path.string(), ": no 'weight_map' object");
    std::map<std::string, std::vector<std::string>> names_by_shard;
    for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
      SMOL_CHECK(it.value().is_string(), index_path.string(), ": weight_map entry '", it.key(),
                 "' is not a file name");
      names_by_shard[it.value().get<std::string>()].push_back(it.key());
    }
    for (const auto& [shard, names] : names_by_shard) {
      const fs::path shard_file = shard_path(dir, shard, index_path);
      SMOL_CHECK(fs::is_regular_file(shard_file), index_path.string(), ": missing shard ",
                 shard_file.string());
      const SafetensorsFile file = SafetensorsFile::open(shard_file.string());
      for (const std::string& name : names) {
        SMOL_CHECK(file.find(name) != nullptr, shard_file.string(), ": tensor '", name,
                   "' listed in ", index_path.filename().string(), " is not in this shard");
        add_safetensors_tensor(m, file, name);
      }
    }
  } else {
    throw_error(dir.string(), ": no model.safetensors or model.safetensors.index.json");
  }
  check_complete(dir.string(), m.config, m.weights);

  // The directory's tokenizer as every command finds it (io/tokenizer_loader.h); a model
  // directory without one still loads.
  if (fs::is_regular_file(dir / "tokenizer.json") || fs::is_regular_file(dir / "tokenizer.model")) {
    const TokenizerFiles files = locate_tokenizer(dir.string());
    if (files.kind == TokenizerFileKind::TokenizerJson) m.tokenizer_json_path = files.path;
  }
  if (fs::is_regular_file(dir / "tokenizer_config.json")) {
    const json tc = read_json_file(dir / "tokenizer_config.json");
    if (tc.is_object() && tc.contains("chat_template")) {
      const json& t = tc["chat_template"];
      if (t.is_string()) {
        m.chat_template = t.get<std::string>();
      } else if (t.is_array()) {  // [{"name": "default", "template": "..."}, ...]
        for (const json& named : t)
          if (named.is_object() && named.value("name", "") == "default" &&
              named.contains("template") && named["template"].is_string())
            m.chat_template = named["template"].get<std::string>();
      }
    }
  }
  if (m.chat_template.empty() && fs::is_regular_file(dir / "chat_template.jinja"))
    m.chat_template = read_regular_file((dir / "chat_template.jinja").string(), "chat template",
                                        kMaxSmallJsonBytes);
  return m;
}

bool has_gguf_magic(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  in.read(magic, 4);
  return in.gcount() == 4 && std::memcmp(magic, "GGUF", 4) == 0;
}

}  // namespace

std::vector<float> unpermute_rows_gguf_to_hf(const std::vector<float>& gguf_rows, int64_t rows,
                                             int64_t cols, int64_t n_heads) {
  return move_rows(gguf_rows, rows, cols, n_heads,
                   [](int64_t base, int64_t i, int64_t j, int64_t half) {
                     return std::pair<int64_t, int64_t>{base + 2 * i + j, base + half * j + i};
                   });
}

std::vector<float> permute_rows_hf_to_gguf(const std::vector<float>& hf_rows, int64_t rows,
                                           int64_t cols, int64_t n_heads) {
  return move_rows(hf_rows, rows, cols, n_heads,
                   [](int64_t base, int64_t i, int64_t j, int64_t half) {
                     return std::pair<int64_t, int64_t>{base + half * j + i, base + 2 * i + j};
                   });
}

namespace {

LoadedModel load_model_unchecked(const std::string& path_or_hub_name, const LoadOptions& options) {
  const fs::path path(path_or_hub_name);
  std::error_code ec;
  if (fs::exists(path, ec)) {
    if (fs::is_directory(path, ec)) return load_hf_dir(path);
    if (path.extension() == ".safetensors") {
      const fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
      SMOL_CHECK(path.filename() == "model.safetensors", path_or_hub_name,
                 ": pass the model directory (with config.json), not a single shard");
      return load_hf_dir(dir);
    }
    // A FIFO or device would block or never end in the magic probe below (docs/design.md §9).
    require_regular_file(path_or_hub_name, "model file");
    SMOL_CHECK(path.extension() == ".gguf" || has_gguf_magic(path), path_or_hub_name,
               ": not a GGUF file (no 'GGUF' magic) and not a model directory");
    return load_gguf(path_or_hub_name, options);
  }
  if (looks_like_hub_repo_id(path_or_hub_name)) {
    if (std::optional<std::string> snapshot = resolve_hf_snapshot(path_or_hub_name))
      return load_hf_dir(*snapshot);
    throw_error(path_or_hub_name, ": no such file or directory, and not in the local HF hub ",
                "cache (", hf_hub_cache_root(), ")");
  }
  throw_error(path_or_hub_name, ": no such file or directory");
}

// The index of the first NaN / Inf in values[0, n), or n. Chunks are tested with a branch-free
// exponent test the compiler vectorises; only a chunk with a hit is searched element by element.
size_t first_non_finite(const float* values, size_t n) {
  constexpr size_t kChunk = 4096;
  for (size_t begin = 0; begin < n; begin += kChunk) {
    const size_t end = std::min(n, begin + kChunk);
    uint32_t any = 0;
    for (size_t i = begin; i < end; ++i) {
      uint32_t bits;
      std::memcpy(&bits, values + i, 4);
      any |= static_cast<uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
    }
    if (any == 0) continue;
    for (size_t i = begin; i < end; ++i)
      if (!std::isfinite(values[i])) return i;
  }
  return n;
}

}  // namespace

void check_weights_finite(const HostTensorMap& weights, const std::string& source) {
  for (const auto& [name, tensor] : weights) {
    const size_t at = first_non_finite(tensor.data.data(), tensor.data.size());
    if (at == tensor.data.size()) continue;
    // Name the element by its coordinates as well, so it can be found in the file.
    std::string coordinates;
    size_t rest = at;
    for (int d = tensor.shape.rank - 1; d >= 0; --d) {
      const auto extent = static_cast<size_t>(tensor.shape.dims[d]);
      coordinates = (d > 0 ? ", " : "") + std::to_string(rest % extent) + coordinates;
      rest /= extent;
    }
    throw_error(source, ": tensor '", name, "' (", tensor.stored_dtype, " ", tensor.shape.str(),
                ") holds ", tensor.data[at], " at [", coordinates,
                "]; refusing to load non-finite weights (a corrupted or badly converted file)");
  }
}

LoadedModel load_model(const std::string& path_or_hub_name, const LoadOptions& options) {
  LoadedModel model = load_model_unchecked(path_or_hub_name, options);
  check_weights_finite(model.weights, model.source);
  check_weights_finite(model.quantized, model.source);
  return model;
}

void check_weights_finite(const QuantizedTensorMap& weights, const std::string& source) {
  // Row by row through the fp32 decoding (a non-finite fp16 scale or min shows in its block).
  for (const auto& [name, q] : weights) {
    const QuantMatrix w = q.matrix();
    std::vector<float> row(static_cast<size_t>(w.cols));
    for (int64_t r = 0; r < w.rows; ++r) {
      dequantize_quant_row(w.format, w.row(r), row.data(), w.cols);
      const size_t at = first_non_finite(row.data(), row.size());
      if (at == row.size()) continue;
      throw_error(source, ": tensor '", name, "' (", quant_format_traits(w.format).name, " ",
                  q.shape.str(), ") holds ", row[at], " at [", r, ", ", at,
                  "]; refusing to load non-finite weights (a corrupted or badly converted file)");
    }
  }
}

void dequantize_held(LoadedModel& model) {
  for (auto& [name, q] : model.quantized) {
    HostTensor t;
    t.shape = q.shape;
    t.stored_dtype = quant_format_traits(q.format).name;
    t.data.resize(static_cast<size_t>(q.shape.numel()));
    const QuantMatrix w = q.matrix();
    for (int64_t r = 0; r < w.rows; ++r)
      dequantize_quant_row(w.format, w.row(r), t.data.data() + r * w.cols, w.cols);
    model.weights[name] = std::move(t);
  }
  model.quantized.clear();
}

bool quantizable_weight_name(const std::string& hf_name) {
  if (hf_name == "model.embed_tokens.weight" || hf_name == "lm_head.weight") return true;
  if (hf_name.rfind("model.layers.", 0) != 0) return false;
  for (const char* proj :
       {".self_attn.q_proj.weight", ".self_attn.k_proj.weight", ".self_attn.v_proj.weight",
        ".self_attn.o_proj.weight", ".mlp.gate_proj.weight", ".mlp.up_proj.weight",
        ".mlp.down_proj.weight"}) {
    const std::string suffix(proj);
    if (hf_name.size() > suffix.size() &&
        hf_name.compare(hf_name.size() - suffix.size(), suffix.size(), suffix) == 0)
      return true;
  }
  return false;
}

}  // namespace smol
