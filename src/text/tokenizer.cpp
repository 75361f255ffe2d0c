// tokenizer.json loading and the HF encode/decode pipeline:
//   added tokens (non-normalized) on the raw text -> normalizer on each remaining piece -> added tokens
//   (normalized) -> pre-tokenizer -> BPE; decode: ids -> tokens -> decoder chain.
#include "text/tokenizer.h"

#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <unordered_map>
#include <unordered_set>

#include "core/error.h"
#include "text/bpe.h"
#include "text/tokenizer_added.h"
#include "text/tokenizer_components.h"
#include "text/tokenizer_json.h"
#include "text/utf8.h"

namespace gemma4 {
namespace {

using nlohmann::json;
using namespace tok;

std::string read_whole_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw Error("{}: cannot open file", path);
  std::string data;
  std::fseek(f, 0, SEEK_END);
  long size = std::ftell(f);
  std::fseek(f, 0, SEEK_SET);
  if (size < 0) {
    std::fclose(f);
    throw Error("{}: cannot read file", path);
  }
  data.resize(size_t(size));
  size_t got = size ? std::fread(data.data(), 1, data.size(), f) : 0;
  std::fclose(f);
  if (got != data.size()) throw Error("{}: cannot read file", path);
  return data;
}

json parse_component(std::string_view raw, const std::string& file, const char* key) {
  try {
    return json::parse(raw);
  } catch (const json::exception& e) {
    throw Error("{}: invalid JSON in '{}': {}", file, key, e.what());
  }
}

bool json_bool(const json& j, const char* key, const std::string& file, size_t index) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_boolean())
    throw Error("{}: added_tokens[{}]: field '{}' must be a boolean", file, index, key);
  return it->get<bool>();
}

class HfTokenizer final : public Tokenizer {
 public:
  explicit HfTokenizer(std::string file) : file_(std::move(file)), bpe_(file_) {}

  void load(std::string_view text);

  std::vector<int32_t> encode(std::string_view text) const override;
  std::vector<int32_t> encode_with_special_tokens(std::string_view text) const override;
  std::string decode(const std::vector<int32_t>& ids, bool skip_special) const override;
  int64_t vocab_size() const override { return vocab_size_; }
  int32_t token_to_id(std::string_view token) const override {
    if (auto it = added_ids_.find(std::string(token)); it != added_ids_.end()) return it->second;
    return bpe_.token_to_id(token);
  }
  std::string id_to_token(int32_t id) const override {
    const std::string* t = token_of(id);
    return t ? *t : std::string(bpe_.has_id(id) ? bpe_.token_view(id) : std::string_view());
  }
  bool is_special(int32_t id) const override {
    auto it = added_.find(id);
    return it != added_.end() && it->second.special;
  }

 private:
  void parse_model(JsonScanner& js);
  void add_tokens(const json& list);
  // The added token's string for decode (its normalized form when it has one), or nullptr.
  const std::string* token_of(int32_t id) const {
    if (auto it = normalized_cache_.find(id); it != normalized_cache_.end()) return &it->second;
    if (auto it = added_.find(id); it != added_.end()) return &it->second.content;
    return nullptr;
  }
  void encode_piece(std::string_view text, bool at_origin, std::vector<int32_t>& out) const;

  std::string file_;
  BpeModel bpe_;
  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  std::unique_ptr<Decoder> decoder_;
  std::unique_ptr<PostProcessor> post_;
  std::map<int32_t, AddedToken> added_;                     // id -> token (HF added_tokens_map_r)
  std::unordered_map<std::string, int32_t> added_ids_;      // content -> id
  std::unordered_map<int32_t, std::string> normalized_cache_;
  std::unordered_set<std::string> special_contents_;
  std::vector<const AddedToken*> added_by_id_;
  AddedMatcher raw_matcher_, normalized_matcher_;
  int64_t vocab_size_ = 0;
};

void HfTokenizer::parse_model(JsonScanner& js) {
  BpeOptions opt;
  std::string scratch, scratch2;
  bool have_vocab = false, have_merges = false;
  std::string_view deferred_merges;  // merges seen before vocab (unusual order): parsed afterwards
  std::string type;
  auto opt_string = [&](std::optional<std::string>& dst) {
    if (js.peek() == 'n') {
      js.skip_value();
      dst.reset();
    } else {
      dst = std::string(js.string(&scratch));
    }
  };
  auto opt_bool = [&](bool& dst, const char* key) {
    std::string_view raw = js.skip_value();
    if (raw == "true") dst = true;
    else if (raw == "false") dst = false;
    else if (raw != "null") throw Error("{}: model.{} must be a boolean", file_, key);
  };
  auto parse_merges = [&](JsonScanner& m) {
    m.expect('[');
    size_t index = 0;
    for (bool first = true; m.more(']', first); first = false, ++index) {
      if (m.peek() == '[') {  // ["a", "b"]
        m.expect('[');
        std::string_view a = m.string(&scratch);
        bool copy = a.data() == scratch.data();
        if (copy) a = scratch2 = std::string(a);
        m.expect(',');
        std::string_view b = m.string(&scratch);
        copy = copy || b.data() == scratch.data();
        m.expect(']');
        bpe_.add_merge(a, b, copy);
      } else {  // "a b" (legacy): exactly one space; "#version" lines are skipped, as HF does
        std::string_view line = m.string(&scratch);
        bool copy = line.data() == scratch.data();
        if (line.substr(0, 8) == "#version") continue;
        size_t sp = line.find(' ');
        if (sp == std::string_view::npos || line.find(' ', sp + 1) != std::string_view::npos)
          throw Error("{}: model.merges[{}]: '{}' is not of the form 'a b'", file_, index, line);
        bpe_.add_merge(line.substr(0, sp), line.substr(sp + 1), copy);
      }
    }
  };
  js.expect('{');
  for (bool first = true; js.more('}', first); first = false) {
    std::string key(js.string(&scratch));
    js.expect(':');
    if (key == "type") {
      type = js.string(&scratch);
      if (type != "BPE") throw Error("{}: unsupported model type '{}'", file_, type);
    } else if (key == "dropout") {
      std::string_view raw = js.skip_value();
      if (raw != "null" && std::stod(std::string(raw)) != 0.0)
        throw Error("{}: model.dropout {} is not supported (BPE dropout is random)", file_, raw);
    } else if (key == "unk_token") {
      opt_string(opt.unk_token);
    } else if (key == "continuing_subword_prefix") {
      opt_string(opt.continuing_subword_prefix);
    } else if (key == "end_of_word_suffix") {
      opt_string(opt.end_of_word_suffix);
    } else if (key == "fuse_unk") {
      opt_bool(opt.fuse_unk, "fuse_unk");
    } else if (key == "byte_fallback") {
      opt_bool(opt.byte_fallback, "byte_fallback");
    } else if (key == "ignore_merges") {
      opt_bool(opt.ignore_merges, "ignore_merges");
    } else if (key == "vocab") {
      js.expect('{');
      for (bool f = true; js.more('}', f); f = false) {
        std::string_view token = js.string(&scratch);
        if (token.data() == scratch.data()) token = scratch2 = std::string(token);
        js.expect(':');
        bpe_.add_token(token, js.integer());
      }
      have_vocab = true;
      if (!deferred_merges.empty()) {
        JsonScanner m(deferred_merges, file_);
        parse_merges(m);
      }
    } else if (key == "merges") {
      have_merges = true;
      if (have_vocab) parse_merges(js);
      else deferred_merges = js.skip_value();
    } else {
      js.skip_value();
    }
  }
  if (type.empty()) throw Error("{}: model has no 'type'", file_);
  if (!have_vocab || !have_merges) throw Error("{}: model: Missing vocab/merges", file_);
  bpe_.finish(std::move(opt));
}

// HF AddedVocabulary::add_tokens, in file order: a token whose content is in the model vocabulary takes that id,
// others get new ids from the model's size on (the "id" field is not used, as in HF).
void HfTokenizer::add_tokens(const json& list) {
  if (!list.is_array()) throw Error("{}: added_tokens must be a list", file_);
  int32_t next_id = int32_t(bpe_.size());
  for (size_t i = 0; i < list.size(); ++i) {
    const json& t = list[i];
    if (!t.is_object() || !t.contains("content") || !t["content"].is_string())
      throw Error("{}: added_tokens[{}] has no string 'content'", file_, i);
    AddedToken tok;
    tok.content = t["content"].get<std::string>();
    tok.single_word = json_bool(t, "single_word", file_, i);
    tok.lstrip = json_bool(t, "lstrip", file_, i);
    tok.rstrip = json_bool(t, "rstrip", file_, i);
    tok.normalized = json_bool(t, "normalized", file_, i);
    tok.special = json_bool(t, "special", file_, i);
    if (tok.content.empty()) continue;
    auto known = added_ids_.find(tok.content);
    if (known != added_ids_.end() && added_[known->second] == tok) continue;
    int32_t id = known != added_ids_.end() ? known->second : bpe_.token_to_id(tok.content);
    if (id < 0) id = next_id++;
    if (tok.normalized && normalizer_) {
      std::string normed = tok.content;
      normalizer_->normalize(normed);
      if (normed != tok.content) normalized_cache_[id] = normed;
    }
    added_ids_[tok.content] = id;
    if (tok.special) special_contents_.insert(tok.content);
    added_[id] = std::move(tok);
  }
  vocab_size_ = bpe_.id_bound();
  if (!added_.empty()) vocab_size_ = std::max<int64_t>(vocab_size_, added_.rbegin()->first + 1);
  added_by_id_.assign(size_t(vocab_size_), nullptr);
  for (const auto& [id, tok] : added_) {
    added_by_id_[id] = &tok;
    if (tok.normalized) {
      auto it = normalized_cache_.find(id);
      normalized_matcher_.add(it != normalized_cache_.end() ? it->second : tok.content, id);
    } else {
      raw_matcher_.add(tok.content, id);
    }
  }
}

void HfTokenizer::load(std::string_view text) {
  if (size_t bad = find_invalid_utf8(text); bad != std::string_view::npos)
    throw Error("{}: not valid UTF-8 (byte {})", file_, bad);
  JsonScanner js(text, file_);
  bpe_.reserve(text.size() / 128, text.size() / 64);  // the Gemma file: 33 MB, 262K tokens, 515K merges
  std::string scratch;
  json added = json::array();
  json normalizer, pre_tokenizer, post_processor, decoder;
  bool have_model = false;
  js.expect('{');
  for (bool first = true; js.more('}', first); first = false) {
    std::string key(js.string(&scratch));
    js.expect(':');
    if (key == "model") {
      parse_model(js);
      have_model = true;
      continue;
    }
    std::string_view raw = js.skip_value();
    if (key == "version") {
      if (raw != "\"1.0\"") throw Error("{}: Unknown tokenizer version {}", file_, raw);
    } else if (key == "truncation" || key == "padding") {
      if (raw != "null") throw Error("{}: '{}' settings are not supported (only null)", file_, key);
    } else if (key == "added_tokens") {
      added = parse_component(raw, file_, "added_tokens");
    } else if (key == "normalizer") {
      normalizer = parse_component(raw, file_, "normalizer");
    } else if (key == "pre_tokenizer") {
      pre_tokenizer = parse_component(raw, file_, "pre_tokenizer");
    } else if (key == "post_processor") {
      post_processor = parse_component(raw, file_, "post_processor");
    } else if (key == "decoder") {
      decoder = parse_component(raw, file_, "decoder");
    }
  }
  if (!js.at_end()) js.fail("trailing characters after the top-level object");
  if (!have_model) throw Error("{}: no 'model'", file_);
  normalizer_ = make_normalizer(normalizer, file_);
  pre_tokenizer_ = make_pre_tokenizer(pre_tokenizer, file_);
  decoder_ = make_decoder(decoder, file_);
  post_ = make_post_processor(post_processor, file_);
  add_tokens(added);
  if (post_)
    for (int32_t id : post_->prefix)
      if (id >= vocab_size_) throw Error("{}: post_processor: id {} is out of range", file_, id);
  bos_id_ = token_to_id("<bos>");
  eos_id_ = token_to_id("<eos>");
  pad_id_ = token_to_id("<pad>");
}

void HfTokenizer::encode_piece(std::string_view text, bool at_origin, std::vector<int32_t>& out) const {
  thread_local std::string normalized;  // per-thread scratch: no allocation per piece in steady state
  thread_local std::vector<TextSplit> splits;
  thread_local std::vector<PreToken> pieces;
  normalized.assign(text);
  if (normalizer_) normalizer_->normalize(normalized);
  splits.clear();
  if (normalized_matcher_.empty()) splits.push_back({0, normalized.size(), -1});
  else normalized_matcher_.find(normalized, added_by_id_, splits);
  for (const TextSplit& s : splits) {
    if (s.end == s.begin) continue;
    if (s.id >= 0) {
      out.push_back(s.id);
      continue;
    }
    if (!pre_tokenizer_) {
      bpe_.tokenize(std::string_view(normalized).substr(s.begin, s.end - s.begin), out);
      continue;
    }
    pieces.resize(1);
    pieces[0].text.assign(normalized, s.begin, s.end - s.begin);
    pieces[0].at_origin = at_origin && s.begin == 0;
    pre_tokenizer_->pre_tokenize(pieces);
    for (const PreToken& p : pieces) bpe_.tokenize(p.text, out);
  }
}

std::vector<int32_t> HfTokenizer::encode(std::string_view text) const {
  if (size_t bad = find_invalid_utf8(text); bad != std::string_view::npos)
    throw Error("tokenizer: input is not valid UTF-8 (byte {})", bad);
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  if (raw_matcher_.empty()) {
    if (!text.empty()) encode_piece(text, true, out);
    return out;
  }
  thread_local std::vector<TextSplit> splits;
  raw_matcher_.find(text, added_by_id_, splits);
  for (const TextSplit& s : splits) {
    if (s.end == s.begin) continue;
    if (s.id >= 0) out.push_back(s.id);
    else encode_piece(text.substr(s.begin, s.end - s.begin), s.begin == 0, out);
  }
  return out;
}

std::vector<int32_t> HfTokenizer::encode_with_special_tokens(std::string_view text) const {
  std::vector<int32_t> ids = encode(text);
  if (!post_) return ids;
  std::vector<int32_t> out(post_->prefix);
  out.insert(out.end(), ids.begin(), ids.end());
  out.insert(out.end(), post_->suffix.begin(), post_->suffix.end());
  return out;
}

std::string HfTokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab_size_)
      throw Error("tokenizer: token id {} is out of range (vocabulary size {})", id, vocab_size_);
    const std::string* added = token_of(id);
    std::string token;
    if (added) token = *added;
    else if (bpe_.has_id(id)) token = bpe_.token_view(id);
    else throw Error("tokenizer: token id {} is not in the vocabulary", id);
    if (skip_special && special_contents_.count(token)) continue;
    tokens.push_back(std::move(token));
  }
  if (!decoder_) {
    std::string out;
    for (size_t i = 0; i < tokens.size(); ++i) out += (i ? " " : "") + tokens[i];
    return out;
  }
  decoder_->decode_chain(tokens);
  std::string out;
  for (const std::string& t : tokens) out += t;
  return out;
}

}  // namespace

EncodeMode parse_encode_mode(std::string_view s) {
  if (s == "as_is") return EncodeMode::AsIs;
  if (s == "default") return EncodeMode::Default;
  if (s == "prompt") return EncodeMode::Prompt;
  if (s == "prompt_response") return EncodeMode::PromptResponse;
  throw UsageError("unknown encode mode '{}' (expected as_is, default, prompt or prompt_response)", s);
}

std::shared_ptr<Tokenizer> Tokenizer::load(const std::string& path) {
  std::string file = path;
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) file = (std::filesystem::path(path) / "tokenizer.json").string();
  std::string text = read_whole_file(file);
  auto tok = std::make_shared<HfTokenizer>(file);
  tok->load(text);
  return tok;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, EncodeMode mode) const {
  bool bos = mode == EncodeMode::Default || mode == EncodeMode::Prompt;
  bool eos = mode == EncodeMode::Default || mode == EncodeMode::PromptResponse;
  if (bos && bos_id_ < 0) throw Error("tokenizer: no <bos> token for this encode mode");
  if (eos && eos_id_ < 0) throw Error("tokenizer: no <eos> token for this encode mode");
  std::vector<int32_t> ids;
  if (bos) ids.push_back(bos_id_);
  std::vector<int32_t> body = encode(text);
  ids.insert(ids.end(), body.begin(), body.end());
  if (eos) ids.push_back(eos_id_);
  return ids;
}

}  // namespace gemma4
