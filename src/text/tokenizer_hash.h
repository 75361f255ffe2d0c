// Hash tables for the tokenizer, built for a cheap load of a 262,144-token vocabulary and 500K merges:
// open addressing over flat arrays, no per-entry allocation.
#pragma once
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

namespace gemma4::tok {

inline uint64_t hash_bytes(const char* p, size_t n) {
  uint64_t h = 0x9E3779B97F4A7C15ULL ^ (n * 0xFF51AFD7ED558CCDULL);
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    h = (h ^ w) * 0xBF58476D1CE4E5B9ULL;
    h ^= h >> 29;
    p += 8;
    n -= 8;
  }
  if (n) {
    uint64_t w = 0;
    std::memcpy(&w, p, n);
    h = (h ^ w) * 0x94D049BB133111EBULL;
    h ^= h >> 32;
  }
  h ^= h >> 33;
  h *= 0xFF51AFD7ED558CCDULL;
  h ^= h >> 33;
  return h;
}
inline uint64_t hash_str(std::string_view s) { return hash_bytes(s.data(), s.size()); }

inline size_t pow2_capacity(size_t n) {  // load factor <= 0.5
  size_t c = 16;
  while (c < 2 * n) c <<= 1;
  return c;
}

// String -> int32 index whose keys live elsewhere: key_of(value) returns the stored string of a value.
// Values are non-negative; -1 means absent. Slots keep the full hash and the length, so a probe reads the key
// bytes only for the entry that matches.
class StringIndex {
 public:
  void reset(size_t expected) {
    slots_.assign(pow2_capacity(expected), Slot{0, -1, 0});
    mask_ = slots_.size() - 1;
    size_ = 0;
  }
  size_t size() const { return size_; }
  void prefetch(uint64_t h) const {
    if (!slots_.empty()) __builtin_prefetch(&slots_[h & mask_]);
  }

  template <class KeyOf>
  int32_t find(std::string_view key, uint64_t h, const KeyOf& key_of) const {
    if (slots_.empty()) return -1;
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.value < 0) return -1;
      if (s.hash == h && s.len == key.size() && key_of(s.value) == key) return s.value;
    }
  }
  template <class KeyOf>
  int32_t find(std::string_view key, const KeyOf& key_of) const {
    return find(key, hash_str(key), key_of);
  }
  // Inserts or replaces; returns the previous value for this key or -1.
  template <class KeyOf>
  int32_t assign(std::string_view key, int32_t value, const KeyOf& key_of) {
    if (2 * (size_ + 1) > slots_.size()) grow();
    uint64_t h = hash_str(key);
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (s.value < 0) {
        s = Slot{h, value, uint32_t(key.size())};
        ++size_;
        return -1;
      }
      if (s.hash == h && s.len == key.size() && key_of(s.value) == key) {
        int32_t old = s.value;
        s.value = value;
        return old;
      }
    }
  }

 private:
  struct Slot {
    uint64_t hash;
    int32_t value;
    uint32_t len;
  };
  void grow() {
    std::vector<Slot> old;
    old.swap(slots_);
    reset(old.size());
    for (const Slot& s : old) {
      if (s.value < 0) continue;
      size_t i = s.hash & mask_;
      while (slots_[i].value >= 0) i = (i + 1) & mask_;
      slots_[i] = s;
      ++size_;
    }
  }
  std::vector<Slot> slots_;
  size_t mask_ = 0, size_ = 0;
};

// (left id, right id) -> (rank, merged id) for BPE merges.
class PairMap {
 public:
  struct Value {
    uint32_t rank;
    int32_t id;
  };
  void reset(size_t expected) {
    slots_.assign(pow2_capacity(expected), Slot{kEmpty, {0, -1}});
    mask_ = slots_.size() - 1;
    size_ = 0;
  }
  size_t size() const { return size_; }
  static uint64_t key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
  void prefetch(int32_t a, int32_t b) const { __builtin_prefetch(&slots_[mix(key(a, b)) & mask_]); }
  const Value* find(int32_t a, int32_t b) const {
    uint64_t k = key(a, b);
    for (size_t i = mix(k) & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.key == k) return &s.value;
      if (s.key == kEmpty) return nullptr;
    }
  }
  // Later merges of the same pair replace earlier ones (as HF's HashMap collect does).
  void assign(int32_t a, int32_t b, Value v) {
    if (2 * (size_ + 1) > slots_.size()) grow();
    uint64_t k = key(a, b);
    for (size_t i = mix(k) & mask_;; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (s.key == k) {
        s.value = v;
        return;
      }
      if (s.key == kEmpty) {
        s = Slot{k, v};
        ++size_;
        return;
      }
    }
  }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t(0);
  static uint64_t mix(uint64_t k) {
    k ^= k >> 31;
    k *= 0x9E3779B97F4A7C15ULL;
    return k ^ (k >> 29);
  }
  struct Slot {
    uint64_t key;
    Value value;
  };
  void grow() {
    std::vector<Slot> old;
    old.swap(slots_);
    reset(old.size());
    for (const Slot& s : old)
      if (s.key != kEmpty) assign(int32_t(s.key >> 32), int32_t(uint32_t(s.key)), s.value);
  }
  std::vector<Slot> slots_;
  size_t mask_ = 0, size_ = 0;
};

}  // namespace gemma4::tok
