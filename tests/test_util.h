// Shared helpers for the GoogleTest suites.
#pragma once
#include <string>
#include <vector>

namespace gemma4::test {

struct RunResult {
  int exit_code = -1;
  std::string out, err;
};

// Runs the built `gemma4` binary with args (each shell-quoted), optional stdin text.
RunResult run_gemma4(const std::vector<std::string>& args, const std::string& stdin_text = "");
// Repository root (for tests/fixtures/...).
std::string source_dir();
// A fresh empty temporary directory, removed at process exit.
std::string temp_dir();
std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& data);

}  // namespace gemma4::test
