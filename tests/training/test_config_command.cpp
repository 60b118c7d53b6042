// `smolengine config`: --help-keys lists every key of the tables, --markdown is the table the
// README holds verbatim between its config-keys markers, and CONFIG [--set] prints the resolved
// config (which reads back to the same RunConfig) with the warnings on stderr.
#include <gtest/gtest.h>

#include "tests/support/run_smolengine.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/config/config_schema.h"
#include "engine/config/run_config.h"

namespace smol {
namespace {

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(ConfigCommand, HelpKeysListsEveryKeyOfTheTables) {
  const test::CommandResult r = test::run_smolengine("config --help-keys");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::vector<std::string> listed;
  std::istringstream lines(r.output);
  std::string line;
  std::getline(lines, line);  // header
  while (std::getline(lines, line)) listed.push_back(line.substr(0, line.find(' ')));
  std::vector<std::string> expected;
  for (const ConfigKeyRow& row : config_key_rows(run_config_schema())) expected.push_back(row.key);
  EXPECT_EQ(listed, expected);
  // Spot checks of the table's content.
  EXPECT_GT(expected.size(), 150u);
  for (const char* key : {"task_name", "training.learning_rate", "training.evaluation_strategy",
                          "trainer.refactor_timing", "evaluation.stop_strings", "wandb.entity",
                          "model.architecture.hidden_size", "loraga.stable_gamma"})
    EXPECT_NE(std::find(expected.begin(), expected.end(), key), expected.end()) << key;
}

TEST(ConfigCommand, ReadmeHoldsTheMarkdownKeyTable) {
  const test::CommandResult r = test::run_smolengine("config --help-keys --markdown");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output, format_config_keys(run_config_schema(), /*markdown=*/true));
  const std::string readme = read_text(std::filesystem::path(SMOL_SOURCE_DIR) / "README.md");
  const std::string begin = "<!-- config-keys:begin -->\n", end = "<!-- config-keys:end -->";
  const size_t from = readme.find(begin);
  const size_t to = readme.find(end);
  ASSERT_NE(from, std::string::npos) << "README.md lacks " << begin;
  ASSERT_NE(to, std::string::npos) << "README.md lacks " << end;
  EXPECT_EQ(readme.substr(from + begin.size(), to - from - begin.size()), r.output)
      << "README.md's key table is stale: replace the lines between the markers with the "
         "output of `smolengine config --help-keys --markdown`";
}

TEST(ConfigCommand, PrintsTheResolvedConfigAndItsWarnings) {
  const std::filesystem::path config =
      std::filesystem::path(SMOL_SOURCE_DIR) / "configs/smol/135m_gsm8k.yaml";
  const test::CommandResult r =
      test::run_smolengine("config " + config.string() + " --set evaluation.max_new_tokens=64");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // The output holds stdout and stderr: keep the YAML, drop the warning lines.
  std::string yaml;
  std::istringstream lines(r.output);
  for (std::string line; std::getline(lines, line);)
    if (line.rfind("warning: ", 0) != 0) yaml += line + "\n";
  RunConfig expected = load_run_config(config.string(), {"evaluation.max_new_tokens=64"});
  RunConfig printed = parse_run_config_text(yaml, "smolengine config output");
  printed.path = expected.path;
  EXPECT_TRUE(printed == expected) << r.output;
  EXPECT_EQ(printed.evaluation.max_new_tokens, 64);

  const test::CommandResult warned = test::run_smolengine("config " + config.string());
  ASSERT_EQ(warned.exit_code, 0);
  EXPECT_NE(warned.output.find("warning: training.bf16: accepted, not acted on (cpu trains in "
                               "fp32, cuda in bf16 activations + fp32 master (docs/design.md "
                               "§2))"),
            std::string::npos)
      << warned.output;

  const test::CommandResult bad =
      test::run_smolengine("config " + config.string() + " --set training.lerning_rate=1");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.output.find("did you mean 'training.learning_rate'?"), std::string::npos)
      << bad.output;
  EXPECT_NE(test::run_smolengine("config").exit_code, 0);  // neither CONFIG nor --help-keys
}

}  // namespace
}  // namespace smol
