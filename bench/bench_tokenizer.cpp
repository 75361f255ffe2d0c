// Tokenizer speed: tokenizer.json load time and single-threaded encode throughput over GSM8K (questions and
// answers, one text at a time), printed as one JSON line with the fields tools/tokenizer_reference.py prints for
// HF `tokenizers`, so the two can be compared on the same machine.
//   usage: bench_tokenizer TOKENIZER_JSON GSM8K_TRAIN_JSONL [REPEATS=3]
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/timer.h"
#include "text/tokenizer.h"

using namespace gemma4;

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: bench_tokenizer TOKENIZER_JSON GSM8K_TRAIN_JSONL [REPEATS=3]\n");
    return 2;
  }
  try {
    int reps = argc > 3 ? std::max(1, std::atoi(argv[3])) : 3;
    std::vector<std::string> texts;
    std::ifstream in(argv[2]);
    if (!in) throw Error("{}: cannot open", argv[2]);
    for (std::string line; std::getline(in, line);) {
      if (line.empty()) continue;
      auto j = nlohmann::json::parse(line);
      texts.push_back(j.at("question").get<std::string>());
      texts.push_back(j.at("answer").get<std::string>());
    }
    size_t bytes = 0;
    for (const auto& t : texts) bytes += t.size();

    double load = 1e9;
    std::shared_ptr<Tokenizer> tok;
    for (int r = 0; r < reps; ++r) {
      tok.reset();
      Timer t;
      tok = Tokenizer::load(argv[1]);
      load = std::min(load, t.seconds());
    }
    double best = 1e9, cold = 0;
    size_t tokens = 0;
    for (int r = 0; r < reps; ++r) {
      Timer t;
      tokens = 0;
      for (const auto& s : texts) tokens += tok->encode(s).size();
      double sec = t.seconds();
      if (r == 0) cold = sec;
      best = std::min(best, sec);
    }
    std::printf(
        "{\"who\": \"gemma4\", \"load_s\": %.4f, \"texts\": %zu, \"bytes\": %zu, \"tokens\": %zu, \"encode_s\": %.4f, "
        "\"cold_encode_s\": %.4f, \"MB_per_s\": %.2f, \"tokens_per_s\": %.0f}\n",
        load, texts.size(), bytes, tokens, best, cold, bytes / best / 1e6, tokens / best);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_tokenizer: %s\n", e.what());
    return 1;
  }
}
