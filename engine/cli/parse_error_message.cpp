// parse_error_message (see parse_error_message.h).
#include "engine/cli/parse_error_message.h"

#include "common/quote.h"

namespace smol {

namespace {

// CLI11's text on one line: control bytes (newlines included) become spaces, so a stray escape
// sequence cannot repaint the terminal, and past 300 bytes it is cut, saying how long it was.
std::string one_line(const std::string& text) {
  constexpr size_t kMaxBytes = 300;
  std::string out;
  for (size_t i = 0; i < text.size() && i < kMaxBytes; ++i) {
    const auto byte = static_cast<unsigned char>(text[i]);
    out += byte < 0x20 || byte == 0x7f ? ' ' : text[i];
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  if (text.size() > kMaxBytes) out += "... (" + std::to_string(text.size()) + " bytes)";
  return out;
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
