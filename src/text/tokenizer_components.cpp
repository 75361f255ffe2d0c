#include "text/tokenizer_components.h"

#include "core/error.h"
#include "text/utf8.h"

namespace gemma4::tok {
namespace {

using nlohmann::json;

// Typed field access with errors that name the component.
const json& field(const json& j, const char* key, const std::string& where, const char* what) {
  auto it = j.find(key);
  if (it == j.end()) throw Error("{}: {} has no field '{}'", where, what, key);
  return *it;
}
std::string str_field(const json& j, const char* key, const std::string& where, const char* what) {
  const json& v = field(j, key, where, what);
  if (!v.is_string()) throw Error("{}: {} field '{}' must be a string", where, what, key);
  return v.get<std::string>();
}
std::string type_of(const json& j, const std::string& where, const char* what) {
  if (!j.is_object()) throw Error("{}: {} must be an object", where, what);
  return str_field(j, "type", where, what);
}
// {"String": "x"} -> "x"; {"Regex": ...} is not supported (Gemma files use String patterns only).
std::string string_pattern(const json& j, const std::string& where, const std::string& what) {
  const json& p = field(j, "pattern", where, what.c_str());
  if (p.is_object() && p.size() == 1 && p.contains("String") && p["String"].is_string()) {
    std::string s = p["String"].get<std::string>();
    if (s.empty()) throw Error("{}: {} with an empty pattern is not supported", where, what);
    return s;
  }
  if (p.is_object() && p.contains("Regex")) throw Error("{}: {} with a Regex pattern is not supported", where, what);
  throw Error("{}: {} has a malformed pattern", where, what);
}

// Non-overlapping occurrences, left to right (what HF's escaped-regex find_iter yields).
void replace_all(std::string& s, std::string_view pattern, std::string_view content) {
  size_t p = s.find(pattern);
  if (p == std::string::npos) return;
  std::string out;
  out.reserve(s.size() + s.size() / 2);
  size_t last = 0;
  for (; p != std::string::npos; p = s.find(pattern, last)) {
    out.append(s, last, p - last);
    out.append(content);
    last = p + pattern.size();
  }
  out.append(s, last, std::string::npos);
  s.swap(out);
}

// ---- normalizers ----

class ReplaceNormalizer : public Normalizer {
 public:
  ReplaceNormalizer(std::string pattern, std::string content) : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void normalize(std::string& s) const override { replace_all(s, pattern_, content_); }

 private:
  std::string pattern_, content_;
};

class PrependNormalizer : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prepend) : prepend_(std::move(prepend)) {}
  void normalize(std::string& s) const override {
    if (!s.empty()) s.insert(0, prepend_);
  }

 private:
  std::string prepend_;
};

class SequenceNormalizer : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> parts) : parts_(std::move(parts)) {}
  void normalize(std::string& s) const override {
    for (const auto& p : parts_) p->normalize(s);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> parts_;
};

// ---- pre-tokenizers ----

enum class Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

Behavior parse_behavior(const json& j, const std::string& where) {
  std::string b = str_field(j, "behavior", where, "pre_tokenizer Split");
  if (b == "Removed") return Behavior::Removed;
  if (b == "Isolated") return Behavior::Isolated;
  if (b == "MergedWithPrevious") return Behavior::MergedWithPrevious;
  if (b == "MergedWithNext") return Behavior::MergedWithNext;
  if (b == "Contiguous") return Behavior::Contiguous;
  throw Error("{}: pre_tokenizer Split: unknown behavior '{}'", where, b);
}

struct Span {
  size_t b, e;
  bool flag;  // is a match (before the behavior), or "remove" (after)
};

// NormalizedString::split of HF: the (offsets, is_match) list of the pattern, folded by the behavior.
void split_by(const PreToken& in, const std::vector<Span>& matches, Behavior behavior, std::vector<PreToken>& out) {
  std::vector<Span> splits;
  switch (behavior) {
    case Behavior::Isolated:
      for (Span m : matches) splits.push_back({m.b, m.e, false});
      break;
    case Behavior::Removed:
      splits = matches;
      break;
    case Behavior::Contiguous: {
      bool prev = false;
      for (Span m : matches) {
        if (m.flag == prev && !splits.empty()) splits.back().e = m.e;
        else splits.push_back({m.b, m.e, false});
        prev = m.flag;
      }
      break;
    }
    case Behavior::MergedWithPrevious: {
      bool prev = false;
      for (Span m : matches) {
        if (m.flag && !prev && !splits.empty()) splits.back().e = m.e;
        else splits.push_back({m.b, m.e, false});
        prev = m.flag;
      }
      break;
    }
    case Behavior::MergedWithNext: {
      bool prev = false;
      for (size_t k = matches.size(); k-- > 0;) {
        Span m = matches[k];
        if (m.flag && !prev && !splits.empty()) splits.back().b = m.b;
        else splits.push_back({m.b, m.e, false});
        prev = m.flag;
      }
      std::reverse(splits.begin(), splits.end());
      break;
    }
  }
  for (Span s : splits) {
    if (s.flag || s.e == s.b) continue;  // removed, or empty (dropped by PreTokenizedString::split)
    out.push_back({in.text.substr(s.b, s.e - s.b), in.at_origin && s.b == 0});
  }
}

// Pattern::find_matches for a plain string: matches and the gaps between them, covering the text.
std::vector<Span> find_matches(std::string_view text, std::string_view pattern, bool invert) {
  std::vector<Span> m;
  if (text.empty()) return {{0, 0, invert}};
  size_t prev = 0;
  for (size_t p = text.find(pattern); p != std::string_view::npos; p = text.find(pattern, prev)) {
    if (p != prev) m.push_back({prev, p, invert});
    m.push_back({p, p + pattern.size(), !invert});
    prev = p + pattern.size();
  }
  if (prev != text.size()) m.push_back({prev, text.size(), invert});
  return m;
}

class SplitPreTokenizer : public PreTokenizer {
 public:
  SplitPreTokenizer(std::string pattern, Behavior behavior, bool invert)
      : pattern_(std::move(pattern)), behavior_(behavior), invert_(invert) {}
  void pre_tokenize(std::vector<PreToken>& pieces) const override {
    std::vector<PreToken> out;
    for (PreToken& p : pieces) {
      if (!invert_ && p.text.find(pattern_) == std::string::npos) {  // common case: nothing to split
        if (!p.text.empty()) out.push_back(std::move(p));
        continue;
      }
      split_by(p, find_matches(p.text, pattern_, invert_), behavior_, out);
    }
    pieces.swap(out);
  }

 private:
  std::string pattern_;
  Behavior behavior_;
  bool invert_;
};

enum class PrependScheme { First, Never, Always };

PrependScheme parse_prepend_scheme(const json& j, const std::string& where, const char* what) {
  PrependScheme scheme = PrependScheme::Always;
  if (auto it = j.find("prepend_scheme"); it != j.end()) {
    std::string s = it->is_string() ? it->get<std::string>() : "";
    if (s == "first") scheme = PrependScheme::First;
    else if (s == "never") scheme = PrependScheme::Never;
    else if (s == "always") scheme = PrependScheme::Always;
    else throw Error("{}: {}: unknown prepend_scheme {}", where, what, it->dump());
  }
  if (auto it = j.find("add_prefix_space"); it != j.end() && it->is_boolean() && !it->get<bool>()) {
    if (scheme != PrependScheme::Never)
      throw Error("{}: {}: add_prefix_space does not match declared prepend_scheme", where, what);
  }
  return scheme;
}

std::string replacement_char(const json& j, const std::string& where, const char* what) {
  std::string r = str_field(j, "replacement", where, what);
  if (r.empty() || !is_valid_utf8(r) || utf8_len(static_cast<unsigned char>(r[0])) != r.size())
    throw Error("{}: {}: replacement must be one character", where, what);
  return r;
}

class MetaspacePreTokenizer : public PreTokenizer {
 public:
  MetaspacePreTokenizer(std::string rep, PrependScheme scheme, bool split)
      : rep_(std::move(rep)), scheme_(scheme), split_(split) {}
  void pre_tokenize(std::vector<PreToken>& pieces) const override {
    std::vector<PreToken> out;
    for (PreToken& p : pieces) {
      replace_all(p.text, " ", rep_);
      bool starts = p.text.compare(0, rep_.size(), rep_) == 0;
      if (!starts && (scheme_ == PrependScheme::Always || (scheme_ == PrependScheme::First && p.at_origin)))
        p.text.insert(0, rep_);
      if (split_) split_by(p, find_matches(p.text, rep_, false), Behavior::MergedWithNext, out);
      else if (!p.text.empty()) out.push_back(std::move(p));
    }
    pieces.swap(out);
  }

 private:
  std::string rep_;
  PrependScheme scheme_;
  bool split_;
};

class SequencePreTokenizer : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> parts) : parts_(std::move(parts)) {}
  void pre_tokenize(std::vector<PreToken>& pieces) const override {
    for (const auto& p : parts_) p->pre_tokenize(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

// ---- decoders ----

class ReplaceDecoder : public Decoder {
 public:
  ReplaceDecoder(std::string pattern, std::string content) : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (std::string& t : tokens) replace_all(t, pattern_, content_);
  }

 private:
  std::string pattern_, content_;
};

// "<0xAB>" -> 0xAB, as Rust's u8::from_str_radix(&token[3..5], 16) reads it (a leading '+' is accepted).
int byte_token_value(std::string_view t) {
  if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
  auto hex = [](char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
  };
  int hi = hex(t[3]), lo = hex(t[4]);
  if (t[3] == '+' && lo >= 0) return lo;
  return hi >= 0 && lo >= 0 ? hi * 16 + lo : -1;
}

class ByteFallbackDecoder : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    out.reserve(tokens.size());
    std::string bytes;
    auto flush = [&] {
      if (bytes.empty()) return;
      if (is_valid_utf8(bytes)) out.push_back(bytes);
      else
        for (size_t k = 0; k < bytes.size(); ++k) out.emplace_back("\xEF\xBF\xBD");  // one U+FFFD per byte
      bytes.clear();
    };
    for (std::string& t : tokens) {
      int b = byte_token_value(t);
      if (b >= 0) {
        bytes += static_cast<char>(b);
        continue;
      }
      flush();
      out.push_back(std::move(t));
    }
    flush();
    tokens.swap(out);
  }
};

class FuseDecoder : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string all;
    for (const std::string& t : tokens) all += t;
    tokens.assign(1, std::move(all));
  }
};

// Strips up to `start` leading and `stop` trailing `content` characters of each token.
class StripDecoder : public Decoder {
 public:
  StripDecoder(std::string content, size_t start, size_t stop) : content_(std::move(content)), start_(start), stop_(stop) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (std::string& t : tokens) {
      size_t b = 0, e = t.size();
      for (size_t k = 0; k < start_ && t.compare(b, content_.size(), content_) == 0 && b < e; ++k) b += content_.size();
      for (size_t k = 0; k < stop_ && e >= b + content_.size() && t.compare(e - content_.size(), content_.size(), content_) == 0; ++k)
        e -= content_.size();
      t = t.substr(b, e - b);
    }
  }

 private:
  std::string content_;
  size_t start_, stop_;
};

class MetaspaceDecoder : public Decoder {
 public:
  MetaspaceDecoder(std::string rep, PrependScheme scheme) : rep_(std::move(rep)), scheme_(scheme) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i)  // in the first token every replacement char goes (as HF does)
      replace_all(tokens[i], rep_, i == 0 && scheme_ != PrependScheme::Never ? "" : " ");
  }

 private:
  std::string rep_;
  PrependScheme scheme_;
};

class SequenceDecoder : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> parts) : parts_(std::move(parts)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (const auto& p : parts_) p->decode_chain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> parts_;
};

template <class T, class Make>
std::vector<std::unique_ptr<T>> sequence_of(const json& j, const char* key, const std::string& where,
                                            const char* what, Make make) {
  const json& list = field(j, key, where, what);
  if (!list.is_array()) throw Error("{}: {} field '{}' must be a list", where, what, key);
  std::vector<std::unique_ptr<T>> parts;
  for (const json& e : list) {
    auto p = make(e, where);
    if (p) parts.push_back(std::move(p));
  }
  return parts;
}

size_t size_field(const json& j, const char* key, const std::string& where, const char* what) {
  const json& v = field(j, key, where, what);
  if (!v.is_number_unsigned()) throw Error("{}: {} field '{}' must be a non-negative integer", where, what, key);
  return v.get<size_t>();
}

}  // namespace

std::unique_ptr<Normalizer> make_normalizer(const json& j, const std::string& where) {
  if (j.is_null()) return nullptr;
  std::string type = type_of(j, where, "normalizer");
  if (type == "Replace")
    return std::make_unique<ReplaceNormalizer>(string_pattern(j, where, "normalizer Replace"),
                                               str_field(j, "content", where, "normalizer Replace"));
  if (type == "Prepend") return std::make_unique<PrependNormalizer>(str_field(j, "prepend", where, "normalizer Prepend"));
  if (type == "Sequence")
    return std::make_unique<SequenceNormalizer>(
        sequence_of<Normalizer>(j, "normalizers", where, "normalizer Sequence", make_normalizer));
  throw Error("{}: unsupported normalizer type '{}'", where, type);
}

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const json& j, const std::string& where) {
  if (j.is_null()) return nullptr;
  std::string type = type_of(j, where, "pre_tokenizer");
  if (type == "Split") {
    const json& inv = field(j, "invert", where, "pre_tokenizer Split");
    if (!inv.is_boolean()) throw Error("{}: pre_tokenizer Split field 'invert' must be a boolean", where);
    return std::make_unique<SplitPreTokenizer>(string_pattern(j, where, "pre_tokenizer Split"), parse_behavior(j, where),
                                               inv.get<bool>());
  }
  if (type == "Metaspace") {
    bool split = true;
    if (auto it = j.find("split"); it != j.end() && it->is_boolean()) split = it->get<bool>();
    return std::make_unique<MetaspacePreTokenizer>(replacement_char(j, where, "pre_tokenizer Metaspace"),
                                                   parse_prepend_scheme(j, where, "pre_tokenizer Metaspace"), split);
  }
  if (type == "Sequence")
    return std::make_unique<SequencePreTokenizer>(
        sequence_of<PreTokenizer>(j, "pretokenizers", where, "pre_tokenizer Sequence", make_pre_tokenizer));
  throw Error("{}: unsupported pre_tokenizer type '{}'", where, type);
}

std::unique_ptr<Decoder> make_decoder(const json& j, const std::string& where) {
  if (j.is_null()) return nullptr;
  std::string type = type_of(j, where, "decoder");
  if (type == "Replace")
    return std::make_unique<ReplaceDecoder>(string_pattern(j, where, "decoder Replace"),
                                            str_field(j, "content", where, "decoder Replace"));
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Strip") {
    std::string content = str_field(j, "content", where, "decoder Strip");
    if (content.empty() || !is_valid_utf8(content) || utf8_len(static_cast<unsigned char>(content[0])) != content.size())
      throw Error("{}: decoder Strip: content must be one character", where);
    return std::make_unique<StripDecoder>(content, size_field(j, "start", where, "decoder Strip"),
                                          size_field(j, "stop", where, "decoder Strip"));
  }
  if (type == "Metaspace")
    return std::make_unique<MetaspaceDecoder>(replacement_char(j, where, "decoder Metaspace"),
                                              parse_prepend_scheme(j, where, "decoder Metaspace"));
  if (type == "Sequence")
    return std::make_unique<SequenceDecoder>(sequence_of<Decoder>(j, "decoders", where, "decoder Sequence", make_decoder));
  throw Error("{}: unsupported decoder type '{}'", where, type);
}

std::unique_ptr<PostProcessor> make_post_processor(const json& j, const std::string& where) {
  if (j.is_null()) return nullptr;
  std::string type = type_of(j, where, "post_processor");
  if (type != "TemplateProcessing") throw Error("{}: unsupported post_processor type '{}'", where, type);
  const char* what = "post_processor TemplateProcessing";
  const json& single = field(j, "single", where, what);
  const json& specials = field(j, "special_tokens", where, what);
  if (!single.is_array()) throw Error("{}: {}: 'single' must be a list of pieces", where, what);
  auto pp = std::make_unique<PostProcessor>();
  bool seen_sequence = false;
  for (const json& piece : single) {
    if (piece.is_object() && piece.contains("Sequence")) {
      std::string id = str_field(piece["Sequence"], "id", where, what);
      if (id != "A" || seen_sequence) throw Error("{}: {}: single template uses sequence '{}'", where, what, id);
      seen_sequence = true;
    } else if (piece.is_object() && piece.contains("SpecialToken")) {
      std::string id = str_field(piece["SpecialToken"], "id", where, what);
      auto it = specials.find(id);
      if (it == specials.end()) throw Error("{}: {}: missing special token '{}'", where, what, id);
      const json& ids = field(*it, "ids", where, what);
      if (!ids.is_array()) throw Error("{}: {}: special token '{}' ids must be a list", where, what, id);
      for (const json& v : ids) {
        if (!v.is_number_unsigned()) throw Error("{}: {}: special token '{}' has a bad id", where, what, id);
        (seen_sequence ? pp->suffix : pp->prefix).push_back(v.get<int32_t>());
      }
    } else {
      throw Error("{}: {}: unsupported template piece {}", where, what, piece.dump());
    }
  }
  if (!seen_sequence) throw Error("{}: {}: single template has no sequence", where, what);
  return pp;
}

}  // namespace gemma4::tok
