// The `gemma4` command: dispatches to the subcommands registered in cmd_*.cpp.
#include <cstdio>
#include <string>
#include <vector>

#include "cli/command.h"
#include "core/error.h"

namespace gemma4::cli {
std::vector<Command>& commands() {
  static std::vector<Command> c;
  return c;
}
}  // namespace gemma4::cli

static void print_help() {
  std::fprintf(stderr, "usage: gemma4 COMMAND [options]\n\ncommands:\n");
  for (const auto& c : gemma4::cli::commands()) std::fprintf(stderr, "  %-12s %s\n", c.name.c_str(), c.summary.c_str());
}

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    print_help();
    return argc < 2 ? 2 : 0;
  }
  std::string name = argv[1];
  std::vector<std::string> args(argv + 2, argv + argc);
  for (const auto& c : gemma4::cli::commands()) {
    if (c.name != name) continue;
    try {
      return c.run(args);
    } catch (const gemma4::UsageError& e) {
      std::fprintf(stderr, "gemma4 %s: %s\n", name.c_str(), e.what());
      return 2;
    } catch (const std::exception& e) {
      std::string msg = e.what();
      for (char& ch : msg) if (ch == '\n') ch = ' ';
      std::fprintf(stderr, "gemma4 %s: error: %s\n", name.c_str(), msg.c_str());
      return 1;
    }
  }
  std::fprintf(stderr, "gemma4: unknown command '%s'\n", name.c_str());
  print_help();
  return 2;
}
