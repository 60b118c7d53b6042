// parse_error_message (see parse_error_message.h).
#include "engine/cli/parse_error_message.h"

#include "common/quote.h"

namespace smol {

namespace {

// CLI11's text with its newlines folded and any long run cut: quoted_excerpt's escaping and
// cut, without its surrounding quotes.
std::string one_line(const std::string& text) {
  std::string folded = text;
  for (char& c : folded)
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  while (!folded.empty() && folded.back() == ' ') folded.pop_back();
  std::string quoted = quoted_excerpt(folded, 300);
  const size_t close = quoted.rfind('"');
  return quoted.substr(1, close - 1) + quoted.substr(close + 1);
}

// The subcommand the user named (the first argument that is not an option), or null.
const CLI::App* named_subcommand(const CLI::App& app, const std::string& name) {
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; }))
    if (sub->check_name(name)) return sub;
  return nullptr;
}

}  // namespace

std::string parse_error_message(const CLI::App& app, const CLI::ParseError& error, int argc,
                                const char* const* argv) {
  const std::string program = "smolengine";
  if (argc > 1 && argv[1][0] != '-' && !named_subcommand(app, argv[1]))
    return "unknown command " + quoted_excerpt(argv[1]) + "; run " + program + " --help";
  std::string help = program + " --help";
  if (argc > 1 && named_subcommand(app, argv[1]))
    help = program + " " + std::string(argv[1]) + " --help";
  return one_line(error.what()) + "; run " + help;
}

}  // namespace smol
