// The run config's text pipeline (see training_data.h).
#include "engine/training_data.h"

#include <algorithm>

#include "common/error.h"
#include "common/quote.h"
#include "data/dataset_resolve.h"
#include "data/split_slice.h"
#include "io/tokenizer_loader.h"

namespace smol {

namespace {

int32_t token_id_of(const Tokenizer& tokenizer, const std::string& text, const std::string& key,
                    const std::string& where) {
  const int32_t id = tokenizer.token_to_id(text);
  SMOL_CHECK(id >= 0, where, ": ", key, " ", quoted_excerpt(text),
             " is not a token of the tokenizer");
  return id;
}

}  // namespace

SpecialIds resolve_special_ids(const RunConfig& config, const Tokenizer* tokenizer,
                               const LlamaConfig* model) {
  SpecialIds ids;
  const TokenizerSection& section = config.tokenizer;
  if (tokenizer && section.eos_token)
    ids.eos_id = token_id_of(*tokenizer, *section.eos_token, "tokenizer.eos_token", config.path);
  else if (tokenizer)
    ids.eos_id = tokenizer->eos_id();
  else if (model)
    ids.eos_id = static_cast<int32_t>(model->eos_token_id);
  if (tokenizer && section.pad_token)
    ids.pad_id = token_id_of(*tokenizer, *section.pad_token, "tokenizer.pad_token", config.path);
  else if (tokenizer && tokenizer->pad_id() >= 0)
    ids.pad_id = tokenizer->pad_id();
  else if (model && model->pad_token_id >= 0)
    ids.pad_id = static_cast<int32_t>(model->pad_token_id);
  else
    ids.pad_id = ids.eos_id >= 0 ? ids.eos_id : 0;
  return ids;
}

TextPipeline make_text_pipeline(const RunConfig& config, int64_t model_vocab,
                                int64_t model_max_positions) {
  const std::string source = !config.tokenizer.name_or_path.empty() ? config.tokenizer.name_or_path
                                                                    : config.model.name_or_path;
  SMOL_CHECK(!source.empty(), config.path,
             ": no tokenizer: set tokenizer.name_or_path (model.init: random has no "
             "model.name_or_path to take it from)");
  TextPipeline pipeline;
  pipeline.tokenizer = load_tokenizer(source);
  const Tokenizer& tokenizer = *pipeline.tokenizer;
  SMOL_CHECK(tokenizer.vocab_size() <= model_vocab, config.path, ": the tokenizer ", source,
             " has ", tokenizer.vocab_size(), " tokens but the model's vocabulary is ",
             model_vocab);
  pipeline.model_vocab = model_vocab;
  pipeline.max_positions = model_max_positions;
  pipeline.prompt = config.dataset.prompt;
  pipeline.example = config.dataset.example;
  const SpecialIds ids = resolve_special_ids(config, &tokenizer, /*model=*/nullptr);
  pipeline.example.eos_id = ids.eos_id;
  pipeline.pad_id = ids.pad_id;
  pipeline.example.max_length =
      config.dataset.max_length ? *config.dataset.max_length
                                : config.tokenizer.model_max_length.value_or(model_max_positions);
  return pipeline;
}

Dataset load_dataset_split(const RunConfig& config, const std::string& split_spec) {
  DatasetFiles files;
  if (!config.dataset.data_files.empty()) {
    files.name = config.path + ": dataset.data_files";
    files.splits = config.dataset.data_files;
  } else {
    SMOL_CHECK(!config.dataset.name.empty(), config.path,
               ": dataset.name is required to read training data");
    files = resolve_dataset(config.dataset.name, config.dataset.subset, config.data_dir);
  }
  // Every part of the spec names a split; read each file once, only when needed.
  std::map<std::string, Dataset> loaded;
  std::map<std::string, int64_t> sizes;
  for (const SplitSlice& slice : parse_split_spec(split_spec)) {
    if (loaded.count(slice.split)) continue;
    const auto file = files.splits.find(slice.split);
    if (file == files.splits.end()) continue;  // resolve_split_spec names it with the choices
    loaded[slice.split] = read_dataset_file(file->second);
    // Named here, by file: otherwise it surfaces as "split spec ... selects no row".
    SMOL_CHECK(loaded[slice.split].size() > 0, file->second,
               ": the dataset file holds no rows (split '", slice.split, "')");
  }
  for (const auto& [split, file] : files.splits)
    sizes[split] = loaded.count(split) ? loaded[split].size() : 0;
  std::vector<RowRange> ranges;
  try {
    ranges = resolve_split_spec(split_spec, sizes);
  } catch (const Error& e) {
    throw_error(config.path, ": dataset '", files.name, "': ", e.what());
  }
  Dataset out;
  for (const RowRange& range : ranges) {
    std::vector<int64_t> rows(static_cast<size_t>(range.end - range.begin));
    for (int64_t i = range.begin; i < range.end; ++i)
      rows[static_cast<size_t>(i - range.begin)] = i;
    append_dataset(out, loaded.at(range.split).select(rows));
  }
  return out;
}

void check_example_fits_model(const TextPipeline& pipeline, const TokenizedExample& example,
                              const std::string& where) {
  for (int32_t id : example.input_ids)
    SMOL_CHECK(id >= 0 && id < pipeline.model_vocab, where, ": token id ", id,
               " is outside the model's vocabulary (", pipeline.model_vocab, ")");
  const auto length = static_cast<int64_t>(example.input_ids.size());
  SMOL_CHECK(pipeline.max_positions <= 0 || length <= pipeline.max_positions, where,
             ": the example is ", length,
             " tokens long, more than the model's context (max_position_embeddings ",
             pipeline.max_positions, "); set dataset.max_length to at most ",
             pipeline.max_positions, " to truncate it (it is ", pipeline.example.max_length, ")");
}

std::vector<TokenizedExample> build_examples(const TextPipeline& pipeline, const Dataset& dataset,
                                             int64_t limit) {
  std::vector<TokenizedExample> examples;
  if (dataset.size() == 0 || limit == 0) return examples;
  const ResolvedFields fields = resolve_fields(dataset, pipeline.prompt);
  for (int64_t row = 0; row < dataset.size(); ++row) {
    if (limit >= 0 && static_cast<int64_t>(examples.size()) >= limit) break;
    const std::optional<RenderedExample> rendered =
        render_example(dataset, row, fields, pipeline.prompt);
    if (!rendered) continue;
    std::optional<TokenizedExample> example;
    try {
      example = build_example(*pipeline.tokenizer, *rendered, pipeline.example);
    } catch (const Error& e) {
      throw_error(dataset.where(row), ": ", e.what());
    }
    if (!example) continue;
    check_example_fits_model(pipeline, *example, dataset.where(row));
    examples.push_back(std::move(*example));
  }
  return examples;
}

std::vector<TokenRow> collate_token_rows(const std::vector<TokenizedExample>& examples,
                                         int64_t pad_to_multiple_of, int32_t pad_id) {
  const CollatedBatch batch = collate_examples(examples, pad_to_multiple_of, pad_id);
  std::vector<TokenRow> rows(static_cast<size_t>(batch.rows));
  for (int64_t r = 0; r < batch.rows; ++r) {
    const auto begin = static_cast<std::ptrdiff_t>(r * batch.length);
    const auto end = begin + static_cast<std::ptrdiff_t>(batch.length);
    rows[static_cast<size_t>(r)].input_ids.assign(batch.input_ids.begin() + begin,
                                                  batch.input_ids.begin() + end);
    rows[static_cast<size_t>(r)].labels.assign(batch.labels.begin() + begin,
                                               batch.labels.begin() + end);
  }
  return rows;
}

std::vector<std::vector<TokenRow>> gradient_pass_batches(const RunConfig& config,
                                                         int64_t model_vocab,
                                                         int64_t model_max_positions) {
  const TextPipeline pipeline = make_text_pipeline(config, model_vocab, model_max_positions);
  const Dataset train = load_dataset_split(config, config.dataset.train_split);
  const std::vector<TokenizedExample> examples =
      build_examples(pipeline, train, config.loraga.num_samples);
  SMOL_CHECK(!examples.empty(), config.path, ": the train split '", config.dataset.train_split,
             "' gives no example for the lora_ga / lora_ns gradient pass");
  std::vector<std::vector<TokenRow>> batches;
  const size_t batch_size = static_cast<size_t>(config.loraga.batch_size);
  for (size_t begin = 0; begin < examples.size(); begin += batch_size) {
    const size_t end = std::min(examples.size(), begin + batch_size);
    batches.push_back(collate_token_rows(
        std::vector<TokenizedExample>(examples.begin() + static_cast<std::ptrdiff_t>(begin),
                                      examples.begin() + static_cast<std::ptrdiff_t>(end)),
        config.training.pad_to_multiple_of, pipeline.pad_id));
  }
  return batches;
}

}  // namespace smol
