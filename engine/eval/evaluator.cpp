// Teacher-forced and generative evaluation (see evaluator.h).
#include "engine/eval/evaluator.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "common/error.h"
#include "data/prompt_render.h"
#include "engine/eval/answer_metrics.h"
#include "engine/eval/gsm8k_answer.h"
#include "model/generation.h"

namespace smol {

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Every rank's predictions, merged in example order (each carries its "index").
std::vector<nlohmann::json> gather_predictions(Communicator& comm,
                                               const std::vector<nlohmann::json>& mine) {
  const std::vector<std::string> all = comm.all_gather_host(nlohmann::json(mine).dump());
  std::vector<nlohmann::json> merged;
  for (const std::string& text : all)
    for (nlohmann::json& p : nlohmann::json::parse(text)) merged.push_back(std::move(p));
  std::sort(merged.begin(), merged.end(), [](const nlohmann::json& a, const nlohmann::json& b) {
    return a.at("index").get<size_t>() < b.at("index").get<size_t>();
  });
  return merged;
}

}  // namespace

double EvalResult::value(const std::string& name) const {
  for (const auto& [key, v] : metrics)
    if (key == name) return v;
  throw_error("evaluation has no metric '", name, "'");
}

EvalSet prepare_eval_set(const TextPipeline& pipeline, const Dataset& dataset,
                         const std::string& split) {
  EvalSet set;
  set.split = split;
  if (dataset.size() == 0) return set;
  const ResolvedFields fields = resolve_fields(dataset, pipeline.prompt);
  for (int64_t row = 0; row < dataset.size(); ++row) {
    const std::optional<RenderedExample> rendered =
        render_example(dataset, row, fields, pipeline.prompt);
    if (!rendered) continue;
    std::optional<TokenizedExample> tokens;
    std::vector<int32_t> prompt_ids;
    try {
      tokens = build_example(*pipeline.tokenizer, *rendered, pipeline.example);
      prompt_ids = encode_prompt(*pipeline.tokenizer, *rendered, pipeline.example);
    } catch (const Error& e) {
      throw_error(dataset.where(row), ": ", e.what());
    }
    if (!tokens) continue;
    check_example_fits_model(pipeline, *tokens, dataset.where(row));
    EvalExample example;
    example.where = dataset.where(row);
    example.tokens = std::move(*tokens);
    example.prompt_ids = std::move(prompt_ids);
    example.prompt = rendered->prompt;
    example.reference = rendered->response;
    example.reference_answer = gsm8k_reference_answer(rendered->response);
    if (!example.reference_answer)
      example.reference_answer = extract_generated_answer(rendered->response);
    set.examples.push_back(std::move(example));
  }
  return set;
}

EvalResult evaluate(LlamaModel& model, const Tokenizer& tokenizer, const EvalSet& set,
                    const EvalOptions& options, Communicator* comm) {
  SMOL_CHECK(options.batch_size > 0, "evaluation batch size must be positive");
  SMOL_CHECK(!set.examples.empty(), "the eval split '", set.split, "' gives no example");
  const auto start = std::chrono::steady_clock::now();
  EvalResult result;
  const size_t world = comm ? static_cast<size_t>(comm->world_size()) : 1;
  const size_t rank = comm ? static_cast<size_t>(comm->rank()) : 0;

  // ---- teacher-forced ----------------------------------------------------------------------
  double weighted_loss = 0;
  int64_t loss_rows = 0;
  int64_t tokens_seen = 0;
  std::vector<std::vector<int32_t>> all_labels, all_predictions;
  const size_t n = set.examples.size();
  const size_t batch = static_cast<size_t>(options.batch_size);
  for (size_t begin = rank * batch; begin < n; begin += world * batch) {
    const size_t end = std::min(n, begin + static_cast<size_t>(options.batch_size));
    std::vector<TokenRow> rows;
    for (size_t i = begin; i < end; ++i)
      rows.push_back(TokenRow{set.examples[i].tokens.input_ids, set.examples[i].tokens.labels});
    const EvalForward forward = model.forward_eval(rows);
    size_t offset = 0;
    for (const TokenRow& row : rows) {
      const size_t len = row.input_ids.size();
      all_labels.push_back(row.labels);
      all_predictions.emplace_back(
          forward.argmax.begin() + static_cast<std::ptrdiff_t>(offset),
          forward.argmax.begin() + static_cast<std::ptrdiff_t>(offset + len));
      offset += len;
      tokens_seen += static_cast<int64_t>(len);
    }
    SMOL_CHECK(offset == forward.argmax.size(), "evaluation: the model returned ",
               forward.argmax.size(), " predictions for ", offset, " tokens");
    // A NaN / Inf loss (non-finite weights, an overflow) must fail loudly, not become a
    // metric that reads "nan" in metrics.jsonl (docs/bad-inputs.md).
    SMOL_CHECK(std::isfinite(forward.loss_sum),
               "evaluation: the eval loss of the batch of examples ", begin, "..", end - 1,
               " of split '", set.split, "' is not finite (", forward.loss_sum,
               "): the weights hold NaN or Inf, or the computation overflowed");
    // HF: each batch's loss is its token mean; eval_loss averages them weighted by batch size.
    if (forward.supervised > 0) {
      const double batch_loss = forward.loss_sum / static_cast<double>(forward.supervised);
      weighted_loss += batch_loss * static_cast<double>(rows.size());
      loss_rows += static_cast<int64_t>(rows.size());
    }
  }
  const TokenAccuracyCounts shifted = token_accuracy(all_labels, all_predictions);
  const TokenAccuracyCounts legacy = token_accuracy_legacy(all_labels, all_predictions);
  const std::vector<AnswerRowResult> answers =
      answer_accuracy(all_labels, all_predictions, [&](const std::vector<int32_t>& ids) {
        return tokenizer.decode(ids, /*skip_special=*/true);
      });
  int64_t answers_correct = 0;
  for (const AnswerRowResult& a : answers) answers_correct += a.correct;
  TokenAccuracyCounts shifted_all = shifted, legacy_all = legacy;
  if (world > 1) {
    double sums[] = {weighted_loss,
                     static_cast<double>(loss_rows),
                     static_cast<double>(tokens_seen),
                     static_cast<double>(shifted.correct),
                     static_cast<double>(shifted.total),
                     static_cast<double>(legacy.correct),
                     static_cast<double>(legacy.total),
                     static_cast<double>(answers_correct)};
    comm->all_reduce_host(sums, ReduceOp::Sum);
    weighted_loss = sums[0];
    loss_rows = static_cast<int64_t>(sums[1]);
    tokens_seen = static_cast<int64_t>(sums[2]);
    shifted_all = {static_cast<int64_t>(sums[3]), static_cast<int64_t>(sums[4])};
    legacy_all = {static_cast<int64_t>(sums[5]), static_cast<int64_t>(sums[6])};
    answers_correct = static_cast<int64_t>(sums[7]);
  }

  result.metrics.emplace_back("eval_loss",
                              loss_rows > 0 ? weighted_loss / static_cast<double>(loss_rows) : 0.0);
  result.metrics.emplace_back("eval_token_accuracy", shifted_all.accuracy());
  result.metrics.emplace_back("eval_token_accuracy_legacy", legacy_all.accuracy());
  result.metrics.emplace_back("eval_answer_accuracy",
                              static_cast<double>(answers_correct) / static_cast<double>(n));

  // ---- generative --------------------------------------------------------------------------
  int64_t generated_tokens = 0;
  if (options.generative) {
    const size_t k = options.generative_samples < 0
                         ? n
                         : std::min(n, static_cast<size_t>(options.generative_samples));
    std::vector<size_t> mine;  // the examples this rank generates
    for (size_t i = rank; i < k; i += world) mine.push_back(i);
    std::vector<std::vector<int32_t>> prompts;
    // Generation starts from the untruncated prompt: it must leave room for one new token
    // (docs/bad-inputs.md); named by its row here rather than as generate()'s "prompt i".
    const int64_t context = model.config().max_position_embeddings;
    for (size_t i : mine) {
      const EvalExample& example = set.examples[i];
      SMOL_CHECK(static_cast<int64_t>(example.prompt_ids.size()) < context, example.where,
                 ": the prompt is ", example.prompt_ids.size(),
                 " tokens long; the model's context (max_position_embeddings) is ", context,
                 " tokens, which leaves no room to generate an answer");
      prompts.push_back(example.prompt_ids);
    }
    GenerationOptions gen;
    gen.max_new_tokens = options.max_new_tokens;
    gen.stop_tokens = options.stop_tokens;
    gen.stop_strings = options.stop_strings;
    gen.max_batch = static_cast<int32_t>(options.batch_size);
    const std::vector<GenerationResult> outputs = generate(model, prompts, gen, &tokenizer);
    int64_t correct = 0;
    for (size_t j = 0; j < mine.size(); ++j) {
      const size_t i = mine[j];
      const EvalExample& example = set.examples[i];
      const std::string& text = outputs[j].text;
      generated_tokens += static_cast<int64_t>(outputs[j].tokens.size());
      Gsm8kScore score;
      if (example.reference_answer)
        score = score_gsm8k(text, *example.reference_answer);
      else
        score.extracted = extract_generated_answer(text);
      correct += score.correct;
      // Predictions are kept by example index (the first predictions_kept of the whole set).
      if (options.predictions_kept < 0 || static_cast<int64_t>(i) < options.predictions_kept) {
        nlohmann::json p;
        p["index"] = i;
        p["question"] = example.prompt;
        p["reference"] = example.reference;
        p["reference_answer"] = example.reference_answer ? nlohmann::json(*example.reference_answer)
                                                         : nlohmann::json(nullptr);
        p["generated"] = text;
        p["extracted"] =
            score.extracted ? nlohmann::json(*score.extracted) : nlohmann::json(nullptr);
        p["correct"] = score.correct;
        p["stop"] = stop_reason_name(outputs[j].reason);
        result.predictions.push_back(std::move(p));
      }
    }
    if (world > 1) {
      double sums[] = {static_cast<double>(correct), static_cast<double>(generated_tokens)};
      comm->all_reduce_host(sums, ReduceOp::Sum);
      correct = static_cast<int64_t>(sums[0]);
      generated_tokens = static_cast<int64_t>(sums[1]);
      result.predictions = gather_predictions(*comm, result.predictions);
    }
    result.metrics.emplace_back(
        "eval_gsm8k_accuracy", k > 0 ? static_cast<double>(correct) / static_cast<double>(k) : 0.0);
    result.metrics.emplace_back("eval_generated_samples", static_cast<double>(k));
    result.metrics.emplace_back("eval_generated_tokens", static_cast<double>(generated_tokens));
  }
  double runtime = seconds_since(start);
  if (world > 1) comm->all_reduce_host(std::span<double>(&runtime, 1), ReduceOp::Max);
  result.metrics.emplace_back("eval_samples", static_cast<double>(n));
  result.metrics.emplace_back("eval_runtime", runtime);
  result.metrics.emplace_back(
      "eval_tokens_per_second",
      runtime > 0 ? static_cast<double>(tokens_seen + generated_tokens) / runtime : 0.0);
  return result;
}

}  // namespace smol
