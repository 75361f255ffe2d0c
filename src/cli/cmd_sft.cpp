// gemma4 sft --config-file RECIPE.yaml [--config a.b=value ...] OUTPUT_DIR
//            [--dump-config]   print the effective config as YAML and exit
#include <cstdio>

#include "cli/args.h"
#include "cli/command.h"
#include "train/recipe_config.h"
#include "train/trainer.h"

namespace gemma4::cli {
namespace {

int run_sft_command(const std::vector<std::string>& argv) {
  const char* usage = "gemma4 sft --config-file RECIPE.yaml [--config a.b=value ...] [--dump-config] OUTPUT_DIR";
  Args a(argv, {"--config-file", "--config"}, {"--dump-config"}, usage);
  if (!a.has("--config-file")) throw UsageError("--config-file is required; usage: {}", usage);
  RecipeConfig cfg = load_recipe(a.get("--config-file"), a.get_all("--config"));
  if (a.has("--dump-config")) {
    if (a.positionals().size() > 1) throw UsageError("too many arguments; usage: {}", usage);
    std::fputs(dump_recipe(cfg).c_str(), stdout);
    return 0;
  }
  if (a.positionals().size() != 1)
    throw UsageError("expected exactly one OUTPUT_DIR, got {}; usage: {}", a.positionals().size(), usage);
  return run_sft(cfg, a.positionals()[0]);
}

}  // namespace
G4_COMMAND("sft", "supervised fine-tuning (fairseq2's LM SFT recipe)", run_sft_command);
}  // namespace gemma4::cli
