// Per-layer K/V cache (CPU, F32). A sliding layer keeps at most `sliding_window` positions in a ring; a
// full layer keeps every position. KV-shared layers (E2B/E4B) have no entry: they read their source
// layer's keys and values within the same forward call (spec §6).
#pragma once
#include <cstdint>
#include <vector>

#include "model/config.h"

namespace gemma4 {

class KVCache {
 public:
  explicit KVCache(const TextConfig& cfg);

  int64_t length() const { return length_; }  // positions seen so far
  // Appends T positions (k, v: [T, kv_dim]) for `layer` starting at position `pos0` == length() (before
  // advance()). Sliding layers keep only the newest `window` positions.
  void append(int layer, int64_t pos0, const float* k, const float* v, int64_t T);
  // Copies the cached positions of `layer` (oldest first) into k_out/v_out ([n, kv_dim]) with their
  // positions; returns n.
  int64_t gather(int layer, std::vector<float>& k_out, std::vector<float>& v_out, std::vector<int64_t>& pos) const;
  void advance(int64_t T) { length_ += T; }
  // Number of positions currently held for a layer (<= window on sliding layers).
  int64_t held(int layer) const { return layers_[layer].count; }
  int64_t capacity(int layer) const { return layers_[layer].capacity; }
  bool has_layer(int layer) const { return layers_[layer].kv_dim > 0; }
  bool is_ring(int layer) const { return layers_[layer].capacity > 0; }
  // Full (unbounded) layers: contiguous K/V of positions 0 .. held(layer)-1, [held, kv_dim].
  const float* k_data(int layer) const { return layers_[layer].k.data(); }
  const float* v_data(int layer) const { return layers_[layer].v.data(); }

 private:
  struct Layer {
    int64_t kv_dim = 0;
    int64_t capacity = 0;  // ring size for sliding layers; 0 = unbounded (full layers)
    int64_t count = 0;     // positions held
    int64_t start_pos = 0; // position of the oldest held entry
    std::vector<float> k, v;
  };
  std::vector<Layer> layers_;
  int64_t length_ = 0;
};

}  // namespace gemma4
