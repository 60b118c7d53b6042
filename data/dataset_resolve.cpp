// resolve_dataset (see dataset_resolve.h).
#include "data/dataset_resolve.h"

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <vector>

#include "common/error.h"
#include "data/data_root.h"

namespace smol {

namespace {

namespace fs = std::filesystem;

bool is_dataset_file(const fs::path& path) {
  std::error_code ec;
  return fs::is_regular_file(path, ec) &&
         (path.extension() == ".jsonl" || path.extension() == ".json");
}

DatasetFiles from_directory(const std::string& name, const fs::path& dir) {
  DatasetFiles files{name, {}};
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (!is_dataset_file(entry.path())) continue;
    const std::string split = entry.path().stem().string();
    SMOL_CHECK(!files.splits.count(split), "dataset '", name, "': directory ", dir.string(),
               " holds both ", files.splits[split], " and ", entry.path().string(), " for split '",
               split, "'");
    files.splits[split] = entry.path().string();
  }
  SMOL_CHECK(!files.splits.empty(), "dataset '", name, "': directory ", dir.string(),
             " holds no <split>.jsonl or <split>.json file");
  return files;
}

// A path as given, else under each data root (the same order as find_data_file).
std::optional<fs::path> find_local(const std::string& name, const std::string& data_dir) {
  std::error_code ec;
  if (fs::exists(name, ec)) return fs::path(name);
  if (fs::path(name).is_absolute()) return std::nullopt;
  for (const fs::path& root : data_roots(data_dir))
    if (fs::exists(root / name, ec)) return root / name;
  return std::nullopt;
}

}  // namespace

DatasetFiles resolve_dataset(const std::string& name, const std::string& subset,
                             const std::string& data_dir) {
  SMOL_CHECK(!name.empty(), "dataset.name is empty");
  if (name == "gsm8k" || name == "openai/gsm8k") {
    SMOL_CHECK(subset.empty() || subset == "main", "dataset '", name, "': subset '", subset,
               "' is not available (only 'main', as converted JSONL)");
    DatasetFiles files{name, {}};
    files.splits["train"] = find_data_file("gsm8k/train.jsonl", data_dir).string();
    files.splits["test"] = find_data_file("gsm8k/test.jsonl", data_dir).string();
    return files;
  }
  if (name == "meta-math/MetaMathQA") {
    SMOL_CHECK(subset.empty() || subset == "default", "dataset '", name, "': subset '", subset,
               "' does not exist (MetaMathQA has one file)");
    DatasetFiles files{name, {}};
    files.splits["train"] = find_data_file("meta-math/MetaMathQA-395K.json", data_dir).string();
    return files;
  }
  if (const std::optional<fs::path> local = find_local(name, data_dir)) {
    if (fs::is_directory(*local)) return from_directory(name, *local);
    SMOL_CHECK(is_dataset_file(*local), "dataset '", name, "': ", local->string(),
               " is not a .json or .jsonl file");
    return DatasetFiles{name, {{"train", local->string()}}};
  }
  throw_error("dataset '", name,
              "' is neither a known dataset (gsm8k, openai/gsm8k, meta-math/MetaMathQA) nor a "
              "local .json/.jsonl file or directory (looked as given and under --data-dir, "
              "$SMOLENGINE_DATA, data/, ../shared/data)");
}

}  // namespace smol
