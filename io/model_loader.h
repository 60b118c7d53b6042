// load_model: one entry point for every weight source the engine accepts (docs/design.md §3):
// a .gguf file, an HF model directory (config.json + model.safetensors or a sharded index,
// optional tokenizer.json), or a hub repo id resolved through the local HF cache.
// The result is always in the engine's canonical form: HF names, HF layout (GGUF q/k rows
// un-permuted, docs/formats.md §3), fp32 values, tied embeddings without lm_head.weight.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "data/bpe_spec.h"
#include "io/host_tensor.h"
#include "io/llama_config.h"

namespace smol {

struct LoadedModel {
  std::string source;  // the resolved file or directory
  std::string format;  // "gguf" or "safetensors"
  LlamaConfig config;
  HostTensorMap weights;            // HF names → fp32 tensors in HF layout
  QuantizedTensorMap quantized;     // with LoadOptions::keep_quantized: those held as blocks
  std::optional<BpeSpec> bpe;       // from GGUF metadata (byte-level BPE only)
  std::string tokenizer_json_path;  // HF dirs: <dir>/tokenizer.json if present, else ""
  std::string chat_template;        // GGUF tokenizer.chat_template or tokenizer_config.json

  int64_t num_parameters() const;  // Σ numel over `weights` and `quantized`
};

struct LoadOptions {
  // Keep the base weights of the 7 projections, the embedding and lm_head quantised when the
  // GGUF file stores them as Q8_0, Q4_0, Q4_1 or Q4_K (LoadedModel::quantized, not `weights`);
  // every other tensor (norms, other formats, safetensors) is dequantised as usual
  // (docs/cpu-speed.md "Quantised inference").
  bool keep_quantized = false;
};

// Throws smol::Error naming the path (and tensor/key) for anything missing or malformed,
// including a NaN or Inf in any weight (check_weights_finite).
LoadedModel load_model(const std::string& path_or_hub_name, const LoadOptions& options = {});

// Moves every tensor of `model.quantized` into `model.weights` as fp32 (for a backend without
// quantised kernels: the same values the default load gives).
void dequantize_held(LoadedModel& model);

// The tensors the quantised matmul can hold: the projections' base weights, the embedding and
// lm_head (norms stay fp32).
bool quantizable_weight_name(const std::string& hf_name);

// Throws smol::Error naming `source`, the tensor and the element's coordinates at the first
// non-finite value (one linear scan; ~0.1 s for SmolLM2-135M, docs/design.md §9).
void check_weights_finite(const HostTensorMap& weights, const std::string& source);
void check_weights_finite(const QuantizedTensorMap& weights, const std::string& source);

// The HF names and shapes a Llama with this config has (lm_head only when untied), in
// layer order: embed_tokens, per layer input_layernorm q k v o post_attention_layernorm gate
// up down, norm, [lm_head].
std::vector<std::pair<std::string, Shape>> expected_llama_tensors(const LlamaConfig& config);

// GGUF → HF q/k row order (docs/formats.md §3): HF row (h, half·j + i) = GGUF row (h, 2i + j) for
// i < half = head_size/2, j ∈ {0, 1}; whole rows of `cols` values move. `rows` = n_heads ·
// head_size. The forward direction (HF → GGUF) is permute_rows_hf_to_gguf.
std::vector<float> unpermute_rows_gguf_to_hf(const std::vector<float>& gguf_rows, int64_t rows,
                                             int64_t cols, int64_t n_heads);
std::vector<float> permute_rows_hf_to_gguf(const std::vector<float>& hf_rows, int64_t rows,
                                           int64_t cols, int64_t n_heads);

}  // namespace smol
