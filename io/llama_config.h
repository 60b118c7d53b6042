// LlamaConfig: the architecture, in HF `config.json` key names (docs/formats.md §1).
#pragma once

#include <cstdint>
#include <string>

namespace smol {

struct LlamaConfig {
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;  // hidden_size / num_attention_heads unless the config says otherwise
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 2048;
  double rope_theta = 10000.0;
  double rms_norm_eps = 1e-5;
  bool tie_word_embeddings = true;
  int64_t bos_token_id = -1, eos_token_id = -1, pad_token_id = -1;  // -1 = absent

  // Throws smol::Error naming `where` if a dimension is non-positive or inconsistent
  // (heads not dividing, GQA group not integral, absurd sizes).
  void validate(const std::string& where) const;
  int64_t q_dim() const { return num_attention_heads * head_dim; }
  int64_t kv_dim() const { return num_key_value_heads * head_dim; }
  // Parameter count as HF reports it (tied embeddings counted once).
  int64_t num_parameters() const;
  bool operator==(const LlamaConfig&) const = default;
};

// SmolLM2-135M's architecture (docs/formats.md §1), for random-weight benchmarks and tests.
LlamaConfig smollm2_135m_config();

}  // namespace smol
