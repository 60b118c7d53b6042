#include "data/data_root.h"

#include <cstdlib>
#include <vector>

#include "common/error.h"

namespace smol {

std::vector<std::filesystem::path> data_roots(const std::string& data_dir) {
  std::vector<std::filesystem::path> roots;
  if (!data_dir.empty()) roots.emplace_back(data_dir);
  if (const char* env = std::getenv("SMOLENGINE_DATA"); env && *env) roots.emplace_back(env);
  roots.emplace_back("data");
  roots.emplace_back("../shared/data");
  return roots;
}

std::filesystem::path find_data_file(const std::string& relative, const std::string& data_dir) {
  std::string tried;
  for (const auto& root : data_roots(data_dir)) {
    const auto candidate = root / relative;
    std::error_code ec;
    if (std::filesystem::is_regular_file(candidate, ec)) return candidate;
    tried += (tried.empty() ? "" : ", ") + candidate.string();
  }
  throw_error("data file '", relative, "' not found (tried ", tried, ")");
}

}  // namespace smol
