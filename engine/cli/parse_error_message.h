// The one "error:" line for a command line CLI11 refused (docs/design.md §9, docs/bad-inputs.md):
// CLI11's own report is two lines ("The following argument was not expected: foo" and "Run with
// --help for more information.") and exits 106 or so; ours names what was wrong — an unknown
// command by name — says where help is, and the CLI exits 1 like every other bad input.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace smol {

// `argv` as main() got it. The message has no newline and no control bytes, and a long argument
// echoed by CLI11 is cut (a 1 MB value never reaches the terminal whole).
std::string parse_error_message(const CLI::App& app, const CLI::ParseError& error, int argc,
                                const char* const* argv);

}  // namespace smol
