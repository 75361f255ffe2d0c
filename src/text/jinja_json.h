// Python's json.dumps over engine values, for Hugging Face's tojson filter
// (json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False) by default).
#pragma once
#include <optional>
#include <string>

#include "text/jinja_value.h"

namespace gemma4::jinja {

struct JsonDumpOptions {
  bool ensure_ascii = false;
  std::optional<std::string> indent;  // None: single line; a number n becomes n spaces
  std::optional<std::string> item_separator, key_separator;  // None: Python's defaults for the indent mode
  bool sort_keys = false;
};

std::string py_json_dumps(const Value& v, const JsonDumpOptions& opt);

}  // namespace gemma4::jinja
