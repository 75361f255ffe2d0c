// Private building blocks of src/train/data*.cpp (exposed to tests): a portable seeded RNG, fairseq2's
// sliding-window shuffle, bucket sizes and length bucketing, and the per-record encoders.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "train/example.h"
#include "train/recipe_config.h"

namespace gemma4 {
class Tokenizer;
class ChatTemplate;
}  // namespace gemma4

namespace gemma4::data {

// splitmix64: the same stream on every platform and compiler (std:: distributions are not).
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t next() {
    uint64_t z = (s_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n), n > 0, without modulo bias (Lemire).
  uint64_t below(uint64_t n) {
    unsigned __int128 m = static_cast<unsigned __int128>(next()) * n;
    auto low = static_cast<uint64_t>(m);
    if (low < n) {
      uint64_t threshold = (0 - n) % n;
      while (low < threshold) {
        m = static_cast<unsigned __int128>(next()) * n;
        low = static_cast<uint64_t>(m);
      }
    }
    return static_cast<uint64_t>(m >> 64);
  }

 private:
  uint64_t s_;
};

// A seed for stream `stream` of epoch `epoch` derived from the recipe seed.
inline uint64_t derive_seed(uint64_t seed, uint64_t epoch, uint64_t stream) {
  Rng r(seed ^ (0xD1B54A32D192ED03ull * (epoch + 1)) ^ (0x8CB92BA72F3D8DD7ull * (stream + 1)));
  return r.next();
}

// fairseq2's shuffle(window): window 1 = keep the order; 0 (or >= size) = a full Fisher-Yates shuffle;
// otherwise a sliding buffer of `window` items from which a random one is emitted as each new item
// comes in, the rest shuffled at the end.
template <typename T>
std::vector<T> window_shuffle(std::vector<T> items, int64_t window, uint64_t seed) {
  if (window == 1 || items.size() <= 1) return items;
  Rng rng(seed);
  auto fisher_yates = [&](std::vector<T>& v) {
    for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.below(i)]);
  };
  if (window == 0 || static_cast<size_t>(window) >= items.size()) {
    fisher_yates(items);
    return items;
  }
  std::vector<T> out, buffer;
  out.reserve(items.size());
  buffer.reserve(static_cast<size_t>(window));
  for (T& item : items) {
    if (buffer.size() < static_cast<size_t>(window)) {
      buffer.push_back(std::move(item));
      continue;
    }
    size_t j = rng.below(buffer.size());
    out.push_back(std::move(buffer[j]));
    buffer[j] = std::move(item);
  }
  fisher_yates(buffer);
  for (T& item : buffer) out.push_back(std::move(item));
  return out;
}

// fairseq2's create_bucket_sizes: (batch_size, bucket_seq_len) pairs with batch_size * bucket_seq_len <=
// max_num_elements, for bucket lengths from min_seq_len up to max_seq_len (the last bucket).
// Requires 1 <= min_seq_len <= max_seq_len <= max_num_elements.
std::vector<std::pair<int64_t, int64_t>> create_bucket_sizes(int64_t max_num_elements, int64_t max_seq_len,
                                                             int64_t min_seq_len = 1);

// fairseq2's bucket_by_length over the items of `order` (indices into `lengths`): each item joins the
// smallest bucket whose length fits it; a bucket that reaches its batch size is emitted. At the end the
// partial buckets are emitted from the longest down, each topped up with items of the shorter buckets
// (so that no batch exceeds its bucket's budget). Every item must satisfy length <= the last bucket length.
std::vector<std::vector<int64_t>> bucket_by_length(const std::vector<int64_t>& order,
                                                   const std::vector<int64_t>& lengths,
                                                   const std::vector<std::pair<int64_t, int64_t>>& bucket_sizes);

// One JSONL record -> Example. Throws Error with the problem (no file/line: the caller adds them).
// Formats: {"src","tgt"}: ids = encode(src, src mode) + encode(tgt, tgt mode), targets = the tgt part;
// {"chat"|"messages": [...]}: the chat template with assistant masks; GSM8K {"question","answer"}: as
// src = question + "\n", tgt = answer (verbatim, "#### N" line included). With dc.chat_mode, src/tgt and
// GSM8K records are rendered as the chat [user: src, assistant: tgt] instead.
Example encode_record(const nlohmann::ordered_json& record, const RecipeConfig::Dataset& dc, const Tokenizer& tok,
                      const ChatTemplate* tmpl);
// Chat messages (already checked to be a non-empty array of objects) -> Example (data_chat.cpp).
Example encode_chat(const nlohmann::ordered_json& messages, const Tokenizer& tok, const ChatTemplate* tmpl);

}  // namespace gemma4::data
