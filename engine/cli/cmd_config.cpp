// `smolengine config --help-keys [--markdown]`: every config key of every section — type,
// default, check, effect (used, or ignored and why), meaning — from the descriptor tables
// (engine/config/config_schema.cpp); --markdown prints the table the README's Configs section
// holds.
// `smolengine config CONFIG [--set k=v]...`: the resolved config (every key, defaults included)
// as YAML on stdout, and one "warning: ..." line per key given but not acted on, on stderr.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "engine/commands.h"
#include "engine/config/config_schema.h"
#include "engine/config/run_config.h"

namespace smol {

namespace {

struct ConfigOptions {
  std::string config_path;
  std::vector<std::string> overrides;
  bool help_keys = false;
  bool markdown = false;
};

void run_config_command(const ConfigOptions& options) {
  if (options.help_keys) {
    SMOL_CHECK(options.config_path.empty() && options.overrides.empty(),
               "config: --help-keys takes no CONFIG or --set");
    std::fputs(format_config_keys(run_config_schema(), options.markdown).c_str(), stdout);
    return;
  }
  SMOL_CHECK(!options.markdown, "config: --markdown goes with --help-keys");
  SMOL_CHECK(!options.config_path.empty(),
             "config: give a CONFIG to resolve, or --help-keys to list the keys");
  const RunConfig config = load_run_config(options.config_path, options.overrides);
  std::fputs(to_yaml(config).c_str(), stdout);
  std::fflush(stdout);
  for (const std::string& warning : config.warnings)
    std::fprintf(stderr, "warning: %s\n", warning.c_str());
}

}  // namespace

void add_config_command(CLI::App& app) {
  auto options = std::make_shared<ConfigOptions>();
  CLI::App* cmd = app.add_subcommand(
      "config", "Print a run config resolved (every key, defaults included), or list the keys");
  cmd->add_option("config", options->config_path, "run config (YAML, seed schema)");
  cmd->add_option("--set", options->overrides, "override a config key: dotted.key=value")
      ->allow_extra_args(false);
  cmd->add_flag("--help-keys", options->help_keys,
                "list every key: type, default, check, effect, meaning");
  cmd->add_flag("--markdown", options->markdown, "with --help-keys: a Markdown table");
  cmd->callback([options] { run_config_command(*options); });
}

}  // namespace smol
