// The SFT recipe configuration: YAML (fairseq2's sections) -> RecipeConfig, `--config a.b=value` overrides,
// validation, and a YAML dump that reads back to the same config.
//
// Keys are flat within a section (`optimizer.lr`); fairseq2's nesting `optimizer.config.lr` and
// `lr_scheduler.config.final_lr_scale` is accepted as an alias, and so are fairseq2's
// `dataset.source_encode_mode` / `target_encode_mode` and `regime.export_hugging_face`. A section given as a
// mapping in an override (`--config 'optimizer={lr: 1e-4}'`) sets each key it holds.
//
// Conventions: paths are kept as written (relative paths are relative to the working directory, as in
// fairseq2); `null` is accepted for strings (= "") and for optional integers (= unset); numbers and booleans
// must be plain YAML scalars (a quoted "2e-5" is a string, not a number). Every-n-steps values of 0 disable the
// action (checkpointing / validation); keep_last_n_checkpoints 0 keeps every checkpoint.
#include "train/recipe_config.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdangling-pointer"  // false positives inside yaml-cpp 0.7's node headers
#include <yaml-cpp/yaml.h>
#pragma GCC diagnostic pop

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include "core/error.h"

namespace gemma4 {
namespace {

enum class Kind { String, Double, Int, UInt, Bool, DoubleList, OptInt };

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::String: return "a string";
    case Kind::Double: return "a number";
    case Kind::Int: return "an integer";
    case Kind::UInt: return "a non-negative integer";
    case Kind::Bool: return "a boolean (true/false)";
    case Kind::DoubleList: return "a list of numbers";
    case Kind::OptInt: return "an integer or null";
  }
  return "?";
}

struct Field {
  const char* path;
  Kind kind;
  std::function<void*(RecipeConfig&)> ref;
};

#define G4_FIELD(path, kind, member) \
  Field { path, Kind::kind, [](RecipeConfig& c) -> void* { return &c.member; } }

const std::vector<Field>& fields() {
  static const std::vector<Field> f = {
      G4_FIELD("model.path", String, model.path),
      G4_FIELD("model.arch", String, model.arch),
      G4_FIELD("model.dtype", String, model.dtype),
      G4_FIELD("tokenizer.path", String, tokenizer.path),
      G4_FIELD("tokenizer.chat_template", String, tokenizer.chat_template),
      G4_FIELD("dataset.path", String, dataset.path),
      G4_FIELD("dataset.format", String, dataset.format),
      G4_FIELD("dataset.train_split", String, dataset.train_split),
      G4_FIELD("dataset.valid_split", String, dataset.valid_split),
      G4_FIELD("dataset.valid_fraction", Double, dataset.valid_fraction),
      G4_FIELD("dataset.max_seq_len", Int, dataset.max_seq_len),
      G4_FIELD("dataset.max_num_tokens", Int, dataset.max_num_tokens),
      G4_FIELD("dataset.min_seq_len", Int, dataset.min_seq_len),
      G4_FIELD("dataset.example_shuffle_window", Int, dataset.example_shuffle_window),
      G4_FIELD("dataset.batch_shuffle_window", Int, dataset.batch_shuffle_window),
      G4_FIELD("dataset.chat_mode", Bool, dataset.chat_mode),
      G4_FIELD("dataset.src_encode_mode", String, dataset.src_encode_mode),
      G4_FIELD("dataset.tgt_encode_mode", String, dataset.tgt_encode_mode),
      G4_FIELD("trainer.grad_accumulation", Int, trainer.grad_accumulation),
      G4_FIELD("trainer.max_grad_norm", Double, trainer.max_grad_norm),
      G4_FIELD("trainer.dtype", String, trainer.dtype),
      G4_FIELD("optimizer.name", String, optimizer.name),
      G4_FIELD("optimizer.lr", Double, optimizer.lr),
      G4_FIELD("optimizer.betas", DoubleList, optimizer.betas),
      G4_FIELD("optimizer.eps", Double, optimizer.eps),
      G4_FIELD("optimizer.weight_decay", Double, optimizer.weight_decay),
      G4_FIELD("lr_scheduler.name", String, lr_scheduler.name),
      G4_FIELD("lr_scheduler.num_warmup_steps", Int, lr_scheduler.num_warmup_steps),
      G4_FIELD("lr_scheduler.final_lr_scale", Double, lr_scheduler.final_lr_scale),
      G4_FIELD("lr_scheduler.cycle_len", OptInt, lr_scheduler.cycle_len),
      G4_FIELD("regime.num_steps", Int, regime.num_steps),
      G4_FIELD("regime.num_data_epochs", OptInt, regime.num_data_epochs),
      G4_FIELD("regime.checkpoint_every_n_steps", Int, regime.checkpoint_every_n_steps),
      G4_FIELD("regime.keep_last_n_checkpoints", Int, regime.keep_last_n_checkpoints),
      G4_FIELD("regime.validate_every_n_steps", Int, regime.validate_every_n_steps),
      G4_FIELD("regime.publish_metrics_every_n_steps", Int, regime.publish_metrics_every_n_steps),
      G4_FIELD("regime.export_hf", Bool, regime.export_hf),
      G4_FIELD("common.seed", UInt, common.seed),
      G4_FIELD("common.metric_recorders", String, common.metric_recorders),
  };
  return f;
}
#undef G4_FIELD

const Field* find_field(const std::string& path) {
  for (const Field& f : fields())
    if (path == f.path) return &f;
  return nullptr;
}

bool is_section(const std::string& name) {
  for (const char* s : {"model", "tokenizer", "dataset", "trainer", "optimizer", "lr_scheduler", "regime", "common"})
    if (name == s) return true;
  return false;
}

// fairseq2 spellings -> ours.
std::string canonical(const std::string& path) {
  static const std::map<std::string, std::string> alias = {
      {"dataset.source_encode_mode", "dataset.src_encode_mode"},
      {"dataset.target_encode_mode", "dataset.tgt_encode_mode"},
      {"regime.export_hugging_face", "regime.export_hf"},
  };
  std::string p = path;
  for (const char* sec : {"optimizer.config.", "lr_scheduler.config."}) {
    std::string s = sec;
    if (p.rfind(s, 0) == 0) p = s.substr(0, s.size() - 7) + p.substr(s.size());  // drop "config."
  }
  auto it = alias.find(p);
  return it == alias.end() ? p : it->second;
}

// A value with where it came from ("recipe.yaml:12" or "--config a.b=v").
struct Setting {
  YAML::Node node;
  std::string where;
};
using Settings = std::map<std::string, Setting>;  // canonical path -> setting

std::string at_line(const std::string& origin, const YAML::Mark& m) {
  if (m.is_null()) return origin;
  return fmt::format("{}:{}", origin, m.line + 1);
}

// Walks a mapping node under `prefix` ("" = document root), recording each leaf under its canonical path.
void flatten(const YAML::Node& node, const std::string& prefix, const std::string& origin, bool from_file,
             Settings& out) {
  if (!node.IsMap()) {
    throw Error("{}: '{}' must be a mapping of keys, got {}", at_line(origin, node.Mark()),
                prefix.empty() ? "(document)" : prefix, node.IsSequence() ? "a list" : "a scalar");
  }
  for (auto it = node.begin(); it != node.end(); ++it) {
    const YAML::Node& key = it->first;
    const YAML::Node& val = it->second;
    std::string where = from_file ? at_line(origin, key.Mark()) : origin;
    if (!key.IsScalar()) throw Error("{}: keys must be plain names", where);
    std::string path = prefix.empty() ? key.Scalar() : prefix + "." + key.Scalar();
    std::string cpath = canonical(path);
    bool group = (prefix.empty() && is_section(path)) || path == "optimizer.config" || path == "lr_scheduler.config";
    if (group) {
      if (val.IsNull()) continue;  // an empty section
      flatten(val, path, origin, from_file, out);
      continue;
    }
    if (!find_field(cpath)) throw Error("{}: unknown key '{}'", where, path);
    if (from_file && out.count(cpath)) {
      throw Error("{}: key '{}' is set twice (also at {})", where, path, out[cpath].where);
    }
    out[cpath] = Setting{val, where};
  }
}

YAML::Node parse_yaml(const std::string& text, const std::string& origin) {
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw Error("{}:{}:{}: invalid YAML: {}", origin, e.mark.line + 1, e.mark.column + 1, e.msg);
  }
}

// ---- typed conversion ----

[[noreturn]] void type_error(const std::string& where, const std::string& path, Kind k, const YAML::Node& n) {
  std::string got;
  if (n.IsSequence()) got = "a list";
  else if (n.IsMap()) got = "a mapping";
  else if (n.IsNull()) got = "null";
  else if (n.Tag() == "!") got = fmt::format("the string \"{}\"", n.Scalar());
  else got = fmt::format("'{}'", n.Scalar());
  throw Error("{}: key '{}': expected {}, got {}", where, path, kind_name(k), got);
}

// A plain (unquoted) scalar, as number/bool conversions need.
bool plain_scalar(const YAML::Node& n) { return n.IsScalar() && n.Tag() != "!"; }

bool to_int(const std::string& s, int64_t& v) {
  std::string t = (!s.empty() && s[0] == '+') ? s.substr(1) : s;
  auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  return ec == std::errc() && p == t.data() + t.size() && !t.empty();
}

bool to_double(const std::string& s, double& v) {
  if (s.empty()) return false;
  for (char c : s)  // decimal notation only (no hex, inf, nan)
    if (!(std::isdigit(static_cast<unsigned char>(c)) || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-'))
      return false;
  char* end = nullptr;
  v = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size() && std::isfinite(v);
}

void assign(RecipeConfig& c, const Field& f, const Setting& s) {
  const YAML::Node& n = s.node;
  void* p = f.ref(c);
  switch (f.kind) {
    case Kind::String:
      if (n.IsNull()) *static_cast<std::string*>(p) = "";
      else if (n.IsScalar()) *static_cast<std::string*>(p) = n.Scalar();
      else type_error(s.where, f.path, f.kind, n);
      return;
    case Kind::Double: {
      double v = 0;
      if (!plain_scalar(n) || !to_double(n.Scalar(), v)) type_error(s.where, f.path, f.kind, n);
      *static_cast<double*>(p) = v;
      return;
    }
    case Kind::Int: {
      int64_t v = 0;
      if (!plain_scalar(n) || !to_int(n.Scalar(), v)) type_error(s.where, f.path, f.kind, n);
      *static_cast<int64_t*>(p) = v;
      return;
    }
    case Kind::UInt: {
      uint64_t v = 0;
      const std::string& t = n.IsScalar() ? n.Scalar() : std::string();
      auto [q, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
      if (!plain_scalar(n) || t.empty() || ec != std::errc() || q != t.data() + t.size())
        type_error(s.where, f.path, f.kind, n);
      *static_cast<uint64_t*>(p) = v;
      return;
    }
    case Kind::Bool: {
      const std::string t = n.IsScalar() ? n.Scalar() : std::string();
      if (!plain_scalar(n) || (t != "true" && t != "false" && t != "True" && t != "False"))
        type_error(s.where, f.path, f.kind, n);
      *static_cast<bool*>(p) = t == "true" || t == "True";
      return;
    }
    case Kind::DoubleList: {
      if (!n.IsSequence()) type_error(s.where, f.path, f.kind, n);
      std::vector<double> out;
      for (const auto& e : n) {
        double v = 0;
        if (!plain_scalar(e) || !to_double(e.Scalar(), v)) type_error(s.where, f.path, f.kind, n);
        out.push_back(v);
      }
      *static_cast<std::vector<double>*>(p) = out;
      return;
    }
    case Kind::OptInt: {
      auto* o = static_cast<std::optional<int64_t>*>(p);
      if (n.IsNull()) {
        o->reset();
        return;
      }
      int64_t v = 0;
      if (!plain_scalar(n) || !to_int(n.Scalar(), v)) type_error(s.where, f.path, f.kind, n);
      *o = v;
      return;
    }
  }
}

// ---- validation ----

void validate(const RecipeConfig& c, const Settings& set, const std::string& origin) {
  auto where = [&](const char* path) {
    auto it = set.find(path);
    return it == set.end() ? origin + " (default)" : it->second.where;
  };
  auto fail = [&](const char* path, const std::string& what) {
    throw Error("{}: {} {}", where(path), path, what);
  };
  auto one_of = [&](const char* path, const std::string& v, std::initializer_list<const char*> allowed) {
    std::string list;
    for (const char* a : allowed) {
      if (v == a) return;
      list += list.empty() ? a : fmt::format(", {}", a);
    }
    fail(path, fmt::format("must be one of {}, got '{}'", list, v));
  };

  const auto& m = c.model;
  if (m.path.empty() && m.arch.empty()) fail("model.path", "or model.arch must be set");
  one_of("model.dtype", m.dtype, {"float32", "bfloat16", "float16"});

  const auto& d = c.dataset;
  if (d.path.empty()) fail("dataset.path", "must be set");
  one_of("dataset.format", d.format, {"auto", "src_tgt", "chat", "gsm8k"});
  if (d.train_split.empty()) fail("dataset.train_split", "must not be empty");
  if (!(d.valid_fraction >= 0 && d.valid_fraction < 1))
    fail("dataset.valid_fraction", fmt::format("must be in [0, 1), got {}", d.valid_fraction));
  if (!d.valid_split.empty() && d.valid_fraction > 0)
    fail("dataset.valid_fraction", "must be 0 when dataset.valid_split is set (use one or the other)");
  if (!d.valid_split.empty() && d.valid_split == d.train_split)
    fail("dataset.valid_split", fmt::format("must differ from dataset.train_split ('{}')", d.train_split));
  if (d.max_seq_len < 1) fail("dataset.max_seq_len", fmt::format("must be >= 1, got {}", d.max_seq_len));
  if (d.max_num_tokens < d.max_seq_len)
    fail("dataset.max_num_tokens",
         fmt::format("must be >= dataset.max_seq_len ({}), got {}", d.max_seq_len, d.max_num_tokens));
  if (d.min_seq_len < 1 || d.min_seq_len > d.max_seq_len)
    fail("dataset.min_seq_len", fmt::format("must be in [1, max_seq_len={}], got {}", d.max_seq_len, d.min_seq_len));
  if (d.example_shuffle_window < 0)
    fail("dataset.example_shuffle_window", fmt::format("must be >= 0, got {}", d.example_shuffle_window));
  if (d.batch_shuffle_window < 0)
    fail("dataset.batch_shuffle_window", fmt::format("must be >= 0, got {}", d.batch_shuffle_window));
  one_of("dataset.src_encode_mode", d.src_encode_mode, {"prompt", "prompt_response", "default", "as_is"});
  one_of("dataset.tgt_encode_mode", d.tgt_encode_mode, {"prompt", "prompt_response", "default", "as_is"});

  const auto& t = c.trainer;
  if (t.grad_accumulation < 1)
    fail("trainer.grad_accumulation", fmt::format("must be >= 1, got {}", t.grad_accumulation));
  if (!(t.max_grad_norm >= 0)) fail("trainer.max_grad_norm", fmt::format("must be >= 0, got {}", t.max_grad_norm));
  one_of("trainer.dtype", t.dtype, {"float32", "bfloat16", "float16"});

  const auto& o = c.optimizer;
  one_of("optimizer.name", o.name, {"adamw"});
  if (!(o.lr > 0)) fail("optimizer.lr", fmt::format("must be > 0, got {}", o.lr));
  if (o.betas.size() != 2) fail("optimizer.betas", fmt::format("must have 2 values, got {}", o.betas.size()));
  for (double b : o.betas)
    if (!(b >= 0 && b < 1)) fail("optimizer.betas", fmt::format("values must be in [0, 1), got {}", b));
  if (!(o.eps > 0)) fail("optimizer.eps", fmt::format("must be > 0, got {}", o.eps));
  if (!(o.weight_decay >= 0)) fail("optimizer.weight_decay", fmt::format("must be >= 0, got {}", o.weight_decay));

  const auto& l = c.lr_scheduler;
  one_of("lr_scheduler.name", l.name, {"cosine_annealing"});
  if (l.num_warmup_steps < 0)
    fail("lr_scheduler.num_warmup_steps", fmt::format("must be >= 0, got {}", l.num_warmup_steps));
  if (!(l.final_lr_scale >= 0 && l.final_lr_scale <= 1))
    fail("lr_scheduler.final_lr_scale", fmt::format("must be in [0, 1], got {}", l.final_lr_scale));
  if (l.cycle_len && *l.cycle_len < 1) fail("lr_scheduler.cycle_len", fmt::format("must be >= 1, got {}", *l.cycle_len));

  const auto& r = c.regime;
  if (r.num_steps < 1) fail("regime.num_steps", fmt::format("must be > 0, got {}", r.num_steps));
  if (r.num_data_epochs && *r.num_data_epochs < 1)
    fail("regime.num_data_epochs", fmt::format("must be >= 1 or null, got {}", *r.num_data_epochs));
  if (r.checkpoint_every_n_steps < 0)
    fail("regime.checkpoint_every_n_steps", fmt::format("must be >= 0 (0 = never), got {}", r.checkpoint_every_n_steps));
  if (r.keep_last_n_checkpoints < 0)
    fail("regime.keep_last_n_checkpoints", fmt::format("must be >= 0 (0 = keep all), got {}", r.keep_last_n_checkpoints));
  if (r.validate_every_n_steps < 0)
    fail("regime.validate_every_n_steps", fmt::format("must be >= 0 (0 = never), got {}", r.validate_every_n_steps));
  if (r.publish_metrics_every_n_steps < 1)
    fail("regime.publish_metrics_every_n_steps", fmt::format("must be >= 1, got {}", r.publish_metrics_every_n_steps));

  // metric_recorders: comma-separated subset of {jsonl, tensorboard}; "" = none.
  std::stringstream ss(c.common.metric_recorders);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item != "jsonl" && item != "tensorboard")
      fail("common.metric_recorders",
           fmt::format("must be a comma-separated list of jsonl, tensorboard; got '{}'", c.common.metric_recorders));
  }
}

// ---- dump ----

std::string yaml_quote(const std::string& s) {
  std::string out = "\"";
  for (unsigned char ch : s) {
    switch (ch) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (ch < 0x20 || ch == 0x7f) out += fmt::format("\\x{:02x}", ch);
        else out += static_cast<char>(ch);
    }
  }
  return out + "\"";
}

// Shortest representation that reads back to the same double, always with a '.' (so that YAML 1.1
// readers such as PyYAML see a float too).
std::string yaml_double(double v) {
  std::string s = fmt::format("{}", v);
  size_t e = s.find_first_of("eE");
  if (s.find('.') == std::string::npos) s.insert(e == std::string::npos ? s.size() : e, ".0");
  return s;
}

std::string dump_value(RecipeConfig& c, const Field& f) {
  void* p = f.ref(c);
  switch (f.kind) {
    case Kind::String: return yaml_quote(*static_cast<std::string*>(p));
    case Kind::Double: return yaml_double(*static_cast<double*>(p));
    case Kind::Int: return fmt::format("{}", *static_cast<int64_t*>(p));
    case Kind::UInt: return fmt::format("{}", *static_cast<uint64_t*>(p));
    case Kind::Bool: return *static_cast<bool*>(p) ? "true" : "false";
    case Kind::DoubleList: {
      std::string s = "[";
      for (double v : *static_cast<std::vector<double>*>(p)) s += (s.size() > 1 ? ", " : "") + yaml_double(v);
      return s + "]";
    }
    case Kind::OptInt: {
      auto* o = static_cast<std::optional<int64_t>*>(p);
      return *o ? fmt::format("{}", **o) : "null";
    }
  }
  return "";
}

}  // namespace

RecipeConfig parse_recipe(const std::string& yaml_text, const std::string& origin,
                          const std::vector<std::string>& overrides) {
  Settings set;
  YAML::Node root = parse_yaml(yaml_text, origin);
  if (!root.IsNull()) flatten(root, "", origin, /*from_file=*/true, set);

  for (const std::string& ov : overrides) {
    std::string where = fmt::format("--config {}", ov);
    size_t eq = ov.find('=');
    if (eq == std::string::npos || eq == 0) throw UsageError("{}: expected KEY=VALUE (e.g. optimizer.lr=1e-4)", where);
    std::string key = ov.substr(0, eq);
    YAML::Node val = parse_yaml(ov.substr(eq + 1), where);
    std::string ckey = canonical(key);
    if (is_section(key) || key == "optimizer.config" || key == "lr_scheduler.config") {
      if (!val.IsMap()) throw Error("{}: '{}' is a section: give a mapping, e.g. {}={{a: 1}}", where, key, key);
      flatten(val, key, where, /*from_file=*/false, set);
      continue;
    }
    if (!find_field(ckey)) throw Error("{}: unknown key '{}'", where, key);
    set[ckey] = Setting{val, where};
  }

  RecipeConfig c;
  for (const auto& [path, s] : set) assign(c, *find_field(path), s);
  validate(c, set, origin);
  return c;
}

RecipeConfig load_recipe(const std::string& yaml_path, const std::vector<std::string>& overrides) {
  std::ifstream in(yaml_path, std::ios::binary);
  if (!in) throw Error("{}: cannot open recipe file", yaml_path);
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw Error("{}: read error", yaml_path);
  return parse_recipe(ss.str(), yaml_path, overrides);
}

std::string dump_recipe(const RecipeConfig& cfg) {
  RecipeConfig c = cfg;  // fields() hands out mutable references
  std::string out;
  std::string section;
  for (const Field& f : fields()) {
    std::string path = f.path;
    size_t dot = path.find('.');
    std::string sec = path.substr(0, dot);
    if (sec != section) {
      out += (section.empty() ? "" : "\n") + sec + ":\n";
      section = sec;
    }
    out += fmt::format("  {}: {}\n", path.substr(dot + 1), dump_value(c, f));
  }
  return out;
}

}  // namespace gemma4
