// The BPE model of a Hugging Face tokenizer.json, equal to HF `tokenizers` (models/bpe) in its results:
// per-character symbols (byte fallback to <0xXX> tokens, else unk, fused if fuse_unk), then the merge of lowest
// rank, leftmost first, until none applies.
//
// Speed: a word is cut at the "▁" that start words ("x▁y" -> "x", "▁y") whenever no vocabulary token can span
// the cut (checked exactly, see split_points), so that the pieces can be merged independently and cached per
// thread. Small pieces merge by a linear scan, long ones with a heap (as HF does).
#pragma once
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "text/tokenizer_hash.h"

namespace gemma4::tok {

struct BpeOptions {
  std::optional<std::string> unk_token, continuing_subword_prefix, end_of_word_suffix;
  bool fuse_unk = false, byte_fallback = false, ignore_merges = false;
};

class BpeModel {
 public:
  explicit BpeModel(std::string file) : file_(std::move(file)) {}

  // Loading, in this order: add_token for the vocabulary, then add_merge for each merge (rank = index), then
  // finish. A later duplicate of a token string replaces the earlier one, as HF's map does. add_merge keeps
  // views of its arguments until finish() unless `copy`.
  void reserve(size_t tokens, size_t merges);
  void add_token(std::string_view token, int64_t id);
  void add_merge(std::string_view a, std::string_view b, bool copy);
  void finish(BpeOptions options);

  // HF Model::tokenize for one pre-token; appends the ids.
  void tokenize(std::string_view word, std::vector<int32_t>& out) const;

  int32_t token_to_id(std::string_view token) const {
    return index_.find(token, [this](int32_t id) { return token_view(id); });
  }
  bool has_id(int64_t id) const { return id >= 0 && id < int64_t(len_.size()) && len_[id] != kMissing; }
  std::string_view token_view(int32_t id) const { return std::string_view(arena_).substr(off_[id], len_[id]); }
  size_t size() const { return index_.size(); }         // HF get_vocab_size(): distinct tokens
  int64_t id_bound() const { return int64_t(len_.size()); }  // 1 + largest id
  size_t merge_count() const { return merges_.size(); }

 private:
  static constexpr uint32_t kMissing = ~uint32_t(0);

 public:
  struct Symbols;  // per-thread scratch for one word

 private:

  void initial_symbols(std::string_view word, Symbols& sym) const;
  void merge(Symbols& sym, size_t begin, size_t end) const;  // merges sym.ids[begin, end) into sym.piece
  void merge_small(Symbols& sym, size_t begin, size_t end) const;
  void merge_heap(Symbols& sym, size_t begin, size_t end) const;
  void split_points(std::string_view word, const Symbols& sym, std::vector<uint32_t>& cuts) const;

  std::string file_;
  std::string arena_;
  std::vector<uint32_t> off_, len_;  // by id
  StringIndex index_;
  PairMap merges_;
  // Merges before finish(): views into the file text (alive until finish) or into escaped_.
  std::vector<std::pair<std::string_view, std::string_view>> pending_;
  std::deque<std::string> escaped_;
  BpeOptions opt_;
  int32_t unk_id_ = -1;
  int32_t byte_id_[256];
  std::vector<int32_t> bmp_id_;  // code point < 0x10000 -> id of that one-character token, or -1
  bool fast_chars_ = false;      // no prefix/suffix: a character's symbol is its own token
  bool can_split_ = false;       // word splitting at "▁" is allowed (see split_points)
  std::vector<std::string> spanning_;  // tokens that contain a non-"▁" character followed by "▁"
  uint64_t instance_;            // keys the per-thread cache
};

}  // namespace gemma4::tok
