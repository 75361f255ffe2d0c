#include "cli/args.h"

#include <cstdlib>

namespace gemma4::cli {

Args::Args(const std::vector<std::string>& argv, std::set<std::string> value_flags, std::set<std::string> bool_flags,
           const std::string& usage)
    : usage_(usage) {
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (a.size() > 2 && a.rfind("--", 0) == 0) {
      std::string name = a, value;
      bool inline_value = false;
      if (auto eq = a.find('='); eq != std::string::npos) {
        name = a.substr(0, eq);
        value = a.substr(eq + 1);
        inline_value = true;
      }
      if (value_flags.count(name)) {
        if (!inline_value) {
          if (i + 1 >= argv.size()) throw UsageError("{} needs a value", name);
          value = argv[++i];
        }
        values_.emplace(name, value);
      } else if (bool_flags.count(name) && !inline_value) {
        bools_.insert(name);
      } else {
        throw UsageError("unknown option {}", name);
      }
    } else {
      pos_.push_back(a);
    }
  }
}

std::string Args::get(const std::string& flag) const {
  auto it = values_.find(flag);
  if (it == values_.end()) throw UsageError("missing required option {}", flag);
  return it->second;
}

std::string Args::get_or(const std::string& flag, const std::string& dflt) const {
  auto it = values_.find(flag);
  return it == values_.end() ? dflt : it->second;
}

std::vector<std::string> Args::get_all(const std::string& flag) const {
  std::vector<std::string> r;
  auto [b, e] = values_.equal_range(flag);
  for (auto it = b; it != e; ++it) r.push_back(it->second);
  return r;
}

long long Args::get_int(const std::string& flag, long long dflt) const {
  auto it = values_.find(flag);
  if (it == values_.end()) return dflt;
  char* end = nullptr;
  long long v = std::strtoll(it->second.c_str(), &end, 10);
  if (it->second.empty() || *end) throw UsageError("{} expects an integer, got '{}'", flag, it->second);
  return v;
}

double Args::get_double(const std::string& flag, double dflt) const {
  auto it = values_.find(flag);
  if (it == values_.end()) return dflt;
  char* end = nullptr;
  double v = std::strtod(it->second.c_str(), &end);
  if (it->second.empty() || *end) throw UsageError("{} expects a number, got '{}'", flag, it->second);
  return v;
}

}  // namespace gemma4::cli
