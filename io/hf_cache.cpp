// HF hub cache layout (docs/formats.md §7; huggingface_hub constants.py and manage-cache.md).
#include "io/hf_cache.h"

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <vector>

#include "common/error.h"

namespace smol {
namespace fs = std::filesystem;
namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

// Expands a leading "~" and $VAR / ${VAR} references, as os.path.expanduser/expandvars.
std::string expand_path(const std::string& raw) {
  std::string s = raw;
  if (!s.empty() && s[0] == '~' && (s.size() == 1 || s[1] == '/')) s = env("HOME") + s.substr(1);
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '$') {
      out += s[i];
      continue;
    }
    size_t start = i + 1, end;
    const bool braced = start < s.size() && s[start] == '{';
    if (braced) {
      end = s.find('}', start);
      if (end == std::string::npos) {
        out += s.substr(i);
        break;
      }
      const std::string name = s.substr(start + 1, end - start - 1);
      const char* v = std::getenv(name.c_str());
      out += v ? std::string(v) : s.substr(i, end - i + 1);  // unknown vars stay, like Python
      i = end;
    } else {
      end = start;
      while (end < s.size() && (std::isalnum(static_cast<unsigned char>(s[end])) || s[end] == '_'))
        ++end;
      if (end == start) {
        out += '$';
        continue;
      }
      const std::string name = s.substr(start, end - start);
      const char* v = std::getenv(name.c_str());
      out += v ? std::string(v) : s.substr(i, end - i);
      i = end - 1;
    }
  }
  return out;
}

bool is_commit_hash(const std::string& s) {
  if (s.size() != 40) return false;
  for (char c : s)
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
  return true;
}

}  // namespace

std::string hf_hub_cache_root() {
  if (std::string v = env("HF_HUB_CACHE"); !v.empty()) return expand_path(v);
  if (std::string v = env("HUGGINGFACE_HUB_CACHE"); !v.empty()) return expand_path(v);
  std::string home = env("HF_HOME");
  if (home.empty()) {
    const std::string xdg = env("XDG_CACHE_HOME");
    home = (xdg.empty() ? std::string("~/.cache") : xdg) + "/huggingface";
  }
  return expand_path(home) + "/hub";
}

bool looks_like_hub_repo_id(const std::string& text) {
  if (text.empty() || text[0] == '/' || text[0] == '.' || text[0] == '~') return false;
  int slashes = 0;
  for (char c : text) {
    if (c == '/') {
      ++slashes;
      continue;
    }
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.')
      return false;
  }
  return slashes <= 1 && text.back() != '/' && text.find("..") == std::string::npos;
}

std::optional<std::string> resolve_hf_snapshot(const std::string& repo_id,
                                               const std::string& revision) {
  std::string folder = "models--" + repo_id;
  for (size_t p = 0; (p = folder.find('/', p)) != std::string::npos; p += 2)
    folder.replace(p, 1, "--");
  const fs::path repo_dir = fs::path(hf_hub_cache_root()) / folder;
  std::error_code ec;
  if (!fs::is_directory(repo_dir, ec)) return std::nullopt;

  const fs::path snapshots = repo_dir / "snapshots";
  std::string commit;
  if (is_commit_hash(revision)) {
    commit = revision;
  } else {
    // A ref is a small text file; anything else (a FIFO would block) is treated as absent.
    const fs::path ref_path = repo_dir / "refs" / revision;
    std::ifstream ref;
    if (fs::is_regular_file(ref_path, ec)) ref.open(ref_path);
    if (ref.good() && ref.is_open()) {
      std::getline(ref, commit);
      while (!commit.empty() && std::isspace(static_cast<unsigned char>(commit.back())))
        commit.pop_back();
    }
  }
  if (commit.empty()) {
    // No ref: fall back to the only snapshot, if there is exactly one.
    std::vector<fs::path> found;
    if (fs::is_directory(snapshots, ec))
      for (const auto& entry : fs::directory_iterator(snapshots, ec))
        if (entry.is_directory(ec)) found.push_back(entry.path());
    if (found.size() == 1) return found[0].string();
    throw_error("hub cache ", repo_dir.string(), ": no refs/", revision, " and ", found.size(),
                " snapshots (need exactly one to pick without a ref)");
  }
  const fs::path snapshot = snapshots / commit;
  if (!fs::is_directory(snapshot, ec))
    throw_error("hub cache ", repo_dir.string(), ": revision '", revision, "' is commit ", commit,
                " but ", snapshot.string(), " does not exist");
  return snapshot.string();
}

}  // namespace smol
