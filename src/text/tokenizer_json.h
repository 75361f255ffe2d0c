// A strict single-pass JSON scanner for tokenizer.json. The 33 MB vocabulary and merge list are read straight
// from the file buffer without building a document; small components are handed to nlohmann as raw spans.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace gemma4::tok {

class JsonScanner {
 public:
  JsonScanner(std::string_view text, std::string file) : s_(text), file_(std::move(file)) {}

  void ws() {
    while (p_ < s_.size() && (s_[p_] == ' ' || s_[p_] == '\n' || s_[p_] == '\r' || s_[p_] == '\t')) ++p_;
  }
  // Next non-blank character (0 at the end).
  char peek() {
    ws();
    return p_ < s_.size() ? s_[p_] : 0;
  }
  void expect(char c);
  bool consume(char c) {
    if (peek() != c) return false;
    ++p_;
    return true;
  }
  // Reads a string; returns a view into the text when it has no escapes, else into *scratch.
  std::string_view string(std::string* scratch);
  int64_t integer();
  // Skips any value (validating it) and returns its raw text.
  std::string_view skip_value();
  // For "{" ... "}" / "[" ... "]": after the opening bracket, call more(close) before each element; it consumes
  // the separating comma and returns false (consuming `close`) at the end.
  bool more(char close, bool first);
  bool at_end() {
    ws();
    return p_ >= s_.size();
  }
  size_t pos() const { return p_; }
  [[noreturn]] void fail(std::string_view what) const;
  const std::string& file() const { return file_; }

 private:
  std::string_view s_;
  size_t p_ = 0;
  std::string file_;
};

}  // namespace gemma4::tok
