// Where datasets are found (docs/design.md §5): --data-dir, then $SMOLENGINE_DATA, then ./data,
// then ../shared/data (relative to the working directory).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace smol {

// Returns the first existing candidate root that contains `relative` (e.g. "gsm8k/train.jsonl"),
// or throws smol::Error listing every place that was tried.
std::filesystem::path find_data_file(const std::string& relative, const std::string& data_dir = "");

// The candidate data roots in search order: data_dir (when given), $SMOLENGINE_DATA (when
// set), data/, ../shared/data. The one place that order is written down.
std::vector<std::filesystem::path> data_roots(const std::string& data_dir = "");

}  // namespace smol
