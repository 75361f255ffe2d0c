// SFT data: readers and target masks, malformed-line reports, length filtering, fairseq2 bucketing,
// seeded shuffling, resumable batch streams, validation splits. Small JSONL files and a one-character-
// per-token tokenizer are generated here.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>

#include "core/error.h"
#include "test_util.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"
#include "train/data.h"
#include "train/data_internal.h"

using namespace gemma4;

namespace {

// Special tokens first (<pad> 0, <eos> 1, <bos> 2, <unk> 3), then one token per character, no merges: every
// character of the text is one token, so expected ids are easy to write down.
const std::string kChars = "abcdefghijklmnopqrstuvwxyz0123456789 ?.,#\n";

std::string tiny_tokenizer_json() {
  nlohmann::json vocab = nlohmann::json::object();
  nlohmann::json added = nlohmann::json::array();
  int id = 0;
  for (const char* s : {"<pad>", "<eos>", "<bos>", "<unk>"}) {
    vocab[s] = id;
    added.push_back({{"id", id}, {"content", s}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
                     {"normalized", false}, {"special", true}});
    ++id;
  }
  for (char c : kChars) vocab[std::string(1, c)] = id++;
  for (const char* s : {"<|turn>", "<turn|>"}) {  // chat turn delimiters, as Gemma 4's
    vocab[s] = id;
    added.push_back({{"id", id}, {"content", s}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
                     {"normalized", false}, {"special", true}});
    ++id;
  }
  nlohmann::json j = {{"version", "1.0"},
                      {"truncation", nullptr},
                      {"padding", nullptr},
                      {"added_tokens", added},
                      {"normalizer", nullptr},
                      {"pre_tokenizer", nullptr},
                      {"post_processor", nullptr},
                      {"decoder", nullptr},
                      {"model",
                       {{"type", "BPE"},
                        {"dropout", nullptr},
                        {"unk_token", "<unk>"},
                        {"continuing_subword_prefix", nullptr},
                        {"end_of_word_suffix", nullptr},
                        {"fuse_unk", false},
                        {"byte_fallback", false},
                        {"ignore_merges", false},
                        {"vocab", vocab},
                        {"merges", nlohmann::json::array()}}}};
  return j.dump(1);
}

int64_t cid(char c) { return 4 + static_cast<int64_t>(kChars.find(c)); }
std::vector<int64_t> chars(const std::string& s) {
  std::vector<int64_t> v;
  for (char c : s) v.push_back(cid(c));
  return v;
}
std::vector<int64_t> cat(std::vector<int64_t> a, const std::vector<int64_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}
constexpr int64_t BOS = 2, EOS = 1;
const int64_t TURN = 4 + static_cast<int64_t>(kChars.size()), END_TURN = TURN + 1;

// A Gemma-4-like chat template: <|turn>ROLE\nCONTENT<turn|>\n per message, the assistant role named "model".
const char* kTemplate =
    "{{ bos_token }}{% for m in messages %}"
    "{% if m['role'] == 'system' %}{{ raise_exception('system messages are not supported') }}{% endif %}"
    "<|turn>{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n{{ m['content'] }}<turn|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|turn>model\n{% endif %}";

class DataTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = test::temp_dir();
    test::write_file(dir + "/tokenizer.json", tiny_tokenizer_json());
    tok = Tokenizer::load(dir + "/tokenizer.json");
    cfg.model.arch = "tiny";
    cfg.dataset.path = dir + "/data";
    std::filesystem::create_directories(cfg.dataset.path);
  }
  std::string write(const std::string& name, const std::string& text) {
    std::string p = cfg.dataset.path + "/" + name;
    std::filesystem::create_directories(std::filesystem::path(p).parent_path());
    test::write_file(p, text);
    return p;
  }
  std::vector<Example> read(const std::string& path) {
    stats = DataStats{};
    return read_examples(path, cfg.dataset, *tok, nullptr, stats);
  }
  std::string dir;
  std::shared_ptr<Tokenizer> tok;
  RecipeConfig cfg;
  DataStats stats;
};

// n records {"src": "<k letters>?", "tgt": "<m digits>."} with varied lengths; record i is unique.
std::string src_tgt_records(int n, int seed = 0) {
  std::string out;
  data::Rng rng(static_cast<uint64_t>(seed) + 99);
  for (int i = 0; i < n; ++i) {
    std::string src, tgt = std::to_string(i) + " ";
    for (uint64_t k = rng.below(20); k > 0; --k) src += static_cast<char>('a' + rng.below(26));
    for (uint64_t k = rng.below(12); k > 0; --k) tgt += static_cast<char>('0' + rng.below(10));
    out += nlohmann::json({{"src", src + "?"}, {"tgt", tgt + "."}}).dump() + "\n";
  }
  return out;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_F(DataTest, SrcTgtIdsAndTargetMask) {
  std::string p = write("train.jsonl", R"({"src": "ab ", "tgt": "cd"})" "\n" R"({"tgt": "x", "src": "", "id": 7})" "\n");
  auto ex = read(p);
  ASSERT_EQ(ex.size(), 2u);
  // prompt mode for src (bos + text), prompt_response for tgt (text + eos); targets = the tgt part.
  EXPECT_EQ(ex[0].ids, cat(cat({BOS}, chars("ab ")), cat(chars("cd"), {EOS})));
  EXPECT_EQ(ex[0].target, (std::vector<uint8_t>{0, 0, 0, 0, 1, 1, 1}));
  EXPECT_EQ(ex[0].num_targets(), 3);
  EXPECT_EQ(ex[0].origin, p + ":1");
  EXPECT_EQ(ex[1].ids, (std::vector<int64_t>{BOS, cid('x'), EOS}));
  EXPECT_EQ(ex[1].target, (std::vector<uint8_t>{0, 1, 1}));
  EXPECT_EQ(ex[1].origin, p + ":2");
  EXPECT_EQ(stats.num_examples, 2);
  EXPECT_EQ(stats.malformed, 0);

  // Other encode modes.
  cfg.dataset.src_encode_mode = "as_is";
  cfg.dataset.tgt_encode_mode = "default";
  ex = read(p);
  EXPECT_EQ(ex[0].ids, cat(chars("ab "), cat(cat({BOS}, chars("cd")), {EOS})));
  EXPECT_EQ(ex[0].target, (std::vector<uint8_t>{0, 0, 0, 1, 1, 1, 1}));
}

TEST_F(DataTest, Gsm8kRecords) {
  std::string p = write("train.jsonl", R"({"question": "how many?", "answer": "2 and 2.\n#### 4"})" "\n");
  auto ex = read(p);
  ASSERT_EQ(ex.size(), 1u);
  // src = question + "\n" (prompt mode), tgt = the answer verbatim (prompt_response mode).
  std::vector<int64_t> src = cat({BOS}, chars("how many?\n"));
  EXPECT_EQ(ex[0].ids, cat(src, cat(chars("2 and 2.\n#### 4"), {EOS})));
  std::vector<uint8_t> mask(src.size(), 0);
  mask.resize(ex[0].ids.size(), 1);
  EXPECT_EQ(ex[0].target, mask);
  // Forcing another format makes it malformed; forcing gsm8k reads it.
  cfg.dataset.format = "src_tgt";
  EXPECT_TRUE(read(p).empty());
  EXPECT_EQ(stats.messages.at(0), p + ":1: missing field 'src' (src_tgt record)");
  cfg.dataset.format = "gsm8k";
  EXPECT_EQ(read(p).size(), 1u);
}

TEST_F(DataTest, MalformedLinesAreReportedWithFileAndLine) {
  std::string p = write("train.jsonl", std::string(R"({"src": "a", "tgt": "b"})") + "\n" +  // 1 ok
                                           "{\"src\": \"a\", \"tgt\": }\n" +              // 2 bad JSON
                                           "\n" +                                         // 3 blank: skipped
                                           "[1, 2]\n" +                                   // 4 not an object
                                           R"({"src": "a"})" + "\n" +                     // 5 missing tgt
                                           R"({"src": "a", "tgt": 5})" + "\n" +           // 6 wrong type
                                           "{\"src\": \"a\xff\", \"tgt\": \"b\"}\n" +     // 7 invalid UTF-8
                                           R"({"text": "a"})" + "\n" +                    // 8 unknown record
                                           R"({"chat": []})" + "\n" +                     // 9 empty chat
                                           R"({"chat": [{"role": 1, "content": "x"}]})" + "\n" +  // 10
                                           R"({"question": "q", "answer": null})" + "\r\n" +     // 11
                                           R"({"src": "c", "tgt": "d"})");                // 12 ok, no newline
  auto ex = read(p);
  ASSERT_EQ(ex.size(), 2u);
  EXPECT_EQ(ex[1].origin, p + ":12");
  EXPECT_EQ(stats.num_examples, 2);
  EXPECT_EQ(stats.malformed, 9);
  ASSERT_EQ(stats.messages.size(), 9u);
  EXPECT_EQ(stats.messages[0].rfind(p + ":2: invalid JSON: column 21: syntax error", 0), 0u) << stats.messages[0];
  EXPECT_EQ(stats.messages[1], p + ":4: expected a JSON object, got a list");
  EXPECT_EQ(stats.messages[2], p + ":5: missing field 'tgt' (src_tgt record)");
  EXPECT_EQ(stats.messages[3], p + ":6: field 'tgt' must be a string, got a number");
  EXPECT_EQ(stats.messages[4], p + ":7: invalid UTF-8 at column 11");
  EXPECT_EQ(stats.messages[5], p + ":8: no 'src'/'tgt', 'chat'/'messages' or 'question'/'answer' fields");
  EXPECT_EQ(stats.messages[6], p + ":9: field 'chat' must be a non-empty list of messages");
  EXPECT_EQ(stats.messages[7], p + ":10: chat message 1: 'role' must be a string");
  EXPECT_EQ(stats.messages[8], p + ":11: field 'answer' must be a string, got null");

  // load_sft_data fails on malformed input (as fairseq2 does), naming the first bad line.
  cfg.dataset.path = p;
  std::string e = error_of([&] { load_sft_data(cfg, *tok, nullptr); });
  EXPECT_EQ(e.rfind(p + ":2: invalid JSON: column 21", 0), 0u) << e;
  EXPECT_NE(e.find("(and 8 more malformed lines)"), std::string::npos) << e;
  // A missing file is an error naming it.
  EXPECT_EQ(error_of([&] { read(dir + "/nope.jsonl"); }), dir + "/nope.jsonl: cannot open data file");
}

TEST_F(DataTest, TooLongSkippedAndCountedNeverTruncated) {
  std::string text;
  // Lengths (bos + src + tgt + eos): 4, 6, 8, 10, 12.
  for (int n = 1; n <= 5; ++n)
    text += nlohmann::json({{"src", std::string(n, 'a')}, {"tgt", std::string(n, 'b')}}).dump() + "\n";
  std::string p = write("train.jsonl", text);
  cfg.dataset.max_seq_len = 8;
  cfg.dataset.min_seq_len = 5;
  auto ex = read(p);
  ASSERT_EQ(ex.size(), 2u);
  EXPECT_EQ(ex[0].ids.size(), 6u);
  EXPECT_EQ(ex[1].ids.size(), 8u);
  EXPECT_EQ(ex[1].ids.back(), EOS);  // whole, not cut
  EXPECT_EQ(stats.skipped_too_long, 2);
  EXPECT_EQ(stats.skipped_too_short, 1);
  EXPECT_EQ(stats.num_examples, 2);
  EXPECT_EQ(stats.malformed, 0);
  // Everything too long: a clear error.
  cfg.dataset.max_seq_len = 3;
  cfg.dataset.min_seq_len = 1;
  cfg.dataset.max_num_tokens = 3;
  EXPECT_EQ(error_of([&] { load_sft_data(cfg, *tok, nullptr); }),
            "dataset '" + cfg.dataset.path +
                "': no training examples (5 skipped as longer than max_seq_len 3, 0 shorter than min_seq_len 1)");
}

TEST(Bucketing, BucketSizesFollowFairseq2) {
  using V = std::vector<std::pair<int64_t, int64_t>>;
  // fairseq2's own test case.
  EXPECT_EQ(data::create_bucket_sizes(16, 8, 2), (V{{8, 2}, {5, 3}, {4, 4}, {3, 5}, {2, 8}}));
  EXPECT_EQ(data::create_bucket_sizes(16, 8), (V{{16, 1}, {8, 2}, {5, 3}, {4, 4}, {3, 5}, {2, 8}}));
  EXPECT_EQ(data::create_bucket_sizes(8192, 4096).back(), (std::pair<int64_t, int64_t>{2, 4096}));
  for (auto [m, s] : std::vector<std::pair<int64_t, int64_t>>{{8192, 4096}, {1000, 37}, {10, 4}, {7, 7}}) {
    auto sizes = data::create_bucket_sizes(m, s);
    EXPECT_EQ(sizes.back().second, s);
    for (size_t i = 0; i < sizes.size(); ++i) {
      EXPECT_LE(sizes[i].first * sizes[i].second, m);
      EXPECT_GE(sizes[i].first, 1);
      if (i) {
        EXPECT_GT(sizes[i].second, sizes[i - 1].second);
      }
    }
  }
  EXPECT_THROW(data::create_bucket_sizes(16, 17), Error);
}

TEST(Bucketing, BucketByLengthEmitsFullBucketsThenChunksTheRest) {
  auto sizes = data::create_bucket_sizes(16, 8, 2);  // (8,2) (5,3) (4,4) (3,5) (2,8)
  std::vector<int64_t> lengths = {2, 8, 8, 7, 3, 2, 4, 2, 5};
  std::vector<int64_t> order = {0, 1, 2, 3, 4, 5, 6, 7, 8};
  auto b = data::bucket_by_length(order, lengths, sizes);
  // Items 1, 2 fill the (2, 8) bucket; item 3 waits there. At the end: the (2,8) bucket [3] takes item 8
  // (from (3,5)); (4,4) [6] takes 4 (from (5,3)) and 7, 5 (from (8,2)); (8,2) keeps [0].
  using VV = std::vector<std::vector<int64_t>>;
  EXPECT_EQ(b, (VV{{1, 2}, {3, 8}, {6, 4, 7, 5}, {0}}));
}

TEST(Bucketing, BucketBatchesInvariants) {
  std::vector<Example> ex;
  data::Rng rng(5);
  for (int i = 0; i < 300; ++i) {
    Example e;
    e.ids.assign(1 + rng.below(64), 7);
    e.target.assign(e.ids.size(), 1);
    e.origin = std::to_string(i);
    ex.push_back(e);
  }
  auto order_of = [](const std::vector<Batch>& bs) {
    std::vector<std::string> v;
    for (const Batch& b : bs)
      for (const Example& e : b.examples) v.push_back(e.origin);
    return v;
  };
  const int64_t max_tokens = 128;
  auto a = bucket_batches(ex, max_tokens, 1);
  std::multiset<std::string> seen;
  for (const Batch& b : a) {
    ASSERT_FALSE(b.examples.empty());
    int64_t longest = 0, sum = 0;
    for (const Example& e : b.examples) longest = std::max<int64_t>(longest, e.ids.size()), sum += e.ids.size();
    EXPECT_EQ(b.padded_elements, longest * static_cast<int64_t>(b.examples.size()));
    EXPECT_EQ(b.num_elements, sum);
    EXPECT_LE(b.padded_elements, max_tokens);
    EXPECT_EQ(b.num_target_elements(), sum - static_cast<int64_t>(b.examples.size()));
    for (const Example& e : b.examples) seen.insert(e.origin);
  }
  EXPECT_EQ(seen.size(), ex.size());
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), ex.size());  // each exactly once
  EXPECT_EQ(order_of(bucket_batches(ex, max_tokens, 1)), order_of(a));            // same seed, same batches
  EXPECT_NE(order_of(bucket_batches(ex, max_tokens, 2)), order_of(a));            // another seed differs
  // Too long for the budget: an error naming the example.
  EXPECT_EQ(error_of([&] { bucket_batches(ex, 32, 1); }).find("does not fit max_num_tokens (32)") != std::string::npos,
            true);
}

TEST(Bucketing, WindowShuffle) {
  std::vector<int64_t> v(100);
  for (int i = 0; i < 100; ++i) v[i] = i;
  EXPECT_EQ(data::window_shuffle(v, 1, 3), v);  // window 1: no shuffling
  for (int64_t w : {0, 2, 10, 1000}) {
    auto s = data::window_shuffle(v, w, 3);
    EXPECT_NE(s, v) << w;
    EXPECT_EQ(s, data::window_shuffle(v, w, 3)) << w;
    EXPECT_NE(s, data::window_shuffle(v, w, 4)) << w;
    auto sorted = s;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(sorted, v) << w;  // a permutation
  }
  // A window of w can move an item at most w - 1 places earlier.
  auto s = data::window_shuffle(v, 4, 9);
  for (size_t pos = 0; pos < s.size(); ++pos) EXPECT_GE(static_cast<int64_t>(pos), s[pos] - 3);
}

namespace {

std::vector<std::string> origins(const Batch& b) {
  std::vector<std::string> v;
  for (const Example& e : b.examples) v.push_back(e.origin);
  return v;
}

}  // namespace

TEST_F(DataTest, BatchStreamEpochsAndResume) {
  write("train.jsonl", src_tgt_records(120));
  cfg.dataset.max_seq_len = 40;
  cfg.dataset.max_num_tokens = 96;
  cfg.dataset.example_shuffle_window = 16;
  cfg.dataset.batch_shuffle_window = 4;
  cfg.common.seed = 7;
  SftData d = load_sft_data(cfg, *tok, nullptr);
  EXPECT_EQ(d.train_stats.num_examples, 120);
  EXPECT_TRUE(d.valid.empty());

  // Epoch 0 covers every example exactly once, each batch within budget.
  std::vector<std::vector<std::string>> epoch0, epoch1;
  std::multiset<std::string> seen;
  while (true) {
    Batch b = d.train->next();
    if (d.train->epoch() != 0) {
      epoch1.push_back(origins(b));
      break;
    }
    EXPECT_LE(b.padded_elements, 96);
    epoch0.push_back(origins(b));
    for (const auto& o : epoch0.back()) seen.insert(o);
  }
  EXPECT_EQ(seen.size(), 120u);
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), 120u);
  EXPECT_GT(epoch0.size(), 10u);
  EXPECT_NE(epoch1.front(), epoch0.front());  // the next epoch reshuffles

  // Resume exactness: a fresh stream restored from a state reproduces the following batches, across an
  // epoch boundary too.
  for (size_t k : {size_t{0}, size_t{3}, epoch0.size() - 1, epoch0.size() + 2}) {
    SftData a = load_sft_data(cfg, *tok, nullptr);
    for (size_t i = 0; i < k; ++i) a.train->next();
    nlohmann::json st = a.train->state();
    std::vector<std::vector<std::string>> expect;
    for (int i = 0; i < 6; ++i) expect.push_back(origins(a.train->next()));
    SftData b = load_sft_data(cfg, *tok, nullptr);
    b.train->restore(nlohmann::json::parse(st.dump()));  // as stored in a checkpoint
    EXPECT_EQ(b.train->epoch(), k < epoch0.size() ? 0 : 1) << k;
    for (int i = 0; i < 6; ++i) EXPECT_EQ(origins(b.train->next()), expect[i]) << k << " " << i;
  }
  // Deterministic per seed, different for another seed.
  SftData same = load_sft_data(cfg, *tok, nullptr);
  EXPECT_EQ(origins(same.train->next()), epoch0[0]);
  cfg.common.seed = 8;
  SftData other = load_sft_data(cfg, *tok, nullptr);
  std::vector<std::vector<std::string>> other0;
  for (size_t i = 0; i < epoch0.size(); ++i) other0.push_back(origins(other.train->next()));
  EXPECT_NE(other0, epoch0);
  // A state from other data/settings is refused.
  std::string e = error_of([&] { other.train->restore(same.train->state()); });
  EXPECT_NE(e.find("batch stream state: the training data or its dataset/seed settings differ"), std::string::npos)
      << e;
  nlohmann::json bad = other.train->state();
  bad["position"] = 100000;
  e = error_of([&] { other.train->restore(bad); });
  EXPECT_NE(e.find("batch stream state: position 100000 is past"), std::string::npos) << e;
  nlohmann::json before = other.train->state();
  bad["epoch"] = 3;
  EXPECT_THROW(other.train->restore(bad), Error);
  EXPECT_EQ(other.train->state(), before);  // a refused state changes nothing
  bad.erase("epoch");
  EXPECT_EQ(error_of([&] { other.train->restore(bad); }), "batch stream state: missing or invalid 'epoch'");
}

TEST_F(DataTest, ValidationSplitFromFile) {
  write("train.jsonl", src_tgt_records(30));
  write("test/a.jsonl", src_tgt_records(7, 1));
  write("test/b.jsonl", src_tgt_records(5, 2));
  cfg.dataset.valid_split = "test";
  cfg.dataset.max_seq_len = 40;
  cfg.dataset.max_num_tokens = 80;
  SftData d = load_sft_data(cfg, *tok, nullptr);
  EXPECT_EQ(d.train_stats.num_examples, 30);
  EXPECT_EQ(d.valid_stats.num_examples, 12);
  std::multiset<std::string> files;
  std::vector<std::vector<std::string>> order;
  for (const Batch& b : d.valid) {
    EXPECT_LE(b.padded_elements, 80);
    order.push_back(origins(b));
    for (const Example& e : b.examples) files.insert(e.origin.substr(0, e.origin.rfind(':')));
  }
  EXPECT_EQ(files.count(cfg.dataset.path + "/test/a.jsonl"), 7u);
  EXPECT_EQ(files.count(cfg.dataset.path + "/test/b.jsonl"), 5u);
  // Fixed order: independent of the seed.
  cfg.common.seed = 1234;
  SftData d2 = load_sft_data(cfg, *tok, nullptr);
  ASSERT_EQ(d2.valid.size(), order.size());
  for (size_t i = 0; i < order.size(); ++i) EXPECT_EQ(origins(d2.valid[i]), order[i]);
  // An unknown split is named.
  cfg.dataset.valid_split = "dev";
  std::string e = error_of([&] { load_sft_data(cfg, *tok, nullptr); });
  EXPECT_EQ(e.rfind("dataset.path '" + cfg.dataset.path + "': no split 'dev'", 0), 0u) << e;
}

TEST_F(DataTest, ValidationHeldOutFraction) {
  std::string p = write("all.jsonl", src_tgt_records(50));
  cfg.dataset.path = p;  // a file: the train split itself
  cfg.dataset.valid_fraction = 0.2;
  cfg.dataset.max_seq_len = 40;
  cfg.dataset.max_num_tokens = 80;
  auto held_out = [&](uint64_t seed) {
    cfg.common.seed = seed;
    SftData d = load_sft_data(cfg, *tok, nullptr);
    EXPECT_EQ(d.train_stats.num_examples, 40);
    EXPECT_EQ(d.valid_stats.num_examples, 10);
    std::set<std::string> valid, train;
    for (const Batch& b : d.valid)
      for (const Example& e : b.examples) valid.insert(e.origin);
    while (d.train->epoch() == 0)
      for (const Example& e : d.train->next().examples)
        if (d.train->epoch() == 0) train.insert(e.origin);
    EXPECT_EQ(valid.size(), 10u);
    EXPECT_EQ(train.size(), 40u);
    for (const auto& v : valid) EXPECT_EQ(train.count(v), 0u) << v;  // disjoint
    return valid;
  };
  auto v1 = held_out(3);
  EXPECT_EQ(held_out(3), v1);  // deterministic
}

namespace {

// ids and mask of one turn: header (not learned), then content + <turn|> + "\n" (learned for the model).
void turn(std::vector<int64_t>& ids, std::vector<uint8_t>& mask, const std::string& role, const std::string& content) {
  std::vector<int64_t> head = cat({TURN}, chars(role + "\n"));
  std::vector<int64_t> body = cat(cat(chars(content), {END_TURN}), chars("\n"));
  uint8_t learn = role == "model";
  ids.insert(ids.end(), head.begin(), head.end());
  mask.insert(mask.end(), head.size(), 0);
  ids.insert(ids.end(), body.begin(), body.end());
  mask.insert(mask.end(), body.size(), learn);
}

}  // namespace

TEST_F(DataTest, ChatRecordsUseAssistantMasks) {
  ChatTemplate tmpl = ChatTemplate::from_string(kTemplate);
  std::string p = write("chat.jsonl",
                        R"({"chat": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}, )"
                        R"({"role": "user", "content": "2 and 2?"}, {"role": "assistant", "content": "4."}]})"
                        "\n"
                        R"({"id": 3, "messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]})"
                        "\n"
                        R"({"chat": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "x"}]})"
                        "\n");
  stats = DataStats{};
  auto ex = read_examples(p, cfg.dataset, *tok, &tmpl, stats);
  ASSERT_EQ(ex.size(), 2u);
  std::vector<int64_t> ids{BOS};
  std::vector<uint8_t> mask{0};
  turn(ids, mask, "user", "hi");
  turn(ids, mask, "model", "yo");
  turn(ids, mask, "user", "2 and 2?");
  turn(ids, mask, "model", "4.");
  EXPECT_EQ(ex[0].ids, ids);
  EXPECT_EQ(ex[0].target, mask);
  EXPECT_EQ(ex[0].num_targets(), 2 * 2 + 2 * 2);  // "yo" + <turn|> + "\n", "4." + <turn|> + "\n"
  ids = {BOS}, mask = {0};
  turn(ids, mask, "user", "a");
  turn(ids, mask, "model", "b");
  EXPECT_EQ(ex[1].ids, ids);
  EXPECT_EQ(ex[1].target, mask);
  EXPECT_EQ(ex[1].origin, p + ":2");
  // A conversation the template refuses is a malformed line with the template's message.
  EXPECT_EQ(stats.malformed, 1);
  ASSERT_EQ(stats.messages.size(), 1u);
  EXPECT_EQ(stats.messages[0].rfind(p + ":3: chat: ", 0), 0u) << stats.messages[0];
  EXPECT_NE(stats.messages[0].find("system messages are not supported"), std::string::npos) << stats.messages[0];

  // Chat records without a template: a configuration error naming the record, not a bad line.
  std::string e = error_of([&] { read(p); });
  EXPECT_EQ(e.rfind(p + ":1: chat records need a chat template", 0), 0u) << e;
}

TEST_F(DataTest, ChatModeRendersSrcTgtAndGsm8kAsConversations) {
  ChatTemplate tmpl = ChatTemplate::from_string(kTemplate);
  std::string p = write("train.jsonl", R"({"src": "hi", "tgt": "yo"})" "\n"
                                       R"({"question": "1 and 1?", "answer": "2\n#### 2"})" "\n");
  cfg.dataset.chat_mode = true;
  stats = DataStats{};
  auto ex = read_examples(p, cfg.dataset, *tok, &tmpl, stats);
  ASSERT_EQ(ex.size(), 2u);
  std::vector<int64_t> ids{BOS};
  std::vector<uint8_t> mask{0};
  turn(ids, mask, "user", "hi");
  turn(ids, mask, "model", "yo");
  EXPECT_EQ(ex[0].ids, ids);
  EXPECT_EQ(ex[0].target, mask);
  ids = {BOS}, mask = {0};
  turn(ids, mask, "user", "1 and 1?");  // no trailing newline in chat mode: the template separates turns
  turn(ids, mask, "model", "2\n#### 2");
  EXPECT_EQ(ex[1].ids, ids);
  EXPECT_EQ(ex[1].target, mask);
  // The whole pipeline with the template: epoch 0's batches hold exactly these targets.
  SftData d = load_sft_data(cfg, *tok, &tmpl);
  EXPECT_EQ(d.train_stats.num_examples, 2);
  int64_t targets = 0, seqs = 0;
  while (seqs < 2) {
    Batch b = d.train->next();
    targets += b.num_target_elements();
    seqs += static_cast<int64_t>(b.examples.size());
  }
  EXPECT_EQ(d.train->epoch(), 0);
  EXPECT_EQ(seqs, 2);
  EXPECT_EQ(targets, ex[0].num_targets() + ex[1].num_targets());
}
