// A tiny Llama GGUF (2 layers, hidden 64, 2 heads of 32, 1 kv head, ffn 96, vocab 40) built
// byte by byte, with recognisable values: every weight element is
// value(hf_name, hf_row, col) = (hf_row + 1) + col / 1024 + tag(hf_name), and q/k rows are
// stored in the converter's permuted order (docs/formats.md §3) so a loader that un-permutes puts
// HF row r back where value(...) says it belongs.
#pragma once

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "io/dequantize.h"
#include "tests/weights/test_files.h"

namespace smol::test {

struct TinyLlama {
  static constexpr int64_t kHidden = 64, kHeads = 2, kKvHeads = 1, kHeadDim = 32, kFfn = 96,
                           kLayers = 2, kVocab = 40;
};

// Distinct per tensor so a mix-up between tensors shows.
inline float tiny_tag(const std::string& hf_name) {
  float tag = 0;
  for (char c : hf_name) tag = tag * 31 + static_cast<unsigned char>(c);
  return static_cast<float>(static_cast<int>(tag) % 97) * 100.0f;
}
inline float tiny_value(const std::string& hf_name, int64_t hf_row, int64_t col) {
  return tiny_tag(hf_name) + static_cast<float>(hf_row + 1) + static_cast<float>(col) / 1024.0f;
}

// Rows [rows, cols] in HF order, then (for q/k) moved to GGUF order: GGUF row (h, 2i+j) holds
// HF row (h, half·j + i).
inline std::vector<float> tiny_rows(const std::string& hf_name, int64_t rows, int64_t cols,
                                    int64_t permute_heads) {
  std::vector<float> out(rows * cols);
  for (int64_t r = 0; r < rows; ++r) {
    int64_t hf_row = r;
    if (permute_heads > 0) {
      const int64_t head_size = rows / permute_heads, half = head_size / 2;
      const int64_t h = r / head_size, within = r % head_size;
      const int64_t i = within / 2, j = within % 2;
      hf_row = h * head_size + half * j + i;
    }
    for (int64_t c = 0; c < cols; ++c) out[r * cols + c] = tiny_value(hf_name, hf_row, c);
  }
  return out;
}

inline std::vector<std::string> tiny_tokens() {
  std::vector<std::string> tokens = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
  for (int i = 3; i < TinyLlama::kVocab; ++i)
    tokens.push_back(std::string(1, static_cast<char>('a' + (i % 26))) + std::to_string(i));
  return tokens;
}

// Rows of 32-value blocks as Q8_0 (d = max|x|/127 in fp16, q = round(x/d)): how
// quantized_matrices stores every 2-D tensor.
inline Bytes q8_0_bytes(const std::vector<float>& v) {
  Bytes out;
  for (size_t b = 0; b < v.size() / 32; ++b) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(v[32 * b + j]));
    const float d = amax / 127.0f;
    const uint16_t half = fp32_to_fp16(d);
    out.push_back(static_cast<uint8_t>(half & 0xFF));
    out.push_back(static_cast<uint8_t>(half >> 8));
    for (int j = 0; j < 32; ++j)
      out.push_back(
          static_cast<uint8_t>(static_cast<int8_t>(d > 0 ? std::lround(v[32 * b + j] / d) : 0)));
  }
  return out;
}

// with_output: add an untied output.weight. quantized_matrices: store every 2-D tensor as Q8_0
// (in the file's row order: q/k blocks permuted like their rows).
inline GgufBuilder tiny_llama_gguf(bool with_output = false, bool quantized_matrices = false) {
  using L = TinyLlama;
  GgufBuilder g;
  g.kv_string("general.architecture", "llama");
  g.kv_u32("llama.context_length", 256);
  g.kv_u32("llama.embedding_length", L::kHidden);
  g.kv_u32("llama.block_count", L::kLayers);
  g.kv_u32("llama.feed_forward_length", L::kFfn);
  g.kv_u32("llama.attention.head_count", L::kHeads);
  g.kv<uint64_t>("llama.attention.head_count_kv", kU64, L::kKvHeads);  // u64 on purpose
  g.kv_f32("llama.rope.freq_base", 100000.0f);
  g.kv_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  g.kv_u32("llama.rope.dimension_count", L::kHeadDim);
  g.kv_string("tokenizer.ggml.model", "gpt2");
  g.kv_string("tokenizer.ggml.pre", "smollm");
  const std::vector<std::string> tokens = tiny_tokens();
  g.kv_string_array("tokenizer.ggml.tokens", tokens);
  std::vector<int32_t> types(tokens.size(), 1);
  types[0] = types[1] = types[2] = 3;
  types[5] = 4;
  g.kv_i32_array("tokenizer.ggml.token_type", types);
  g.kv_string_array("tokenizer.ggml.merges", {"a 3", "Ġ t", "b4 c5"});
  g.kv_u32("tokenizer.ggml.bos_token_id", 1);
  g.kv_u32("tokenizer.ggml.eos_token_id", 2);
  g.kv_u32("tokenizer.ggml.padding_token_id", 2);
  g.kv_string("tokenizer.chat_template", "{{ messages }}");

  auto add = [&](const std::string& gguf_name, const std::string& hf_name, int64_t rows,
                 int64_t cols, int64_t permute_heads) {
    GgufTensorSpec t;
    t.name = gguf_name;
    t.type = 0;  // F32
    if (rows == 1)
      t.ne = {static_cast<uint64_t>(cols)};
    else
      t.ne = {static_cast<uint64_t>(cols), static_cast<uint64_t>(rows)};
    t.data = f32_bytes(tiny_rows(hf_name, rows, cols, permute_heads));
    if (quantized_matrices && rows > 1) {
      t.type = 8;  // Q8_0
      t.data = q8_0_bytes(tiny_rows(hf_name, rows, cols, permute_heads));
    }
    g.tensor(std::move(t));
  };
  const int64_t C = L::kHidden, F = L::kFfn, Q = L::kHeads * L::kHeadDim,
                KV = L::kKvHeads * L::kHeadDim;
  add("token_embd.weight", "model.embed_tokens.weight", L::kVocab, C, 0);
  for (int l = 0; l < L::kLayers; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    const std::string h = "model.layers." + std::to_string(l) + ".";
    add(b + "attn_norm.weight", h + "input_layernorm.weight", 1, C, 0);
    add(b + "attn_q.weight", h + "self_attn.q_proj.weight", Q, C, L::kHeads);
    add(b + "attn_k.weight", h + "self_attn.k_proj.weight", KV, C, L::kKvHeads);
    add(b + "attn_v.weight", h + "self_attn.v_proj.weight", KV, C, 0);
    add(b + "attn_output.weight", h + "self_attn.o_proj.weight", C, Q, 0);
    add(b + "ffn_norm.weight", h + "post_attention_layernorm.weight", 1, C, 0);
    add(b + "ffn_gate.weight", h + "mlp.gate_proj.weight", F, C, 0);
    add(b + "ffn_up.weight", h + "mlp.up_proj.weight", F, C, 0);
    add(b + "ffn_down.weight", h + "mlp.down_proj.weight", C, F, 0);
  }
  add("output_norm.weight", "model.norm.weight", 1, C, 0);
  if (with_output) add("output.weight", "lm_head.weight", L::kVocab, C, 0);
  return g;
}

}  // namespace smol::test
