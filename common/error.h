// smol::Error — the one exception type of the engine (docs/design.md §9).
//
// Every bad input ends in an Error whose message names what is wrong and where
// (file, tensor, key, line). The CLI catches it, prints "error: <message>" and exits 1.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace smol {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Builds a message from any streamable parts: throw_error("file ", path, ": bad magic").
template <typename... Parts>
[[noreturn]] void throw_error(Parts&&... parts) {
  std::ostringstream message;
  (message << ... << std::forward<Parts>(parts));
  throw Error(message.str());
}

}  // namespace smol

// SMOL_CHECK(cond, parts...): throws smol::Error built from parts when cond is false.
#define SMOL_CHECK(cond, ...)                      \
  do {                                             \
    if (!(cond)) ::smol::throw_error(__VA_ARGS__); \
  } while (0)
