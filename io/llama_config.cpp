#include "io/llama_config.h"

#include "common/error.h"

namespace smol {

void LlamaConfig::validate(const std::string& where) const {
  auto positive = [&](int64_t v, const char* key, int64_t limit) {
    SMOL_CHECK(v > 0 && v <= limit, where, ": ", key, " = ", v, " is not in [1, ", limit, "]");
  };
  positive(hidden_size, "hidden_size", 1 << 16);
  positive(intermediate_size, "intermediate_size", 1 << 18);
  positive(num_hidden_layers, "num_hidden_layers", 1024);
  positive(num_attention_heads, "num_attention_heads", 1024);
  positive(num_key_value_heads, "num_key_value_heads", 1024);
  positive(head_dim, "head_dim", 1024);
  positive(vocab_size, "vocab_size", 1 << 22);
  // Sizes a RoPE table and bounds every sequence; 4M positions is 32x any Llama released.
  positive(max_position_embeddings, "max_position_embeddings", 1 << 22);
  SMOL_CHECK(num_attention_heads % num_key_value_heads == 0, where, ": num_attention_heads (",
             num_attention_heads, ") is not a multiple of num_key_value_heads (",
             num_key_value_heads, ")");
  SMOL_CHECK(head_dim % 2 == 0, where, ": head_dim ", head_dim, " must be even for RoPE");
  SMOL_CHECK(rope_theta > 0, where, ": rope_theta must be positive");
  SMOL_CHECK(rms_norm_eps > 0, where, ": rms_norm_eps must be positive");
  // Each size above is sane alone; together they could still ask for a model no machine holds
  // (a config.json from a file sizes allocations before any weight is read: docs/design.md §9).
  // The bounds above keep the product inside int64.
  constexpr int64_t kMaxParameters = int64_t{1} << 37;  // 137 B parameters
  SMOL_CHECK(num_parameters() <= kMaxParameters, where, ": this architecture has ",
             num_parameters(), " parameters, more than the ", kMaxParameters,
             " this engine accepts (a wrong size in the config?)");
}

int64_t LlamaConfig::num_parameters() const {
  const int64_t C = hidden_size, F = intermediate_size;
  const int64_t per_layer = C * q_dim() + 2 * C * kv_dim() + q_dim() * C  // q k v o
                            + 3 * C * F                                   // gate up down
                            + 2 * C;                                      // two norms
  const int64_t embeddings = vocab_size * C * (tie_word_embeddings ? 1 : 2);
  return embeddings + num_hidden_layers * per_layer + C;
}

LlamaConfig smollm2_135m_config() {
  LlamaConfig c;
  c.hidden_size = 576;
  c.intermediate_size = 1536;
  c.num_hidden_layers = 30;
  c.num_attention_heads = 9;
  c.num_key_value_heads = 3;
  c.head_dim = 64;
  c.vocab_size = 49152;
  c.max_position_embeddings = 8192;
  c.rope_theta = 100000;
  c.rms_norm_eps = 1e-5;
  c.tie_word_embeddings = true;
  c.bos_token_id = 0;
  c.eos_token_id = 0;
  return c;
}

}  // namespace smol
