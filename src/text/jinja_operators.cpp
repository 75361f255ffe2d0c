// Arithmetic with Python semantics (bool is an int, int overflow is an error rather than a bignum).
#include <cmath>

#include "text/jinja_builtins.h"

namespace gemma4::jinja {
namespace {

bool is_intlike(const Value& v) { return v.is_int() || v.is_bool(); }
int64_t int_of(const Value& v) { return v.is_bool() ? int64_t{v.as_bool()} : v.as_int(); }

[[noreturn]] void unsupported(std::string_view op, const Value& a, const Value& b) {
  if (a.is_undefined() || b.is_undefined()) {
    const Value& u = a.is_undefined() ? a : b;
    const std::string& h = u.undefined().hint;
    throw RuntimeError("{} (in operator '{}')", h.empty() ? "value is undefined" : h, op);
  }
  if (op == "+" && a.is_string())
    throw RuntimeError("can only concatenate str (not \"{}\") to str", b.type_name());
  throw RuntimeError("unsupported operand type(s) for {}: '{}' and '{}'", op, a.type_name(), b.type_name());
}

template <typename Op>
int64_t checked(Op op, int64_t a, int64_t b) {
  int64_t r = 0;
  if (op(a, b, &r)) throw RuntimeError("integer overflow (Python integers are unbounded; this engine uses 64 bits)");
  return r;
}
bool add_ovf(int64_t a, int64_t b, int64_t* r) { return __builtin_add_overflow(a, b, r); }
bool sub_ovf(int64_t a, int64_t b, int64_t* r) { return __builtin_sub_overflow(a, b, r); }
bool mul_ovf(int64_t a, int64_t b, int64_t* r) { return __builtin_mul_overflow(a, b, r); }

Value repeat(const Value& seq, int64_t n) {
  if (seq.is_string()) {
    std::string r;
    for (int64_t i = 0; i < n; ++i) r += seq.str();
    return Value(r);
  }
  std::vector<Value> items;
  for (int64_t i = 0; i < n; ++i) items.insert(items.end(), seq.seq().items.begin(), seq.seq().items.end());
  return Value::list(std::move(items), seq.seq().kind);
}

double py_fmod(double a, double b) {
  double m = std::fmod(a, b);
  if (m != 0 && ((b < 0) != (m < 0))) m += b;
  if (m == 0) m = std::copysign(0.0, b);
  return m;
}

}  // namespace

Value py_binary(std::string_view op, const Value& a, const Value& b) {
  if (op == "~") return Value(py_str(a) + py_str(b));
  bool nums = a.is_number() && b.is_number();
  bool ints = is_intlike(a) && is_intlike(b);
  if (op == "+") {
    if (ints) return Value(checked(add_ovf, int_of(a), int_of(b)));
    if (nums) return Value(a.to_double() + b.to_double());
    if (a.is_string() && b.is_string()) return Value(a.str() + b.str());
    if (a.is_seq() && b.is_seq() && a.seq().kind == b.seq().kind &&
        (a.seq().kind == Sequence::Kind::List || a.seq().kind == Sequence::Kind::Tuple)) {
      std::vector<Value> items = a.seq().items;
      items.insert(items.end(), b.seq().items.begin(), b.seq().items.end());
      return Value::list(std::move(items), a.seq().kind);
    }
    unsupported(op, a, b);
  }
  if (op == "-") {
    if (ints) return Value(checked(sub_ovf, int_of(a), int_of(b)));
    if (nums) return Value(a.to_double() - b.to_double());
    unsupported(op, a, b);
  }
  if (op == "*") {
    if (ints) return Value(checked(mul_ovf, int_of(a), int_of(b)));
    if (nums) return Value(a.to_double() * b.to_double());
    auto seqlike = [](const Value& v) {
      return v.is_string() || (v.is_seq() && (v.seq().kind == Sequence::Kind::List || v.seq().kind == Sequence::Kind::Tuple));
    };
    if (seqlike(a) && is_intlike(b)) return repeat(a, int_of(b));
    if (is_intlike(a) && seqlike(b)) return repeat(b, int_of(a));
    unsupported(op, a, b);
  }
  if (op == "/") {
    if (!nums) unsupported(op, a, b);
    if (b.to_double() == 0) throw RuntimeError("division by zero");
    return Value(a.to_double() / b.to_double());
  }
  if (op == "//" || op == "%") {
    if (a.is_string() && op == "%") throw RuntimeError("unsupported: printf-style string formatting ('%')");
    if (!nums) unsupported(op, a, b);
    if (b.to_double() == 0) throw RuntimeError("integer division or modulo by zero");
    if (ints) {
      int64_t x = int_of(a), y = int_of(b);
      int64_t q = x / y, m = x % y;
      if (m != 0 && ((m < 0) != (y < 0))) {
        --q;
        m += y;
      }
      return Value(op == "//" ? q : m);
    }
    double x = a.to_double(), y = b.to_double();
    double m = py_fmod(x, y);
    if (op == "%") return Value(m);
    return Value(std::round((x - m) / y));
  }
  if (op == "**") {
    if (ints && int_of(b) >= 0) {
      int64_t base = int_of(a), e = int_of(b), acc = 1;
      if (base == 0 || base == 1) return Value(e == 0 ? int64_t{1} : base);
      if (base == -1) return Value(e % 2 ? int64_t{-1} : int64_t{1});
      for (int64_t i = 0; i < e; ++i) acc = checked(mul_ovf, acc, base);  // overflows by e=64
      return Value(acc);
    }
    if (nums) return Value(std::pow(a.to_double(), b.to_double()));
    unsupported(op, a, b);
  }
  throw RuntimeError("unsupported operator '{}'", op);
}

Value py_negate(const Value& a, bool negative) {
  if (is_intlike(a)) {
    int64_t x = int_of(a);
    if (!negative) return Value(x);
    if (x == INT64_MIN) throw RuntimeError("integer overflow");
    return Value(-x);
  }
  if (a.is_float()) return Value(negative ? -a.as_float() : a.as_float());
  if (a.is_undefined()) throw RuntimeError("{}", a.undefined().hint.empty() ? "value is undefined" : a.undefined().hint);
  throw RuntimeError("bad operand type for unary {}: '{}'", negative ? "-" : "+", a.type_name());
}

}  // namespace gemma4::jinja
