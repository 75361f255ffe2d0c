// Global functions of the template environment: jinja2's namespace, range and dict, and Hugging Face's
// raise_exception and strftime_now.
#include <ctime>

#include "text/jinja_builtins.h"

namespace gemma4::jinja {
namespace {

// jinja2's Namespace: attributes assignable with `{% set ns.attr = value %}`.
class Namespace : public Object {
 public:
  std::string type_name() const override { return "Namespace"; }
  std::string repr() const override { return "<Namespace " + py_repr(Value(attrs_)) + ">"; }
  bool get(std::string_view name, Value& out) const override {
    const Value* v = attrs_->find_str(name);
    if (!v) return false;
    out = *v;
    return true;
  }
  bool set(std::string_view name, const Value& v) override {
    attrs_->set(Value(std::string(name)), v);
    return true;
  }
  bool is_namespace() const override { return true; }
  int depth() const override { return 1 + attrs_->depth; }
  Dict& attrs() { return *attrs_; }

 private:
  DictPtr attrs_ = std::make_shared<Dict>();
};

Value fn(std::string name, std::function<Value(CallArgs&)> f) {
  return Value(std::make_shared<Callable>(Callable{std::move(name), std::move(f)}));
}

int64_t range_arg(const Value& v) {
  if (v.is_int()) return v.as_int();
  if (v.is_bool()) return v.as_bool();
  throw RuntimeError("'{}' object cannot be interpreted as an integer", v.type_name());
}

}  // namespace

void add_globals(Dict& g) {
  g.set(Value("namespace"), fn("namespace", [](CallArgs& a) {
          auto ns = std::make_shared<Namespace>();
          if (a.pos.size() > 1) throw RuntimeError("namespace() takes at most 1 positional argument");
          if (!a.pos.empty()) {
            const Value& init = a.pos[0];
            if (init.is_dict()) {
              for (const auto& [k, v] : init.dict_ref().items) ns->attrs().set(k, v);
            } else {
              for (const Value& pair : py_iterate(init)) {
                std::vector<Value> kv = py_iterate(pair);
                if (kv.size() != 2) throw RuntimeError("namespace(): sequence elements must be pairs");
                ns->attrs().set(kv[0], kv[1]);
              }
            }
          }
          for (const auto& [k, v] : a.kw) ns->attrs().set(Value(k), v);
          return Value(ObjPtr(ns));
        }));
  g.set(Value("range"), fn("range", [](CallArgs& a) {
          if (!a.kw.empty()) throw RuntimeError("range() takes no keyword arguments");
          if (a.pos.empty() || a.pos.size() > 3) throw RuntimeError("range expected 1 to 3 arguments");
          int64_t start = 0, stop, step = 1;
          if (a.pos.size() == 1) {
            stop = range_arg(a.pos[0]);
          } else {
            start = range_arg(a.pos[0]);
            stop = range_arg(a.pos[1]);
            if (a.pos.size() == 3) step = range_arg(a.pos[2]);
          }
          if (step == 0) throw RuntimeError("range() arg 3 must not be zero");
          std::vector<Value> items;
          for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
            // jinja2's sandbox caps ranges at 100000 items.
            if (items.size() >= 100000) throw RuntimeError("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
            items.emplace_back(i);
          }
          Value r = Value::list(std::move(items), Sequence::Kind::Range);
          r.seq().range_repr = step == 1 ? fmt::format("range({}, {})", start, stop)
                                         : fmt::format("range({}, {}, {})", start, stop, step);
          return r;
        }));
  g.set(Value("dict"), fn("dict", [](CallArgs& a) {
          Value d = Value::dict();
          if (a.pos.size() > 1) throw RuntimeError("dict expected at most 1 argument");
          if (!a.pos.empty()) {
            if (a.pos[0].is_dict()) {
              for (const auto& [k, v] : a.pos[0].dict_ref().items) d.dict_ref().set(k, v);
            } else {
              for (const Value& pair : py_iterate(a.pos[0])) {
                std::vector<Value> kv = py_iterate(pair);
                if (kv.size() != 2) throw RuntimeError("dict(): sequence elements must be pairs");
                d.dict_ref().set(kv[0], kv[1]);
              }
            }
          }
          for (const auto& [k, v] : a.kw) d.dict_ref().set(Value(k), v);
          return d;
        }));
  g.set(Value("raise_exception"), fn("raise_exception", [](CallArgs& a) -> Value {
          ArgBinder b(a, "raise_exception", {"message"});
          throw RuntimeError("raise_exception: {}", py_str(b.get(0)));
        }));
  g.set(Value("strftime_now"), fn("strftime_now", [](CallArgs& a) {
          ArgBinder b(a, "strftime_now", {"format"});
          if (!b.get(0).is_string()) throw RuntimeError("strftime_now() needs a format string");
          std::time_t t = std::time(nullptr);
          std::tm tm{};
          localtime_r(&t, &tm);
          char buf[512];
          size_t n = std::strftime(buf, sizeof buf, b.get(0).str().c_str(), &tm);
          return Value(std::string(buf, n));
        }));
}

}  // namespace gemma4::jinja
