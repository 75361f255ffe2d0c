// Shared helpers for the tokenizer tests: where the real tokenizer files are, and reading JSONL fixtures.
#pragma once
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "test_util.h"

namespace gemma4::test {

// $GEMMA4_CACHE/tokenizers/NAME/tokenizer.json, or $HOME/.cache/gemma4/tokenizers/NAME/tokenizer.json.
inline std::string cached_tokenizer(const std::string& name) {
  const char* cache = std::getenv("GEMMA4_CACHE");
  const char* home = std::getenv("HOME");
  std::string root = cache ? std::string(cache) : std::string(home ? home : ".") + "/.cache/gemma4";
  return root + "/tokenizers/" + name + "/tokenizer.json";
}

inline bool file_exists(const std::string& path) { return std::ifstream(path).good(); }

inline std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  return out;
}

inline std::string tokenizer_data(const std::string& name) { return source_dir() + "/tests/data/tokenizer/" + name; }

}  // namespace gemma4::test
