// One error type for the whole project. Messages carry their context ("file: tensor 'x': ...");
// the CLI prints what() on one line and exits 1 (2 for usage errors).
#pragma once
#include <fmt/format.h>
#include <stdexcept>
#include <string>

namespace gemma4 {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
  template <typename... Args>
  Error(fmt::format_string<Args...> f, Args&&... args)
      : std::runtime_error(fmt::format(f, std::forward<Args>(args)...)) {}
};

// A command-line usage problem (exit code 2).
class UsageError : public Error {
 public:
  using Error::Error;
};

#define G4_CHECK(cond, ...)                          \
  do {                                               \
    if (!(cond)) throw ::gemma4::Error(__VA_ARGS__); \
  } while (0)

}  // namespace gemma4
