#include "model/kv_cache.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace gemma4 {

KVCache::KVCache(const TextConfig& cfg) {
  auto specs = cfg.layers();
  layers_.resize(specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    const LayerSpec& s = specs[i];
    if (s.kv_source >= 0) continue;  // KV-shared layer: no cache entry (spec §6.2)
    Layer& L = layers_[i];
    L.kv_dim = int64_t(s.num_kv_heads) * s.head_dim;
    if (s.type == LayerType::Sliding) {
      L.capacity = cfg.sliding_window;
      L.k.resize(L.capacity * L.kv_dim);
      L.v.resize(L.capacity * L.kv_dim);
    }
  }
}

void KVCache::append(int layer, int64_t pos0, const float* k, const float* v, int64_t T) {
  Layer& L = layers_.at(layer);
  G4_CHECK(L.kv_dim > 0, "KV cache: layer {} has no cache entry", layer);
  G4_CHECK(pos0 == L.start_pos + L.count, "KV cache: layer {} appends position {} but holds up to {}", layer, pos0,
           L.start_pos + L.count);
  const size_t row = size_t(L.kv_dim);
  if (L.capacity == 0) {  // full layer: grow
    L.k.insert(L.k.end(), k, k + T * row);
    L.v.insert(L.v.end(), v, v + T * row);
    L.count += T;
    return;
  }
  // Sliding layer: ring of `capacity` slots; slot of position p is p % capacity. Only the newest
  // `capacity` positions of this chunk can survive.
  int64_t skip = std::max<int64_t>(0, T - L.capacity);
  for (int64_t t = skip; t < T; ++t) {
    int64_t p = pos0 + t;
    size_t slot = size_t(p % L.capacity);
    std::memcpy(&L.k[slot * row], k + t * row, row * sizeof(float));
    std::memcpy(&L.v[slot * row], v + t * row, row * sizeof(float));
  }
  int64_t end = pos0 + T;
  L.count = std::min<int64_t>(L.capacity, end - L.start_pos);
  L.start_pos = end - L.count;
}

int64_t KVCache::gather(int layer, std::vector<float>& k_out, std::vector<float>& v_out,
                        std::vector<int64_t>& pos) const {
  const Layer& L = layers_.at(layer);
  const size_t row = size_t(L.kv_dim);
  k_out.resize(L.count * row);
  v_out.resize(L.count * row);
  pos.resize(L.count);
  if (L.capacity == 0) {
    std::memcpy(k_out.data(), L.k.data(), L.count * row * sizeof(float));
    std::memcpy(v_out.data(), L.v.data(), L.count * row * sizeof(float));
    for (int64_t i = 0; i < L.count; ++i) pos[i] = L.start_pos + i;
    return L.count;
  }
  for (int64_t i = 0; i < L.count; ++i) {
    int64_t p = L.start_pos + i;
    size_t slot = size_t(p % L.capacity);
    std::memcpy(&k_out[i * row], &L.k[slot * row], row * sizeof(float));
    std::memcpy(&v_out[i * row], &L.v[slot * row], row * sizeof(float));
    pos[i] = p;
  }
  return L.count;
}

}  // namespace gemma4
