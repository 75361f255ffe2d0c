// gemma4 arch list | gemma4 arch show NAME [--generation]: the architecture registry.
// `show` prints the preset as the config.json that an export would write (with --generation: its
// generation_config.json instead).
#include <cstdio>

#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/command.h"
#include "model/registry.h"

namespace gemma4::cli {
namespace {

int run_arch(const std::vector<std::string>& argv) {
  const char* usage = "gemma4 arch list | gemma4 arch show NAME [--generation]";
  Args a(argv, {}, {"--generation"}, usage);
  const auto& pos = a.positionals();
  if (pos.empty()) throw UsageError("usage: {}", usage);
  if (pos[0] == "list") {
    if (pos.size() != 1 || a.has("--generation")) throw UsageError("usage: {}", usage);
    for (const auto& n : arch_names()) std::printf("%s\n", n.c_str());
    return 0;
  }
  if (pos[0] == "show") {
    if (pos.size() != 2) throw UsageError("usage: {}", usage);
    ModelConfig cfg = arch_config(pos[1]);
    nlohmann::json j = a.has("--generation") ? cfg.generation_json() : cfg.to_json();
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  throw UsageError("unknown arch subcommand '{}' (usage: {})", pos[0], usage);
}

}  // namespace
G4_COMMAND("arch", "list the architecture registry or show one preset's config", run_arch);
}  // namespace gemma4::cli
