// `smolengine generate --model M --prompt TEXT [--chat] [--max-new-tokens N] [--temperature T]
//  [--top-p P] [--seed S] [--stop STR]... [--raw] [--device D] [--weights fp32|quantized]`
// Loads M (a .gguf, an HF model directory or a hub name, via load_model), encodes the prompt
// (with --chat: the Instruct ChatML template with the generation prompt, docs/formats.md §1) and
// decodes with the KV cache (model/generation.h). Greedy by default (--temperature 0).
// Stops at the model's eos (2 for SmolLM2-Instruct), at id 0 when it is a special token
// (<|endoftext|>), at any --stop string, after N tokens, or when prompt + continuation fills
// the model's context (max_position_embeddings). N defaults to 256, cut to what the context
// leaves; a given N must be below the context, and a prompt that fills it is refused
// (docs/bad-inputs.md).
// stdout gets the continuation only (streamed as it is generated; with --stop it is printed
// once complete, so a stop string is never shown); without --raw a final newline is added and
// the prompt, token counts and timings go to stderr. --weights quantized keeps a GGUF's Q8_0 /
// Q4_0 / Q4_1 / Q4_K weights quantised on backends with int8 kernels (cpu; docs/cpu-speed.md).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "data/bpe_tokenizer.h"
#include "data/chat_template.h"
#include "data/sentencepiece_tokenizer.h"
#include "data/tokenizer_json.h"
#include "engine/cli/integer_option.h"
#include "engine/commands.h"
#include "engine/model_setup.h"
#include "io/model_loader.h"
#include "model/generation.h"

namespace smol {
namespace {

namespace fs = std::filesystem;

struct GenerateOptions {
  std::string model;
  std::string prompt;
  bool chat = false;
  int32_t max_new_tokens = -1;  // -1: kDefaultMaxNewTokens, or what the context leaves
  float temperature = 0.0f;
  float top_p = 1.0f;
  uint64_t seed = 0;
  std::vector<std::string> stops;
  bool raw = false;
  std::string device = "auto";
  std::string weights = "fp32";  // fp32 | quantized (model.weights_in_memory)
};

// The tokenizer that came with the weights: GGUF metadata, tokenizer.json (+ config), or a
// sentencepiece tokenizer.model next to config.json.
std::unique_ptr<Tokenizer> tokenizer_of(const LoadedModel& loaded) {
  if (loaded.bpe) return std::make_unique<BpeTokenizer>(*loaded.bpe, loaded.source);
  if (!loaded.tokenizer_json_path.empty()) {
    BpeSpec spec = read_tokenizer_json(loaded.tokenizer_json_path);
    const fs::path config =
        fs::path(loaded.tokenizer_json_path).parent_path() / "tokenizer_config.json";
    if (fs::exists(config)) read_hf_tokenizer_config(config.string(), spec);
    return std::make_unique<BpeTokenizer>(spec, loaded.tokenizer_json_path);
  }
  const fs::path dir = fs::is_directory(loaded.source) ? fs::path(loaded.source)
                                                       : fs::path(loaded.source).parent_path();
  if (fs::exists(dir / "tokenizer.model"))
    return std::make_unique<SentencePieceTokenizer>((dir / "tokenizer.model").string());
  throw_error(loaded.source, ": no tokenizer found (GGUF tokenizer metadata, tokenizer.json or ",
              "tokenizer.model)");
}

constexpr int32_t kDefaultMaxNewTokens = 256;

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

void run_generate(const GenerateOptions& o) {
  SamplingParams{o.temperature, o.top_p, o.seed}.validate();  // before the slow model load
  const auto t_load = std::chrono::steady_clock::now();
  LoadedModel loaded = load_model(o.model, LoadOptions{o.weights == "quantized"});
  // Bounded by the context before anything is allocated (docs/bad-inputs.md): HF transformers
  // lets a RoPE model run past max_position_embeddings with degrading output; we cannot size a
  // KV cache for an unbounded length, so, as llama.cpp stops at n_ctx, a budget that no prompt
  // could use is refused and a prompt + budget past the context stops at the context.
  const int64_t context = loaded.config.max_position_embeddings;
  const bool budget_given = o.max_new_tokens >= 0;
  SMOL_CHECK(!budget_given || o.max_new_tokens < context, "--max-new-tokens ", o.max_new_tokens,
             " does not fit the model's context: ", o.model, " has max_position_embeddings ",
             context, " (prompt + new tokens must fit it)");
  const std::unique_ptr<Tokenizer> tokenizer = tokenizer_of(loaded);
  std::unique_ptr<Backend> backend = make_backend(o.device);
  if (!supports_all_quantized(*backend, loaded.quantized)) {
    std::fprintf(stderr, "note: the %s backend has no quantised kernels; weights dequantised\n",
                 backend->name().c_str());
    dequantize_held(loaded);
  }
  LlamaModel model(*backend, loaded.config, TrainMode::Frozen, std::nullopt,
                   FrozenWeights::ActivationDtype, &loaded.quantized);
  model.load_weights(loaded.weights);
  loaded.weights.clear();  // the host copies are no longer needed
  loaded.quantized.clear();
  const double load_s = seconds_since(t_load);

  const std::string text =
      o.chat ? render_chatml({ChatMessage{"user", o.prompt}}, /*add_generation_prompt=*/true)
             : o.prompt;
  const std::vector<int32_t> ids = tokenizer->encode(text, /*parse_special=*/true);
  SMOL_CHECK(!ids.empty(), "the prompt encodes to no tokens");
  SMOL_CHECK(static_cast<int64_t>(ids.size()) < context, "the prompt is ", ids.size(),
             " tokens long; the model's context (max_position_embeddings of ", o.model, ") is ",
             context, " tokens, which leaves no room for a new token");
  const int64_t room = context - static_cast<int64_t>(ids.size());
  if (budget_given && o.max_new_tokens > room)
    std::fprintf(stderr,
                 "warning: prompt (%zu tokens) + --max-new-tokens %d exceed the context (%lld); "
                 "generation stops after %lld tokens\n",
                 ids.size(), o.max_new_tokens, static_cast<long long>(context),
                 static_cast<long long>(room));

  GenerationOptions g;
  // The default budget silently fits what the context leaves; a given one was checked above.
  g.max_new_tokens = budget_given
                         ? o.max_new_tokens
                         : static_cast<int32_t>(std::min<int64_t>(kDefaultMaxNewTokens, room));
  g.sampling = {o.temperature, o.top_p, o.seed};
  g.stop_strings = o.stops;
  for (int64_t id : {loaded.config.eos_token_id, static_cast<int64_t>(tokenizer->eos_id())})
    if (id >= 0) g.stop_tokens.push_back(static_cast<int32_t>(id));
  if (tokenizer->vocab_size() > 0 && tokenizer->is_special(0)) g.stop_tokens.push_back(0);

  if (!o.raw) {
    std::fprintf(stderr, "model: %s (%s, %s backend, %s weights, loaded in %.2f s)\n",
                 loaded.source.c_str(), loaded.format.c_str(), backend->name().c_str(),
                 o.weights.c_str(), load_s);
    std::fprintf(stderr, "prompt: %zu tokens%s\n", ids.size(), o.chat ? " (ChatML)" : "");
  }
  // Stream the text as tokens arrive unless a stop string may still cut it.
  StreamingDecoder stream(*tokenizer, /*skip_special=*/true);
  const bool streaming = o.stops.empty();
  const auto t_start = std::chrono::steady_clock::now();
  double first_token_s = 0;
  bool first = true;
  g.on_token = [&](size_t, int32_t token) {
    if (first) first_token_s = seconds_since(t_start), first = false;
    if (!streaming) return;
    const std::string piece = stream.push(token);
    std::fwrite(piece.data(), 1, piece.size(), stdout);
    std::fflush(stdout);
  };
  const GenerationResult result = generate(model, {ids}, g, tokenizer.get())[0];
  const double total_s = seconds_since(t_start);
  const std::string tail = streaming ? stream.flush() : result.text;
  std::fwrite(tail.data(), 1, tail.size(), stdout);
  if (!o.raw) {
    std::fputc('\n', stdout);
    std::fflush(stdout);
    const size_t n = result.tokens.size();
    std::fprintf(stderr,
                 "generated %zu tokens, stop: %s; prefill %.3f s (%.1f tokens/s), decode %.1f "
                 "tokens/s\n",
                 n, stop_reason_name(result.reason), first_token_s,
                 first_token_s > 0 ? ids.size() / first_token_s : 0.0,
                 n > 1 && total_s > first_token_s ? (n - 1) / (total_s - first_token_s) : 0.0);
  }
  std::fflush(stdout);
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto options = std::make_shared<GenerateOptions>();
  CLI::App* cmd = app.add_subcommand("generate", "Generate a continuation of a prompt (KV cache)");
  cmd->add_option("--model", options->model, "a .gguf file, an HF model directory or a hub name")
      ->required();
  cmd->add_option("--prompt", options->prompt, "the prompt text")->required();
  cmd->add_flag("--chat", options->chat,
                "wrap the prompt in the ChatML template (system turn + generation prompt)");
  cmd->add_option("--max-new-tokens", options->max_new_tokens,
                  "at most N new tokens (default 256, or what the context leaves); N must be "
                  "below the model's context")
      ->check(integer_in(0, std::numeric_limits<int32_t>::max()));
  cmd->add_option("--temperature", options->temperature, "0 = greedy (default)");
  cmd->add_option("--top-p", options->top_p, "nucleus sampling mass in (0, 1] (1)");
  cmd->add_option("--seed", options->seed, "sampling seed (0)")->check(unsigned_integer());
  cmd->add_option("--stop", options->stops, "stop when the text contains STR (repeatable)");
  cmd->add_flag("--raw", options->raw, "print only the continuation on stdout, nothing else");
  cmd->add_option("--device", options->device, "auto, cpu, cuda, cuda-emu (auto)");
  cmd->add_option("--weights", options->weights,
                  "fp32 (dequantise at load, default) or quantized (keep GGUF Q8_0/Q4_0/Q4_1/Q4_K "
                  "weights quantised: int8 dot products on cpu)")
      ->check(CLI::IsMember({"fp32", "quantized"}));
  cmd->callback([options] { run_generate(*options); });
}

}  // namespace smol
