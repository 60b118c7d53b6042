// `smolengine tokenize --model M --jsonl [--decode] [--no-parse-special] [--skip-special]`:
// a filter over stdin. Encode (default): one JSON string per line in, one JSON array of ids
// per line out. --decode: one JSON array of ids per line in, one JSON string per line out.
// M is a .gguf (only its tokenizer metadata is read, no weights are dequantised), a
// tokenizer.json, an HF model directory (tokenizer.json [+ tokenizer_config.json for the
// special ids], or tokenizer.model), or a sentencepiece .model. A bad line is an error naming
// stdin:LINE.
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "common/error.h"
#include "common/quote.h"
#include "data/bounded_json.h"
#include "engine/commands.h"
#include "io/tokenizer_loader.h"

namespace smol {
namespace {

using nlohmann::json;

// A line is a string or an array of ids (depth 1); deeper nesting is refused while parsing
// (data/bounded_json.h), so no deep value is ever built.
json parse_line(const std::string& line, size_t line_number) {
  try {
    return parse_bounded_json(line, "stdin:" + std::to_string(line_number));
  } catch (const json::exception& e) {
    // nlohmann's message quotes the last token read, which may be a whole 1 MB string.
    throw_error("stdin:", line_number, ": malformed JSON: ", quoted_excerpt(e.what(), 200));
  }
}

struct TokenizeOptions {
  std::string model;
  bool jsonl = false;
  bool decode = false;
  bool no_parse_special = false;
  bool skip_special = false;
};

void run_tokenize(const TokenizeOptions& options) {
  SMOL_CHECK(options.jsonl, "tokenize: only --jsonl input is supported; pass --jsonl");
  const std::unique_ptr<Tokenizer> tokenizer = load_tokenizer(options.model);
  std::ios::sync_with_stdio(false);
  std::string line;
  size_t line_number = 0;
  while (std::getline(std::cin, line)) {
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    const json value = parse_line(line, line_number);
    if (options.decode) {
      SMOL_CHECK(value.is_array(), "stdin:", line_number, ": expected a JSON array of ids, not ",
                 value.type_name());
      std::vector<int32_t> ids;
      for (const json& id : value) {
        // Range-checked before narrowing: 18446744073709551615 must not wrap to -1.
        const int64_t vocab = tokenizer->vocab_size();
        const bool in_vocab =
            id.is_number_unsigned()  ? id.get<uint64_t>() < static_cast<uint64_t>(vocab)
            : id.is_number_integer() ? id.get<int64_t>() >= 0 && id.get<int64_t>() < vocab
                                     : false;
        SMOL_CHECK(in_vocab, "stdin:", line_number, ": id ", quoted_excerpt(id.dump()),
                   " is not a token id in [0, ", vocab, ")");
        ids.push_back(static_cast<int32_t>(id.get<int64_t>()));
      }
      std::cout << json(tokenizer->decode(ids, options.skip_special))
                       .dump(-1, ' ', false, json::error_handler_t::replace)
                << '\n';
    } else {
      SMOL_CHECK(value.is_string(), "stdin:", line_number, ": expected a JSON string, not ",
                 value.type_name());
      std::vector<int32_t> ids;
      try {
        ids = tokenizer->encode(value.get<std::string>(), !options.no_parse_special);
      } catch (const Error& e) {
        throw_error("stdin:", line_number, ": ", e.what());
      }
      std::cout << json(ids).dump() << '\n';
    }
  }
  std::cout.flush();
}

}  // namespace

void add_tokenize_command(CLI::App& app) {
  auto options = std::make_shared<TokenizeOptions>();
  CLI::App* cmd =
      app.add_subcommand("tokenize", "Text <-> token ids, one JSON value per stdin line (--jsonl)");
  cmd->add_option("--model", options->model,
                  "A .gguf, tokenizer.json, sentencepiece .model or HF model directory")
      ->required();
  cmd->add_flag("--jsonl", options->jsonl,
                "Read one JSON string per line, write one JSON array of ids per line");
  cmd->add_flag("--decode", options->decode, "Reverse: JSON arrays of ids in, JSON strings out");
  cmd->add_flag("--no-parse-special", options->no_parse_special,
                "Tokenise special-token text such as <|im_end|> as plain text");
  cmd->add_flag("--skip-special", options->skip_special, "With --decode: drop special tokens");
  cmd->callback([options]() { run_tokenize(*options); });
}

}  // namespace smol
