#include "text/bpe.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <thread>

#include "core/error.h"
#include "text/utf8.h"

namespace gemma4::tok {
namespace {

constexpr std::string_view kMeta = "\xE2\x96\x81";  // "▁"
constexpr size_t kMaxCachedWord = 256;              // as HF: longer words are not cached
constexpr size_t kSmallWord = 48;                   // up to this many symbols: linear-scan merge
constexpr uint32_t kNoRank = ~uint32_t(0);

std::atomic<uint64_t> g_next_instance{1};

// Per-thread cache: piece text -> ids.
class WordCache {
 public:
  bool find(std::string_view key, uint64_t h, std::vector<int32_t>& out) const {
    if (entries_.empty()) return false;
    for (size_t i = h & kMask;; i = (i + 1) & kMask) {
      uint32_t e = slots_[i];
      if (e == 0) return false;
      const Entry& en = entries_[e - 1];
      if (en.hash == h && std::string_view(keys_).substr(en.key_off, en.key_len) == key) {
        out.insert(out.end(), ids_.begin() + en.ids_off, ids_.begin() + en.ids_off + en.ids_len);
        return true;
      }
    }
  }
  void insert(std::string_view key, uint64_t h, const int32_t* ids, size_t n) {
    if (entries_.size() >= kMaxEntries || keys_.size() > (64u << 20)) clear();
    if (slots_.empty()) slots_.assign(kMask + 1, 0);
    size_t i = h & kMask;
    while (slots_[i] != 0) i = (i + 1) & kMask;
    entries_.push_back(Entry{h, uint32_t(keys_.size()), uint32_t(key.size()), uint32_t(ids_.size()), uint32_t(n)});
    keys_.append(key);
    ids_.insert(ids_.end(), ids, ids + n);
    slots_[i] = uint32_t(entries_.size());
  }
  void clear() {
    if (!entries_.empty()) std::fill(slots_.begin(), slots_.end(), 0);
    entries_.clear();
    keys_.clear();
    ids_.clear();
  }

 private:
  static constexpr size_t kMaxEntries = 1 << 16;
  static constexpr size_t kMask = (1 << 17) - 1;
  struct Entry {
    uint64_t hash;
    uint32_t key_off, key_len, ids_off, ids_len;
  };
  std::vector<uint32_t> slots_;  // entry index + 1, 0 = empty
  std::vector<Entry> entries_;
  std::string keys_;
  std::vector<int32_t> ids_;
};

struct ThreadCache {
  uint64_t owner = 0;
  WordCache cache;
};
thread_local ThreadCache t_cache;

}  // namespace

struct BpeModel::Symbols {
  std::vector<int32_t> ids;
  std::vector<uint32_t> bytes;  // text bytes of each symbol
  bool plain = true;            // every symbol is one character whose token is that character
  // merge scratch
  std::vector<int32_t> a, prev, next;
  std::vector<uint32_t> rank;
  std::vector<int32_t> merged;
  std::vector<uint64_t> heap;
  std::vector<uint32_t> cuts;
  std::vector<int32_t> piece;
};

void BpeModel::reserve(size_t tokens, size_t merges) {
  arena_.reserve(tokens * 8);
  off_.reserve(tokens);
  len_.reserve(tokens);
  index_.reset(tokens);
  pending_.reserve(merges);
}

void BpeModel::add_token(std::string_view token, int64_t id) {
  if (id < 0 || id >= (int64_t(1) << 26)) throw Error("{}: model.vocab: id {} of '{}' is out of range", file_, id, token);
  if (id >= int64_t(len_.size())) {
    off_.resize(id + 1, 0);
    len_.resize(id + 1, kMissing);
  }
  if (len_[id] != kMissing) {
    if (token_view(int32_t(id)) == token) return;
    throw Error("{}: model.vocab: id {} is given to both '{}' and '{}'", file_, id, token_view(int32_t(id)), token);
  }
  off_[id] = uint32_t(arena_.size());
  len_[id] = uint32_t(token.size());
  arena_.append(token);
  int32_t old = index_.assign(token, int32_t(id), [this](int32_t i) { return token_view(i); });
  if (old >= 0 && old != id) len_[old] = kMissing;  // HF: a later duplicate key replaces the earlier one
}

void BpeModel::add_merge(std::string_view a, std::string_view b, bool copy) {
  if (copy) {
    a = escaped_.emplace_back(a);
    b = escaped_.emplace_back(b);
  }
  pending_.emplace_back(a, b);
}

void BpeModel::finish(BpeOptions options) {
  opt_ = std::move(options);
  instance_ = g_next_instance.fetch_add(1);
  size_t prefix_len = opt_.continuing_subword_prefix ? opt_.continuing_subword_prefix->size() : 0;
  // Phase 1 (parallel, read-only): the ids of a, b and a+b for every merge, in batches with prefetches: the
  // tables are far larger than the caches, so overlapping the misses of a batch is what makes loading fast.
  size_t n = pending_.size();
  std::vector<int32_t> left(n), right(n), joined_id(n);
  std::vector<std::string> errors;
  unsigned threads = std::max(1u, std::min(8u, std::thread::hardware_concurrency()));
  if (n < 65536) threads = 1;
  errors.resize(threads);
  auto resolve = [&](unsigned t) {
    auto key_of = [this](int32_t i) { return token_view(i); };
    constexpr size_t kBatch = 16;
    uint64_t ha[kBatch], hb[kBatch], hj[kBatch];
    std::string joined[kBatch];
    size_t lo = n * t / threads, hi = n * (t + 1) / threads;
    for (size_t base = lo; base < hi; base += kBatch) {
      size_t m = std::min(kBatch, hi - base);
      for (size_t k = 0; k < m; ++k) {
        ha[k] = hash_str(pending_[base + k].first);
        hb[k] = hash_str(pending_[base + k].second);
        index_.prefetch(ha[k]);
        index_.prefetch(hb[k]);
      }
      for (size_t k = 0; k < m; ++k) {
        auto [a, b] = pending_[base + k];
        size_t r = base + k;
        left[r] = index_.find(a, ha[k], key_of);
        right[r] = index_.find(b, hb[k], key_of);
        if (left[r] < 0 || right[r] < 0) {
          errors[t] = fmt::format("{}: model.merges[{}]: token '{}' is not in the vocabulary", file_, r,
                                  left[r] < 0 ? a : b);
          return;
        }
        if (b.size() < prefix_len) {
          errors[t] = fmt::format("{}: model.merges[{}]: '{}' is shorter than the subword prefix", file_, r, b);
          return;
        }
        joined[k].assign(a);
        joined[k].append(b.substr(prefix_len));
        hj[k] = hash_str(joined[k]);
        index_.prefetch(hj[k]);
      }
      for (size_t k = 0; k < m; ++k) {
        joined_id[base + k] = index_.find(joined[k], hj[k], key_of);
        if (joined_id[base + k] < 0) {
          errors[t] = fmt::format("{}: model.merges[{}]: merged token '{}' is not in the vocabulary", file_,
                                  base + k, joined[k]);
          return;
        }
      }
    }
  };
  if (threads == 1) {
    resolve(0);
  } else {
    std::vector<std::thread> pool;
    for (unsigned t = 0; t < threads; ++t) pool.emplace_back(resolve, t);
    for (auto& th : pool) th.join();
  }
  for (const std::string& e : errors)  // the first failing merge, in file order
    if (!e.empty()) throw Error(e);
  // Phase 2: the pair map, in rank order (a later duplicate pair replaces an earlier one, as in HF).
  merges_.reset(n);
  constexpr size_t kAhead = 8;
  for (size_t r = 0; r < n; ++r) {
    if (r + kAhead < n) merges_.prefetch(left[r + kAhead], right[r + kAhead]);
    merges_.assign(left[r], right[r], PairMap::Value{uint32_t(r), joined_id[r]});
  }
  pending_.clear();
  pending_.shrink_to_fit();
  escaped_.clear();

  unk_id_ = opt_.unk_token ? token_to_id(*opt_.unk_token) : -1;
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    byte_id_[b] = token_to_id(name);
  }
  fast_chars_ = !opt_.continuing_subword_prefix && !opt_.end_of_word_suffix;
  bmp_id_.assign(0x10000, -1);
  spanning_.clear();
  for (int64_t id = 0; id < id_bound(); ++id) {
    if (len_[id] == kMissing) continue;
    std::string_view t = token_view(int32_t(id));
    if (!t.empty() && utf8_len(static_cast<unsigned char>(t[0])) == t.size()) {
      size_t i = 0;
      char32_t cp = decode_utf8(t, i);
      if (cp < 0x10000) bmp_id_[cp] = int32_t(id);
    }
    for (size_t p = t.find(kMeta, 1); p != std::string_view::npos; p = t.find(kMeta, p + 1)) {
      if (p < kMeta.size() || t.substr(p - kMeta.size(), kMeta.size()) != kMeta) {
        spanning_.emplace_back(t);
        break;
      }
    }
  }
  can_split_ = fast_chars_ && !opt_.ignore_merges && spanning_.size() <= 64;
}

void BpeModel::initial_symbols(std::string_view word, Symbols& sym) const {
  sym.ids.clear();
  sym.bytes.clear();
  sym.plain = true;
  int32_t unk = -1;
  uint32_t unk_len = 0;
  std::string s;
  size_t i = 0;
  while (i < word.size()) {
    size_t start = i;
    char32_t cp = decode_utf8(word, i);
    uint32_t blen = uint32_t(i - start);
    int32_t id;
    std::string_view text = word.substr(start, blen);
    if (fast_chars_) {
      id = cp < 0x10000 ? bmp_id_[cp] : token_to_id(text);
    } else {
      s.clear();
      if (start > 0 && opt_.continuing_subword_prefix) s += *opt_.continuing_subword_prefix;
      s += text;
      if (i >= word.size() && opt_.end_of_word_suffix) s += *opt_.end_of_word_suffix;
      text = s;
      id = token_to_id(text);
      sym.plain = false;
    }
    if (id >= 0) {
      if (unk >= 0) {
        sym.ids.push_back(unk);
        sym.bytes.push_back(unk_len);
        unk = -1;
      }
      sym.ids.push_back(id);
      sym.bytes.push_back(blen);
      continue;
    }
    sym.plain = false;
    if (opt_.byte_fallback) {
      bool all = true;
      for (char c : text) all = all && byte_id_[static_cast<unsigned char>(c)] >= 0;
      if (all) {  // HF adds the byte tokens without flushing a pending unk first; so do we
        for (char c : text) {
          sym.ids.push_back(byte_id_[static_cast<unsigned char>(c)]);
          sym.bytes.push_back(1);
        }
        continue;
      }
    }
    if (opt_.unk_token) {
      if (unk_id_ < 0) throw Error("{}: unk_token '{}' is not in the vocabulary", file_, *opt_.unk_token);
      if (unk >= 0 && opt_.fuse_unk) {
        unk_len += blen;
      } else {
        if (unk >= 0) {
          sym.ids.push_back(unk);
          sym.bytes.push_back(unk_len);
        }
        unk = unk_id_;
        unk_len = blen;
      }
    }  // without unk_token the character is dropped, as in HF
  }
  if (unk >= 0) {
    sym.ids.push_back(unk);
    sym.bytes.push_back(unk_len);
  }
}

// Lowest rank first, leftmost among equal ranks: the order HF's heap (rank, pos) gives.
void BpeModel::merge_small(Symbols& sym, size_t begin, size_t end) const {
  size_t n = end - begin;
  auto& a = sym.a;
  auto& rank = sym.rank;
  auto& merged = sym.merged;
  a.assign(sym.ids.begin() + begin, sym.ids.begin() + end);
  rank.resize(n);
  merged.resize(n);
  auto look = [&](size_t k) {
    const PairMap::Value* v = merges_.find(a[k], a[k + 1]);
    rank[k] = v ? v->rank : kNoRank;
    merged[k] = v ? v->id : -1;
  };
  for (size_t k = 0; k + 1 < n; ++k) look(k);
  while (n > 1) {
    size_t best = 0;
    for (size_t k = 1; k + 1 < n; ++k)
      if (rank[k] < rank[best]) best = k;
    if (rank[best] == kNoRank) break;
    a[best] = merged[best];
    std::copy(a.begin() + best + 2, a.begin() + n, a.begin() + best + 1);
    std::copy(rank.begin() + best + 1, rank.begin() + n - 1, rank.begin() + best);
    std::copy(merged.begin() + best + 1, merged.begin() + n - 1, merged.begin() + best);
    --n;
    if (best > 0) look(best - 1);
    if (best + 1 < n) look(best);
  }
  sym.piece.assign(a.begin(), a.begin() + n);
}

// HF's algorithm (models/bpe/word.rs merge_all): a min-heap of (rank, position); stale entries are skipped.
void BpeModel::merge_heap(Symbols& sym, size_t begin, size_t end) const {
  size_t n = end - begin;
  auto& a = sym.a;
  auto& prev = sym.prev;
  auto& next = sym.next;
  auto& heap = sym.heap;
  a.assign(sym.ids.begin() + begin, sym.ids.begin() + end);
  prev.resize(n);
  next.resize(n);
  heap.clear();
  for (size_t k = 0; k < n; ++k) {
    prev[k] = int32_t(k) - 1;
    next[k] = k + 1 < n ? int32_t(k + 1) : -1;
  }
  auto cmp = std::greater<uint64_t>();
  auto push = [&](int32_t pos) {
    const PairMap::Value* v = merges_.find(a[pos], a[next[pos]]);
    if (v) {
      heap.push_back((uint64_t(v->rank) << 32) | uint32_t(pos));
      std::push_heap(heap.begin(), heap.end(), cmp);
    }
  };
  for (size_t k = 0; k + 1 < n; ++k) {
    const PairMap::Value* v = merges_.find(a[k], a[k + 1]);
    if (v) heap.push_back((uint64_t(v->rank) << 32) | uint32_t(k));
  }
  std::make_heap(heap.begin(), heap.end(), cmp);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), cmp);
    uint64_t top = heap.back();
    heap.pop_back();
    int32_t pos = int32_t(uint32_t(top));
    uint32_t r = uint32_t(top >> 32);
    if (a[pos] < 0 || next[pos] < 0) continue;  // removed, or last symbol
    int32_t nx = next[pos];
    // Stale entry? Ranks are unique per pair, so an equal rank means the same pair is still here.
    const PairMap::Value* v = merges_.find(a[pos], a[nx]);
    if (!v || v->rank != r) continue;
    a[pos] = v->id;
    a[nx] = -1;
    next[pos] = next[nx];
    if (next[nx] >= 0) prev[next[nx]] = pos;
    if (prev[pos] >= 0) push(prev[pos]);
    if (next[pos] >= 0) push(pos);
  }
  sym.piece.clear();
  for (int32_t k = 0; k >= 0; k = next[k]) sym.piece.push_back(a[k]);
}

void BpeModel::merge(Symbols& sym, size_t begin, size_t end) const {
  if (end - begin <= kSmallWord) merge_small(sym, begin, end);
  else merge_heap(sym, begin, end);
}

// Cut points (symbol indices) where a word may be split: before a "▁" that follows a non-"▁" character, unless
// an occurrence of a vocabulary token that contains such a pair spans that place. Any symbol BPE can build is a
// vocabulary token equal to the text it covers (words here are `plain`), so a symbol across a cut would be such
// an occurrence; with none, no merge crosses the cut, and the pieces merge independently to the same result.
void BpeModel::split_points(std::string_view word, const Symbols& sym, std::vector<uint32_t>& cuts) const {
  cuts.clear();
  // Byte ranges covered by spanning-token occurrences (rare).
  std::vector<std::pair<size_t, size_t>> blocked;
  for (const std::string& t : spanning_)
    for (size_t p = word.find(t); p != std::string_view::npos; p = word.find(t, p + 1))
      blocked.emplace_back(p, p + t.size());
  size_t off = 0;
  bool prev_meta = false;
  for (size_t k = 0; k < sym.ids.size(); ++k) {
    bool meta = sym.bytes[k] == 3 && word.compare(off, 3, kMeta) == 0;
    if (k > 0 && meta && !prev_meta) {
      bool ok = true;
      for (auto [b, e] : blocked) ok = ok && !(b < off && off < e);
      if (ok) cuts.push_back(uint32_t(k));
    }
    prev_meta = meta;
    off += sym.bytes[k];
  }
}

void BpeModel::tokenize(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (opt_.ignore_merges) {
    int32_t id = token_to_id(word);
    if (id >= 0) {
      out.push_back(id);
      return;
    }
  }
  if (t_cache.owner != instance_) {
    t_cache.cache.clear();
    t_cache.owner = instance_;
  }
  WordCache& cache = t_cache.cache;
  uint64_t h = 0;
  if (word.size() < kMaxCachedWord) {
    h = hash_str(word);
    if (cache.find(word, h, out)) return;
  }
  static thread_local Symbols sym;
  initial_symbols(word, sym);
  auto run = [&](size_t b, size_t e, std::string_view text) {
    uint64_t hh = 0;
    bool cacheable = text.size() < kMaxCachedWord;
    if (cacheable) {
      hh = text.data() == word.data() && text.size() == word.size() ? h : hash_str(text);
      if (cache.find(text, hh, out)) return;
    }
    merge(sym, b, e);
    out.insert(out.end(), sym.piece.begin(), sym.piece.end());
    if (cacheable) cache.insert(text, hh, sym.piece.data(), sym.piece.size());
  };
  if (can_split_ && sym.plain) {
    split_points(word, sym, sym.cuts);
    size_t b = 0, off = 0, k = 0;
    sym.cuts.push_back(uint32_t(sym.ids.size()));
    for (uint32_t e : sym.cuts) {
      size_t len = 0;
      for (; k < e; ++k) len += sym.bytes[k];
      run(b, e, word.substr(off, len));
      off += len;
      b = e;
    }
  } else {
    run(0, sym.ids.size(), word);
  }
}

}  // namespace gemma4::tok
