// `gemma4 tokenize` and `gemma4 detokenize`: text <-> ids with a tokenizer.json (or a model dir holding one).
#include <cstdio>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/args.h"
#include "cli/command.h"
#include "core/error.h"
#include "text/tokenizer.h"

namespace gemma4::cli {
namespace {

std::string read_stdin() {
  std::string data;
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, stdin)) > 0) data.append(buf, n);
  return data;
}

void print_ids(const std::vector<int32_t>& ids, std::string& out) {
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) out += ' ';
    out += std::to_string(ids[i]);
  }
  out += '\n';
}

int tokenize(const std::vector<std::string>& argv) {
  Args args(argv, {"--tokenizer", "--mode"}, {"--jsonl"},
            "usage: gemma4 tokenize --tokenizer PATH [--mode as_is|default|prompt|prompt_response] [--jsonl]\n"
            "  reads UTF-8 text on stdin, prints the ids on one line; with --jsonl each input line is a JSON\n"
            "  string and each output line holds its ids");
  EncodeMode mode = parse_encode_mode(args.get_or("--mode", "as_is"));
  auto tok = Tokenizer::load(args.get("--tokenizer"));
  std::string input = read_stdin(), out;
  if (!args.has("--jsonl")) {
    print_ids(tok->encode(input, mode), out);
  } else {
    size_t line_no = 0;
    for (size_t pos = 0; pos < input.size();) {
      size_t end = input.find('\n', pos);
      if (end == std::string::npos) end = input.size();
      std::string_view line(input.data() + pos, end - pos);
      pos = end + 1;
      ++line_no;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(line);
      } catch (const nlohmann::json::exception&) {
        throw Error("stdin line {}: not a JSON string", line_no);
      }
      if (!j.is_string()) throw Error("stdin line {}: not a JSON string", line_no);
      print_ids(tok->encode(j.get_ref<const std::string&>(), mode), out);
    }
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

int detokenize(const std::vector<std::string>& argv) {
  Args args(argv, {"--tokenizer"}, {"--skip-special"},
            "usage: gemma4 detokenize --tokenizer PATH [--skip-special]\n"
            "  reads space-separated ids on stdin, prints the decoded text (no added newline)");
  auto tok = Tokenizer::load(args.get("--tokenizer"));
  std::string input = read_stdin();
  std::vector<int32_t> ids;
  for (size_t pos = 0; pos < input.size();) {
    if (std::isspace(static_cast<unsigned char>(input[pos]))) {
      ++pos;
      continue;
    }
    size_t end = pos;
    while (end < input.size() && !std::isspace(static_cast<unsigned char>(input[end]))) ++end;
    std::string word = input.substr(pos, end - pos);
    pos = end;
    size_t digits = word[0] == '-' ? 1 : 0;
    bool ok = word.size() > digits && word.size() - digits <= 10 &&
              word.find_first_not_of("0123456789", digits) == std::string::npos;
    long long v = ok ? std::stoll(word) : 0;
    if (!ok || v < INT32_MIN || v > INT32_MAX) throw Error("stdin: '{}' is not a token id", word);
    ids.push_back(int32_t(v));
  }
  std::string text = tok->decode(ids, args.has("--skip-special"));
  std::fwrite(text.data(), 1, text.size(), stdout);
  return 0;
}

}  // namespace

G4_COMMAND("tokenize", "encode stdin text to token ids with a tokenizer.json", tokenize);
G4_COMMAND("detokenize", "decode token ids from stdin to text", detokenize);

}  // namespace gemma4::cli
