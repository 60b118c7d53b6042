// Evaluation of a model on a prepared eval split (docs/design.md §6, docs/seed-behaviour.md §3).
//
// Teacher-forced (every example, batches of evaluation.batch_size, no dropout):
//   eval_loss                  HF's number: the token-mean CE of each batch, averaged over
//                              batches weighted by their number of examples
//   eval_token_accuracy        argmax at position t−1 against label t (the correct shift)
//   eval_token_accuracy_legacy the seed's unshifted comparison (B1)
//   eval_answer_accuracy       the seed's teacher-forced transcript metric (engine/eval/
//                              answer_metrics.h), exactly as it computed it
// Generative (evaluation.generative; the first evaluation.generative_samples examples):
//   eval_gsm8k_accuracy        greedy decoding with the KV cache from each example's prompt,
//                              stopping at EOS or a stop string; the answer read by
//                              engine/eval/gsm8k_answer.h and compared numerically with the
//                              reference's "#### N"
// plus eval_samples, eval_runtime, eval_tokens_per_second (teacher-forced tokens + generated
// tokens over the wall time), eval_generated_tokens.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "data/dataset.h"
#include "data/example_builder.h"
#include "data/tokenizer.h"
#include "engine/training_data.h"
#include "kernels/communicator.h"
#include "model/llama_model.h"

namespace smol {

struct EvalExample {
  TokenizedExample tokens;          // teacher-forced input
  std::vector<int32_t> prompt_ids;  // generative input (the prompt half, never truncated
                                    // from the end)
  std::string prompt;               // rendered prompt text
  std::string reference;            // rendered response text
  std::optional<std::string> reference_answer;  // "#### N" (else "The answer is: N") number
  std::string where;                            // "file:line: row N", for messages
};

struct EvalSet {
  std::vector<EvalExample> examples;
  std::string split;  // for messages
};

// Renders and tokenises every usable row of `dataset` (as training does), plus each prompt
// for generation.
EvalSet prepare_eval_set(const TextPipeline& pipeline, const Dataset& dataset,
                         const std::string& split);

struct EvalOptions {
  int64_t batch_size = 8;
  bool generative = true;
  int64_t generative_samples = -1;  // -1 = all
  int32_t max_new_tokens = 256;
  std::vector<std::string> stop_strings;
  std::vector<int32_t> stop_tokens;
  int64_t predictions_kept = -1;  // how many predictions to return (-1 = all)
};

struct EvalResult {
  std::vector<std::pair<std::string, double>> metrics;  // "eval_*" in a fixed order
  std::vector<nlohmann::json> predictions;  // question, reference, generated, extracted, correct
  double value(const std::string& name) const;  // throws naming it when absent
};

// With a communicator of several ranks (data parallelism) the work is shared: rank r takes the
// teacher-forced batches j ≡ r (mod world) — the same batches one process forms, so every
// metric is the one-process number up to summation order — and generates the examples
// i ≡ r (mod world); sums are all-reduced and every rank returns the same metrics, with the
// predictions of all ranks in example order.
EvalResult evaluate(LlamaModel& model, const Tokenizer& tokenizer, const EvalSet& set,
                    const EvalOptions& options, Communicator* comm = nullptr);

}  // namespace smol
