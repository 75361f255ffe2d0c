// SFT data with fairseq2's semantics (recipes/lm/sft/dataset.py): JSONL readers, length filtering,
// sliding-window shuffles, length bucketing (create_bucket_sizes + bucket_by_length), a resumable batch
// stream and the validation split.
//
// Malformed input: read_examples reports every bad line as "file:line: problem" in DataStats (count + the
// first few messages) and goes on; load_sft_data then fails with the first report, as fairseq2 fails on a
// record it cannot read. Examples shorter than min_seq_len or longer than max_seq_len are skipped and
// counted, never truncated.
//
// Order: each epoch e takes the examples in file order, shuffles them with a sliding window of
// example_shuffle_window (seed derived from (seed, e, 0)), buckets them, then shuffles the batches with a
// window of batch_shuffle_window (seed from (seed, e, 1)). An epoch's batch list is a pure function of
// (data, config, seed, e), so a stream's position is just (epoch, index) and restoring it is exact.
#include "train/data.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "text/tokenizer.h"
#include "text/utf8.h"
#include "train/data_internal.h"

namespace gemma4 {

namespace fs = std::filesystem;

int64_t Batch::num_target_elements() const {
  int64_t n = 0;
  for (const Example& e : examples) n += e.num_targets();
  return n;
}

namespace data {

std::vector<std::pair<int64_t, int64_t>> create_bucket_sizes(int64_t max_num_elements, int64_t max_seq_len,
                                                             int64_t min_seq_len) {
  G4_CHECK(min_seq_len >= 1 && min_seq_len <= max_seq_len && max_seq_len <= max_num_elements,
           "bucket sizes: need 1 <= min_seq_len ({}) <= max_seq_len ({}) <= max_num_tokens ({})", min_seq_len,
           max_seq_len, max_num_elements);
  // fairseq2 additionally asks max_num_elements to be a multiple of max_seq_len; the invariant
  // batch_size * bucket_len <= max_num_elements holds without it, so it is not required here.
  std::vector<std::pair<int64_t, int64_t>> sizes;
  int64_t seq_len = 1, batch_size = max_num_elements;
  while (seq_len < max_seq_len) {
    if (seq_len >= min_seq_len) sizes.emplace_back(batch_size, seq_len);
    batch_size = max_num_elements / (seq_len + 1);
    seq_len = max_num_elements / batch_size;
  }
  sizes.emplace_back(batch_size, max_seq_len);
  return sizes;
}

std::vector<std::vector<int64_t>> bucket_by_length(const std::vector<int64_t>& order,
                                                   const std::vector<int64_t>& lengths,
                                                   const std::vector<std::pair<int64_t, int64_t>>& bucket_sizes) {
  std::vector<std::vector<int64_t>> out, buckets(bucket_sizes.size());
  const int64_t max_len = bucket_sizes.back().second;
  for (int64_t item : order) {
    int64_t len = lengths[static_cast<size_t>(item)];
    G4_CHECK(len <= max_len, "bucketing: an example of {} tokens exceeds the longest bucket ({})", len, max_len);
    for (size_t b = 0; b < bucket_sizes.size(); ++b) {
      if (len > bucket_sizes[b].second) continue;
      buckets[b].push_back(item);
      if (static_cast<int64_t>(buckets[b].size()) >= bucket_sizes[b].first) {
        out.push_back(std::move(buckets[b]));
        buckets[b].clear();
      }
      break;
    }
  }
  // The remainder: from the longest bucket down, top each up with the tail of the shorter buckets.
  for (size_t b = buckets.size(); b > 0; --b) {
    std::vector<int64_t>& bucket = buckets[b - 1];
    while (!bucket.empty()) {
      int64_t room = bucket_sizes[b - 1].first - static_cast<int64_t>(bucket.size());
      for (size_t o = b - 1; o > 0 && room > 0; --o) {
        std::vector<int64_t>& other = buckets[o - 1];
        while (room > 0 && !other.empty()) {
          bucket.push_back(other.back());
          other.pop_back();
          --room;
        }
      }
      out.push_back(std::move(bucket));
      bucket.clear();
    }
  }
  return out;
}

namespace {

const char* json_type(const nlohmann::ordered_json& j) {
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null: return "null";
    case nlohmann::ordered_json::value_t::object: return "an object";
    case nlohmann::ordered_json::value_t::array: return "a list";
    case nlohmann::ordered_json::value_t::string: return "a string";
    case nlohmann::ordered_json::value_t::boolean: return "a boolean";
    default: return "a number";
  }
}

const std::string& string_field(const nlohmann::ordered_json& r, const char* key, const std::string& format) {
  auto it = r.find(key);
  if (it == r.end()) throw Error("missing field '{}' ({} record)", key, format);
  if (!it->is_string()) throw Error("field '{}' must be a string, got {}", key, json_type(*it));
  return it->get_ref<const std::string&>();
}

std::vector<int32_t> encode_field(const Tokenizer& tok, const char* key, const std::string& text, EncodeMode mode) {
  try {
    return tok.encode(text, mode);
  } catch (const Error& e) {
    throw Error("field '{}': {}", key, e.what());
  }
}

Example from_src_tgt(const std::vector<int32_t>& src, const std::vector<int32_t>& tgt) {
  Example ex;
  ex.ids.reserve(src.size() + tgt.size());
  ex.ids.assign(src.begin(), src.end());
  ex.ids.insert(ex.ids.end(), tgt.begin(), tgt.end());
  ex.target.assign(src.size(), 0);
  ex.target.resize(ex.ids.size(), 1);
  return ex;
}

}  // namespace

Example encode_record(const nlohmann::ordered_json& r, const RecipeConfig::Dataset& dc, const Tokenizer& tok,
                      const ChatTemplate* tmpl) {
  if (!r.is_object()) throw Error("expected a JSON object, got {}", json_type(r));
  auto has = [&](const char* k) { return r.contains(k); };
  std::string format = dc.format;
  if (format == "auto") {
    if (has("chat") || has("messages")) format = "chat";
    else if (has("src") || has("tgt")) format = "src_tgt";
    else if (has("question") || has("answer")) format = "gsm8k";
    else throw Error("no 'src'/'tgt', 'chat'/'messages' or 'question'/'answer' fields");
  }
  if (format == "chat") {
    const char* key = has("chat") ? "chat" : "messages";
    auto it = r.find(key);
    if (it == r.end()) throw Error("missing field 'chat' (chat record)");
    if (!it->is_array() || it->empty()) throw Error("field '{}' must be a non-empty list of messages", key);
    size_t i = 0;
    for (const auto& m : *it) {
      ++i;
      if (!m.is_object()) throw Error("{} message {}: expected an object, got {}", key, i, json_type(m));
      auto role = m.find("role");
      if (role == m.end() || !role->is_string()) throw Error("{} message {}: 'role' must be a string", key, i);
      auto content = m.find("content");
      if (content == m.end() || !(content->is_string() || content->is_array()))
        throw Error("{} message {}: 'content' must be a string (or a list of parts)", key, i);
    }
    return encode_chat(*it, tok, tmpl);
  }
  std::string src, tgt;
  const char* src_key = "src";
  const char* tgt_key = "tgt";
  if (format == "src_tgt") {
    src = string_field(r, "src", format);
    tgt = string_field(r, "tgt", format);
  } else if (format == "gsm8k") {
    // GSM8K: the question, a newline, then the answer with its worked solution and final "#### N" line.
    src = string_field(r, "question", format) + "\n";
    tgt = string_field(r, "answer", format);
    src_key = "question", tgt_key = "answer";
  } else {
    throw Error("unknown dataset.format '{}'", dc.format);
  }
  if (dc.chat_mode) {
    if (format == "gsm8k") src.pop_back();  // the template separates the turns
    nlohmann::ordered_json chat = nlohmann::ordered_json::array(
        {{{"role", "user"}, {"content", src}}, {{"role", "assistant"}, {"content", tgt}}});
    return encode_chat(chat, tok, tmpl);
  }
  return from_src_tgt(encode_field(tok, src_key, src, parse_encode_mode(dc.src_encode_mode)),
                      encode_field(tok, tgt_key, tgt, parse_encode_mode(dc.tgt_encode_mode)));
}

}  // namespace data

namespace {

constexpr size_t kMaxMessages = 10;

void report(DataStats& stats, const std::string& msg) {
  ++stats.malformed;
  if (stats.messages.size() < kMaxMessages) stats.messages.push_back(msg);
}

std::string read_whole(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("{}: cannot open data file", path);
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw Error("{}: read error", path);
  return ss.str();
}

// nlohmann's "[json.exception.parse_error.101] parse error at line 1, column 7: syntax error ..." ->
// "column 7: syntax error ...".
std::string json_problem(const std::string& what) {
  std::string s = what;
  size_t p = s.find("] ");
  if (p != std::string::npos) s = s.substr(p + 2);
  const std::string lead = "parse error at line 1, ";
  if (s.rfind(lead, 0) == 0) s = s.substr(lead.size());
  return s;
}

}  // namespace

std::vector<Example> read_examples(const std::string& jsonl_path, const RecipeConfig::Dataset& dc, const Tokenizer& tok,
                                   const ChatTemplate* tmpl, DataStats& stats) {
  const std::string text = read_whole(jsonl_path);
  std::vector<Example> out;
  size_t pos = 0;
  int64_t line_no = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t") == std::string_view::npos) continue;  // blank line
    std::string where = fmt::format("{}:{}", jsonl_path, line_no);
    size_t bad = tok::find_invalid_utf8(line);
    if (bad != std::string_view::npos) {
      report(stats, fmt::format("{}: invalid UTF-8 at column {}", where, bad + 1));
      continue;
    }
    nlohmann::ordered_json record;  // key order kept, as HF's templates see Python dicts
    try {
      record = nlohmann::ordered_json::parse(line);
    } catch (const nlohmann::ordered_json::exception& e) {
      report(stats, fmt::format("{}: invalid JSON: {}", where, json_problem(e.what())));
      continue;
    }
    Example ex;
    try {
      ex = data::encode_record(record, dc, tok, tmpl);
    } catch (const UsageError& e) {
      // A configuration problem (e.g. chat records without a chat template), not a bad line: stop here.
      throw UsageError("{}: {}", where, e.what());
    } catch (const Error& e) {
      report(stats, fmt::format("{}: {}", where, e.what()));
      continue;
    }
    auto len = static_cast<int64_t>(ex.ids.size());
    if (len > dc.max_seq_len) {
      ++stats.skipped_too_long;
      continue;
    }
    if (len < dc.min_seq_len) {
      ++stats.skipped_too_short;
      continue;
    }
    ex.origin = std::move(where);
    ++stats.num_examples;
    out.push_back(std::move(ex));
  }
  return out;
}

namespace {

Batch make_batch(const std::vector<Example>& examples, const std::vector<int64_t>& items) {
  Batch b;
  b.examples.reserve(items.size());
  int64_t longest = 0;
  for (int64_t i : items) {
    const Example& e = examples[static_cast<size_t>(i)];
    b.examples.push_back(e);
    auto len = static_cast<int64_t>(e.ids.size());
    b.num_elements += len;
    longest = std::max(longest, len);
  }
  b.padded_elements = longest * static_cast<int64_t>(items.size());
  return b;
}

std::vector<int64_t> lengths_of(const std::vector<Example>& examples) {
  std::vector<int64_t> lens;
  lens.reserve(examples.size());
  for (const Example& e : examples) lens.push_back(static_cast<int64_t>(e.ids.size()));
  return lens;
}

std::vector<int64_t> iota(size_t n) {
  std::vector<int64_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<int64_t>(i);
  return v;
}

// One epoch's batches (as example indices): shuffle examples, bucket, shuffle batches.
std::vector<std::vector<int64_t>> epoch_batches(const std::vector<int64_t>& lengths,
                                                const std::vector<std::pair<int64_t, int64_t>>& bucket_sizes,
                                                int64_t example_window, int64_t batch_window, uint64_t seed,
                                                int64_t epoch) {
  auto e = static_cast<uint64_t>(epoch);
  std::vector<int64_t> order = data::window_shuffle(iota(lengths.size()), example_window, data::derive_seed(seed, e, 0));
  auto batches = data::bucket_by_length(order, lengths, bucket_sizes);
  return data::window_shuffle(std::move(batches), batch_window, data::derive_seed(seed, e, 1));
}

uint64_t fnv1a(uint64_t h, const void* p, size_t n) {
  const auto* b = static_cast<const unsigned char*>(p);
  for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 0x100000001B3ull;
  return h;
}

// The training stream. epoch() is the (0-based) epoch of the batch most recently returned by next() (0
// before the first call); the first next() after an epoch's last batch starts the next epoch. state() is
// {"epoch", "position" (batches of that epoch already returned), "num_batches", "num_examples",
// "fingerprint" (of the examples, bucketing settings and seed; restore() refuses a state of other data)}.
class SftBatchStream final : public BatchStream {
 public:
  SftBatchStream(std::vector<Example> examples, const RecipeConfig::Dataset& dc, uint64_t seed)
      : examples_(std::move(examples)),
        lengths_(lengths_of(examples_)),
        bucket_sizes_(data::create_bucket_sizes(dc.max_num_tokens, dc.max_seq_len, dc.min_seq_len)),
        example_window_(dc.example_shuffle_window),
        batch_window_(dc.batch_shuffle_window),
        seed_(seed) {
    G4_CHECK(!examples_.empty(), "batch stream: no training examples");
    uint64_t h = 0xCBF29CE484222325ull;
    for (int64_t v : {dc.max_num_tokens, dc.max_seq_len, dc.min_seq_len, example_window_, batch_window_})
      h = fnv1a(h, &v, sizeof v);
    h = fnv1a(h, &seed_, sizeof seed_);
    for (const Example& e : examples_) {
      uint64_t n = e.ids.size();
      h = fnv1a(h, &n, sizeof n);
      h = fnv1a(h, e.ids.data(), e.ids.size() * sizeof(int64_t));
      h = fnv1a(h, e.target.data(), e.target.size());
    }
    fingerprint_ = fmt::format("{:016x}", h);
    build(0);
  }

  Batch next() override {
    if (pos_ >= batches_.size()) {
      build(epoch_ + 1);
      pos_ = 0;
    }
    return make_batch(examples_, batches_[pos_++]);
  }

  int64_t epoch() const override { return epoch_; }

  nlohmann::json state() const override {
    return {{"epoch", epoch_},
            {"position", pos_},
            {"num_batches", batches_.size()},
            {"num_examples", examples_.size()},
            {"fingerprint", fingerprint_}};
  }

  void restore(const nlohmann::json& s) override {
    auto get_int = [&](const char* key) -> int64_t {
      if (!s.is_object() || !s.contains(key) || !s[key].is_number_integer() || s[key].get<int64_t>() < 0)
        throw Error("batch stream state: missing or invalid '{}'", key);
      return s[key].get<int64_t>();
    };
    if (!s.is_object() || !s.contains("fingerprint") || !s["fingerprint"].is_string())
      throw Error("batch stream state: missing or invalid 'fingerprint'");
    const std::string fp = s["fingerprint"].get<std::string>();
    if (fp != fingerprint_) {
      throw Error("batch stream state: the training data or its dataset/seed settings differ from the checkpoint's "
                  "(fingerprint {} vs {})", fp, fingerprint_);
    }
    int64_t epoch = get_int("epoch");
    auto position = static_cast<size_t>(get_int("position"));
    auto batches = epoch_batches(lengths_, bucket_sizes_, example_window_, batch_window_, seed_, epoch);
    if (position > batches.size())
      throw Error("batch stream state: position {} is past the {} batches of epoch {}", position, batches.size(), epoch);
    epoch_ = epoch;
    batches_ = std::move(batches);
    pos_ = position;
  }

 private:
  void build(int64_t epoch) {
    epoch_ = epoch;
    batches_ = epoch_batches(lengths_, bucket_sizes_, example_window_, batch_window_, seed_, epoch);
  }

  std::vector<Example> examples_;
  std::vector<int64_t> lengths_;
  std::vector<std::pair<int64_t, int64_t>> bucket_sizes_;
  int64_t example_window_, batch_window_;
  uint64_t seed_;
  std::string fingerprint_;
  int64_t epoch_ = 0;
  size_t pos_ = 0;
  std::vector<std::vector<int64_t>> batches_;
};

// The JSONL files of split `split` under dataset.path: PATH/SPLIT.jsonl, or every *.jsonl below PATH/SPLIT/
// (sorted); a file PATH is the train split itself (its directory holds the other splits).
std::vector<std::string> split_files(const std::string& path, const std::string& split, bool is_train) {
  std::error_code ec;
  fs::path root(path);
  if (fs::is_regular_file(root, ec)) {
    if (is_train) return {path};
    root = root.parent_path();
  } else if (!fs::is_directory(root, ec)) {
    throw Error("dataset.path '{}': no such file or directory", path);
  }
  fs::path file = root / (split + ".jsonl");
  if (fs::is_regular_file(file, ec)) return {file.string()};
  fs::path dir = root / split;
  std::vector<std::string> files;
  if (fs::is_directory(dir, ec)) {
    for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec)) {
      if (it->is_regular_file() && it->path().extension() == ".jsonl") files.push_back(it->path().string());
    }
    std::sort(files.begin(), files.end());
  }
  if (files.empty())
    throw Error("dataset.path '{}': no split '{}' (expected {} or .jsonl files under {})", path, split, file.string(),
                dir.string());
  return files;
}

std::vector<Example> read_split(const std::vector<std::string>& files, const RecipeConfig::Dataset& dc,
                                const Tokenizer& tok, const ChatTemplate* tmpl, DataStats& stats) {
  std::vector<Example> out;
  for (const std::string& f : files) {
    std::vector<Example> part = read_examples(f, dc, tok, tmpl, stats);
    out.insert(out.end(), std::make_move_iterator(part.begin()), std::make_move_iterator(part.end()));
  }
  return out;
}

void fail_on_malformed(const DataStats& s) {
  if (s.malformed == 0) return;
  if (s.malformed == 1) throw Error("{}", s.messages.front());
  throw Error("{} (and {} more malformed line{})", s.messages.front(), s.malformed - 1, s.malformed > 2 ? "s" : "");
}

}  // namespace

std::vector<Batch> bucket_batches(std::vector<Example> examples, int64_t max_num_tokens, uint64_t seed) {
  if (examples.empty()) return {};
  std::vector<int64_t> lens = lengths_of(examples);
  int64_t longest = *std::max_element(lens.begin(), lens.end());
  G4_CHECK(longest <= max_num_tokens, "{}: an example of {} tokens does not fit max_num_tokens ({})",
           examples[static_cast<size_t>(std::max_element(lens.begin(), lens.end()) - lens.begin())].origin, longest,
           max_num_tokens);
  // Buckets up to max_num_tokens give the same batches as buckets up to any max_seq_len >= longest.
  auto sizes = data::create_bucket_sizes(max_num_tokens, max_num_tokens, 1);
  std::vector<Batch> out;
  for (const auto& items : epoch_batches(lens, sizes, 0, 0, seed, 0)) out.push_back(make_batch(examples, items));
  return out;
}

SftData load_sft_data(const RecipeConfig& cfg, const Tokenizer& tok, const ChatTemplate* tmpl) {
  const RecipeConfig::Dataset& dc = cfg.dataset;
  SftData out;
  std::vector<Example> train =
      read_split(split_files(dc.path, dc.train_split, true), dc, tok, tmpl, out.train_stats);
  std::vector<Example> valid;
  if (!dc.valid_split.empty()) {
    valid = read_split(split_files(dc.path, dc.valid_split, false), dc, tok, tmpl, out.valid_stats);
  }
  fail_on_malformed(out.train_stats);
  fail_on_malformed(out.valid_stats);

  if (dc.valid_split.empty() && dc.valid_fraction > 0 && train.size() >= 2) {
    // Hold out round(fraction * n) examples (at least 1, and at least 1 left to train on), picked by a
    // seeded permutation, kept in file order.
    auto n = static_cast<int64_t>(train.size());
    int64_t k = std::clamp<int64_t>(std::llround(dc.valid_fraction * static_cast<double>(n)), 1, n - 1);
    std::vector<int64_t> perm = data::window_shuffle(iota(train.size()), 0, data::derive_seed(cfg.common.seed, 0, 2));
    std::vector<uint8_t> held(train.size(), 0);
    for (int64_t i = 0; i < k; ++i) held[static_cast<size_t>(perm[static_cast<size_t>(i)])] = 1;
    std::vector<Example> kept;
    for (size_t i = 0; i < train.size(); ++i) (held[i] ? valid : kept).push_back(std::move(train[i]));
    train = std::move(kept);
    out.train_stats.num_examples -= k;
    out.valid_stats.num_examples += k;
  }
  if (train.empty()) {
    throw Error("dataset '{}': no training examples ({} skipped as longer than max_seq_len {}, {} shorter than "
                "min_seq_len {})",
                dc.path, out.train_stats.skipped_too_long, dc.max_seq_len, out.train_stats.skipped_too_short,
                dc.min_seq_len);
  }
  if (!valid.empty()) {
    // Fixed order: file order, bucketed without shuffling.
    auto sizes = data::create_bucket_sizes(dc.max_num_tokens, dc.max_seq_len, dc.min_seq_len);
    for (const auto& items : data::bucket_by_length(iota(valid.size()), lengths_of(valid), sizes))
      out.valid.push_back(make_batch(valid, items));
  }
  out.train = std::make_unique<SftBatchStream>(std::move(train), dc, cfg.common.seed);
  return out;
}

}  // namespace gemma4
