// Subcommands of the `gemma4` executable. Each cmd_*.cpp registers itself with G4_COMMAND; main.cpp
// dispatches on argv[1]. Errors: throw Error (exit 1) or UsageError (exit 2); main prints one line.
#pragma once
#include <functional>
#include <string>
#include <vector>

namespace gemma4::cli {

using CommandFn = std::function<int(const std::vector<std::string>& args)>;  // args exclude "gemma4 NAME"

struct Command {
  std::string name, summary;
  CommandFn run;
};

std::vector<Command>& commands();

struct Registrar {
  Registrar(std::string name, std::string summary, CommandFn fn) {
    commands().push_back({std::move(name), std::move(summary), std::move(fn)});
  }
};

#define G4_COMMAND(NAME, SUMMARY, FN) static ::gemma4::cli::Registrar g4_registrar_##FN(NAME, SUMMARY, FN)

}  // namespace gemma4::cli
