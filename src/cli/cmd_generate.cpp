// gemma4 generate --model DIR (--prompt-ids 2,17,9 | --prompt TEXT | --prompts-file FILE) --max-new-tokens N
//                 [--temperature T] [--top-k K] [--top-p P] [--seed S] [--ids-only] [--ignore-eos]
//                 [--max-batch B] [--device cpu|cuda] [--precision auto|f32|bf16]
// --prompts-file: one text prompt per line (empty lines skipped), generated together as a batch (at most
// --max-batch decoding at once); one output line per prompt, in order (escaped newlines as \n).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "cli/args.h"
#include "cli/command.h"
#include "generate/generator.h"
#include "text/tokenizer.h"

namespace gemma4::cli {
namespace {

std::vector<int64_t> parse_ids(const std::string& s) {
  std::vector<int64_t> ids;
  std::stringstream ss(s);
  std::string tok;
  while (std::getline(ss, tok, ',')) {
    char* end = nullptr;
    long long v = std::strtoll(tok.c_str(), &end, 10);
    if (tok.empty() || *end) throw UsageError("--prompt-ids: '{}' is not an integer", tok);
    ids.push_back(v);
  }
  if (ids.empty()) throw UsageError("--prompt-ids is empty");
  return ids;
}

int run_generate(const std::vector<std::string>& argv) {
  Args a(argv, {"--model", "--prompt-ids", "--prompt", "--prompts-file", "--max-new-tokens", "--temperature", "--top-k",
                "--top-p", "--seed", "--device", "--precision", "--max-batch"},
         {"--ids-only", "--ignore-eos"},
         "gemma4 generate --model DIR (--prompt-ids 2,17,9 | --prompt TEXT | --prompts-file FILE) --max-new-tokens N "
         "[--temperature T] [--max-batch B] "
         "[--top-k K] [--top-p P] [--seed S] [--ids-only] [--ignore-eos] [--device cpu|cuda] [--precision auto|f32|bf16]");
  // Default: cuda when a GPU is present, else cpu (issue 4); asking for cuda without one is an error.
  const Device device = select_device(a.get_or("--device", "auto"));
  if (int(a.has("--prompt-ids")) + int(a.has("--prompt")) + int(a.has("--prompts-file")) != 1)
    throw UsageError("give exactly one of --prompt-ids, --prompt and --prompts-file");
  const long long max_batch = a.get_int("--max-batch", 32);
  if (max_batch < 1) throw UsageError("--max-batch must be >= 1");
  std::string dir = a.get("--model");
  long long max_new = a.get_int("--max-new-tokens", 32);
  if (max_new < 0) throw UsageError("--max-new-tokens must be >= 0");

  auto model = Model::load(dir, {}, device, select_precision(a.get_or("--precision", "auto")));
  std::shared_ptr<Tokenizer> tok;
  std::vector<int64_t> prompt;
  std::vector<std::vector<int64_t>> batch;
  if (a.has("--prompts-file")) {
    const std::string path = a.get("--prompts-file");
    std::ifstream f(path);
    if (!f) throw Error("{}: cannot read the prompts file", path);
    tok = Tokenizer::load(dir);
    std::string line;
    while (std::getline(f, line)) {
      if (line.empty()) continue;
      std::vector<int64_t> ids;
      for (int32_t id : tok->encode(line, EncodeMode::Prompt)) ids.push_back(id);
      batch.push_back(std::move(ids));
    }
    if (batch.empty()) throw Error("{}: no prompts (one per line)", path);
  } else if (a.has("--prompt")) {
    tok = Tokenizer::load(dir);
    for (int32_t id : tok->encode(a.get("--prompt"), EncodeMode::Prompt)) prompt.push_back(id);
  } else {
    prompt = parse_ids(a.get("--prompt-ids"));
  }

  GenerateOptions opt = default_generate_options(model->config());
  const GenerationConfig& gc = model->config().generation;
  opt.sampling.temperature = a.get_double("--temperature", gc.do_sample ? gc.temperature : 0.0);
  opt.sampling.top_k = int(a.get_int("--top-k", gc.do_sample ? gc.top_k : 0));
  opt.sampling.top_p = a.get_double("--top-p", gc.do_sample ? gc.top_p : 1.0);
  opt.sampling.seed = uint64_t(a.get_int("--seed", 0));
  opt.max_new_tokens = int(max_new);
  opt.ignore_eos = a.has("--ignore-eos");

  if (!batch.empty()) {
    auto outs = generate_batch(*model, batch, opt, int(max_batch));
    for (auto& out : outs) {
      std::string line;
      if (a.has("--ids-only")) {
        for (size_t i = 0; i < out.size(); ++i) line += (i ? " " : "") + std::to_string(out[i]);
      } else {
        std::vector<int32_t> ids(out.begin(), out.end());
        for (char c : tok->decode(ids, /*skip_special=*/true)) line += c == '\n' ? std::string("\\n") : std::string(1, c);
      }
      std::printf("%s\n", line.c_str());
    }
    return 0;
  }
  std::vector<int64_t> out = generate(*model, prompt, opt);
  if (a.has("--ids-only") || (!tok && !std::filesystem::exists(dir + "/tokenizer.json"))) {
    std::string line;
    for (size_t i = 0; i < out.size(); ++i) line += (i ? " " : "") + std::to_string(out[i]);
    std::printf("%s\n", line.c_str());
    return 0;
  }
  if (!tok) tok = Tokenizer::load(dir);
  std::vector<int32_t> ids(out.begin(), out.end());
  std::printf("%s\n", tok->decode(ids, /*skip_special=*/true).c_str());
  return 0;
}

}  // namespace
G4_COMMAND("generate", "generate tokens from a prompt (greedy or sampled)", run_generate);
}  // namespace gemma4::cli
