// Placeholder: registers nothing until the command is implemented, so --help never lists it.
#include "engine/commands.h"

namespace smol {

void add_tokenize_command(CLI::App&) {}

}  // namespace smol
