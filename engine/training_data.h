// From a run config's `dataset` and `tokenizer` sections to token rows for the model
// (docs/design.md §5, docs/seed-behaviour.md §2): the tokenizer (tokenizer.name_or_path, else the
// model's), the EOS / pad ids, the split (HF slicing over the resolved files), rendering, tokenised
// examples with truncation and masking, and collation. The gradient pass of lora_ga / lora_ns
// (docs/seed-behaviour.md §4) takes its batches from here.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/collate.h"
#include "data/dataset.h"
#include "data/example_builder.h"
#include "data/prompt_render.h"
#include "data/tokenizer.h"
#include "engine/config/run_config.h"
#include "model/llama_model.h"

namespace smol {

struct TextPipeline {
  std::unique_ptr<Tokenizer> tokenizer;
  PromptFormat prompt;
  ExampleFormat example;  // max_length and eos_id resolved
  int32_t pad_id = 0;     // collation pad (docs/seed-behaviour.md §2.7)
  int64_t model_vocab = 0;
  int64_t max_positions = 0;  // the model's max_position_embeddings (0 = unbounded)
};

// Every id of `example` is a token of the model, and the example fits the model's context
// (pipeline.max_positions): rows are truncated to max_length as the seed does (§2.5), so this
// refuses only what that leaves unbounded — max_length 0, or a max_length larger than the
// context. Throws naming `where` (file:line: row N) and the limit.
void check_example_fits_model(const TextPipeline& pipeline, const TokenizedExample& example,
                              const std::string& where);

// The EOS and collation pad ids of a run — the one place they are resolved (docs/seed-behaviour.md:
// docs/seed-behaviour.md §2.7, where pad := EOS because base SmolLM2 has no pad):
//   eos = tokenizer.eos_token's id, else the tokenizer's EOS, else the model's eos_token_id,
//         else -1;
//   pad = tokenizer.pad_token's id, else the tokenizer's pad, else the model's pad_token_id,
//         else eos, else 0.
// `tokenizer` may be null (dump-step on a model directory without one): the config's token
// texts cannot be looked up then, and the model's ids decide. `model` may be null (the text
// pipeline, before a model exists). Throws naming the config when a configured token text is
// not a token of the tokenizer.
struct SpecialIds {
  int32_t eos_id = -1;
  int32_t pad_id = 0;
};
SpecialIds resolve_special_ids(const RunConfig& config, const Tokenizer* tokenizer,
                               const LlamaConfig* model);

// Loads the tokenizer and resolves EOS and pad (resolve_special_ids, no model) and max_length
// (dataset.max_length, else tokenizer.model_max_length, else model_max_positions). Throws
// naming the config when the tokenizer's vocabulary does not fit the model's.
TextPipeline make_text_pipeline(const RunConfig& config, int64_t model_vocab,
                                int64_t model_max_positions);

// The rows a split spec ("train", "train[:10000]", "train[10000:12000]+test") selects, in file
// order (no shuffle), from dataset.data_files or the files dataset.name resolves to under the
// data root (config.data_dir, $SMOLENGINE_DATA, data/, ../shared/data).
Dataset load_dataset_split(const RunConfig& config, const std::string& split_spec);

// Renders and tokenises rows [0, dataset.size()) in order until `limit` examples exist (-1 =
// all), skipping dropped rows (null target, empty completion after truncation).
std::vector<TokenizedExample> build_examples(const TextPipeline& pipeline, const Dataset& dataset,
                                             int64_t limit = -1);

// Collates one batch and returns it as model rows (padded ids and labels; padding sits after
// every real token of its row, so the causal model's results on real tokens are unchanged).
std::vector<TokenRow> collate_token_rows(const std::vector<TokenizedExample>& examples,
                                         int64_t pad_to_multiple_of, int32_t pad_id);

// docs/seed-behaviour.md §4 gradient pass: the first loraga.num_samples examples of the train split
// (no shuffle; fewer when the split has fewer), in batches of loraga.batch_size (the last one
// may be short), each collated with training.pad_to_multiple_of.
std::vector<std::vector<TokenRow>> gradient_pass_batches(const RunConfig& config,
                                                         int64_t model_vocab,
                                                         int64_t model_max_positions);

}  // namespace smol
