// smolengine: the command line. Each subcommand lives in engine/cli/cmd_<name>.cpp.
#include <cstdio>
#include <exception>

#include "common/error.h"
#include "engine/cli/parse_error_message.h"
#include "engine/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"smolengine: train and run small Llama-family models (C++/CUDA, no framework)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "smolengine 0.1.0");
  smol::add_train_command(app);
  smol::add_eval_command(app);
  smol::add_inspect_command(app);
  smol::add_tokenize_command(app);
  smol::add_generate_command(app);
  smol::add_dump_step_command(app);
  smol::add_export_command(app);
  smol::add_config_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version are ParseErrors too: CLI11 prints them and they exit 0.
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);
    std::fprintf(stderr, "error: %s\n", smol::parse_error_message(app, e, argc, argv).c_str());
    return 1;
  } catch (const smol::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
