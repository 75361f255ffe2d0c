// A Jinja template engine for chat templates: the subset of jinja2 that Hugging Face chat templates use,
// rendered byte-identically to Python jinja2 in HF's environment (ImmutableSandboxedEnvironment with
// trim_blocks, lstrip_blocks and the loopcontrols extension; HF's tojson, raise_exception, strftime_now;
// the {% generation %} tag). Anything outside the subset is an Error naming the construct and its line.
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "text/jinja_ast.h"

namespace gemma4::jinja {

// Optional record of where parts of the output came from (used for assistant masks).
struct RenderTrace {
  // One iteration of a top-level for loop over an item of the list variable `watch_key`: the byte range of
  // the output written during it.
  struct Iteration {
    size_t item, begin, end;
  };
  std::string watch_key = "messages";
  std::vector<Iteration> iterations;
  std::vector<std::pair<size_t, size_t>> generation;  // top-level {% generation %} blocks
};

class Template {
 public:
  // Parses `source`; `name` prefixes error messages ("chat_template.jinja:12: ..."). Throws Error.
  Template(std::string_view source, std::string name);

  // vars: a JSON object whose keys become template variables (insertion order is kept, as Python dicts
  // keep it). Throws Error "name:line: message" on a runtime error (including raise_exception).
  std::string render(const nlohmann::ordered_json& vars, RenderTrace* trace = nullptr) const;

  const std::string& name() const { return name_; }

 private:
  std::string name_;
  std::shared_ptr<const Body> body_;
};

}  // namespace gemma4::jinja
