// A small flag parser for subcommands: --flag value, --flag=value, boolean --flag, positionals.
// Unknown flags and missing values are UsageErrors (exit 2).
#pragma once
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"

namespace gemma4::cli {

class Args {
 public:
  // value_flags take a value; bool_flags do not. Names include the leading "--".
  Args(const std::vector<std::string>& argv, std::set<std::string> value_flags, std::set<std::string> bool_flags,
       const std::string& usage);

  bool has(const std::string& flag) const { return values_.count(flag) || bools_.count(flag); }
  std::string get(const std::string& flag) const;  // required value flag
  std::string get_or(const std::string& flag, const std::string& dflt) const;
  std::vector<std::string> get_all(const std::string& flag) const;  // repeated value flag
  long long get_int(const std::string& flag, long long dflt) const;
  double get_double(const std::string& flag, double dflt) const;
  const std::vector<std::string>& positionals() const { return pos_; }
  const std::string& usage() const { return usage_; }

 private:
  std::multimap<std::string, std::string> values_;
  std::set<std::string> bools_;
  std::vector<std::string> pos_;
  std::string usage_;
};

}  // namespace gemma4::cli
