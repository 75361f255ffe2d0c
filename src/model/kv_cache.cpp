#include "model/kv_cache.h"

#include <algorithm>
#include <atomic>

#include "core/error.h"
#include "ops/ops.h"

namespace gemma4 {

namespace {
std::atomic<uint64_t> next_storage_id{1};
}

KVCache::KVCache(const TextConfig& cfg, Ops* ops, DType dtype)
    : ops_(ops), storage_id_(next_storage_id++), dtype_(dtype) {
  if (!ops_) {
    own_ops_ = make_cpu_ops();
    ops_ = own_ops_.get();
  }
  G4_CHECK(dtype_ == DType::F32 || (dtype_ == DType::BF16 && ops_->device() != Device::CPU),
           "KV cache: dtype {} (F32, or BF16 on a GPU)", dtype_name(dtype_));
  auto specs = cfg.layers();
  layers_.resize(specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    const LayerSpec& s = specs[i];
    if (s.kv_source >= 0) continue;  // KV-shared layer: no cache entry (spec §6.2)
    Layer& L = layers_[i];
    L.kv_dim = int64_t(s.num_kv_heads) * s.head_dim;
    if (s.type == LayerType::Sliding) {
      L.capacity = cfg.sliding_window;
      L.rows = L.capacity;
      L.k = alloc(L.rows, L.kv_dim);
      L.v = alloc(L.rows, L.kv_dim);
    }
  }
}

void KVCache::grow(Layer& L, int64_t rows) {
  Tensor nk = alloc(rows, L.kv_dim), nv = alloc(rows, L.kv_dim);
  copy_rows(L.k, 0, nk, 0, L.count);
  copy_rows(L.v, 0, nv, 0, L.count);
  L.k = std::move(nk);
  L.v = std::move(nv);
  L.rows = rows;
  storage_id_ = next_storage_id++;
}

bool KVCache::fits(int64_t T) const {
  for (const Layer& L : layers_)
    if (L.kv_dim > 0 && L.capacity == 0 && L.count + T > L.rows) return false;
  return true;
}

void KVCache::reserve(int64_t positions) {
  for (Layer& L : layers_)
    if (L.kv_dim > 0 && L.capacity == 0 && positions > L.rows) grow(L, positions);
}

Tensor KVCache::alloc(int64_t rows, int64_t kv_dim) const { return ops_->alloc(dtype_, {rows, kv_dim}); }

void KVCache::copy_rows(const Tensor& src, int64_t src_row, Tensor& dst, int64_t dst_row, int64_t n) const {
  if (n <= 0) return;
  Tensor s = src.slice_rows(src_row, src_row + n);
  Tensor d = dst.slice_rows(dst_row, dst_row + n);
  ops_->copy(s, d);
}

void KVCache::append(int layer, int64_t pos0, const Tensor& k, const Tensor& v) {
  Layer& L = layers_.at(layer);
  G4_CHECK(L.kv_dim > 0, "KV cache: layer {} has no cache entry", layer);
  G4_CHECK(pos0 == L.start_pos + L.count, "KV cache: layer {} appends position {} but holds up to {}", layer, pos0,
           L.start_pos + L.count);
  const int64_t T = k.numel() / L.kv_dim;
  G4_CHECK(k.numel() == T * L.kv_dim && v.numel() == k.numel(), "KV cache: layer {}: k/v of {} and {} elements", layer,
           k.numel(), v.numel());
  const Tensor k2 = k.reshape({T, L.kv_dim}), v2 = v.reshape({T, L.kv_dim});
  if (L.capacity == 0) {  // full layer: grow geometrically
    if (L.count + T > L.rows) grow(L, std::max<int64_t>({L.count + T, 2 * L.rows, 64}));
    ops_->store_kv(k2, v2, L.k, L.v, L.count);
    L.count += T;
    return;
  }
  // Sliding layer: ring of `capacity` slots; slot of position p is p % capacity. Only the newest
  // `capacity` positions of this chunk can survive; they land in at most two contiguous slot ranges.
  const int64_t skip = std::max<int64_t>(0, T - L.capacity);
  int64_t t = skip;
  while (t < T) {
    const int64_t slot = (pos0 + t) % L.capacity;
    const int64_t n = std::min(T - t, L.capacity - slot);
    ops_->store_kv(k2.slice_rows(t, t + n), v2.slice_rows(t, t + n), L.k, L.v, slot);
    t += n;
  }
  const int64_t end = pos0 + T;
  L.count = std::min<int64_t>(L.capacity, end - L.start_pos);
  L.start_pos = end - L.count;
}

KVCache::RowSlot KVCache::append_slot(int layer, int64_t pos0) {
  Layer& L = layers_.at(layer);
  G4_CHECK(L.kv_dim > 0, "KV cache: layer {} has no cache entry", layer);
  G4_CHECK(pos0 == L.start_pos + L.count, "KV cache: layer {} appends position {} but holds up to {}", layer, pos0,
           L.start_pos + L.count);
  if (L.capacity == 0) {
    if (L.count + 1 > L.rows) grow(L, std::max<int64_t>({L.count + 1, 2 * L.rows, 64}));
    return {&L.k, &L.v, L.count++};
  }
  const int64_t slot = pos0 % L.capacity;  // as append(): the ring slot of the position
  L.count = std::min<int64_t>(L.capacity, pos0 + 1 - L.start_pos);
  L.start_pos = pos0 + 1 - L.count;
  return {&L.k, &L.v, slot};
}

int64_t KVCache::gather(int layer, Tensor& k_out, Tensor& v_out, std::vector<int64_t>& pos) const {
  const Layer& L = layers_.at(layer);
  G4_CHECK(k_out.numel() >= L.count * L.kv_dim && v_out.numel() >= L.count * L.kv_dim,
           "KV cache gather: output of {} elements for {} rows", k_out.numel(), L.count);
  Tensor ko = k_out.reshape({k_out.numel() / L.kv_dim, L.kv_dim});
  Tensor vo = v_out.reshape({v_out.numel() / L.kv_dim, L.kv_dim});
  pos.resize(L.count);
  for (int64_t i = 0; i < L.count; ++i) pos[i] = L.start_pos + i;
  if (L.capacity == 0) {
    copy_rows(L.k, 0, ko, 0, L.count);
    copy_rows(L.v, 0, vo, 0, L.count);
    return L.count;
  }
  int64_t i = 0;
  while (i < L.count) {
    const int64_t slot = (L.start_pos + i) % L.capacity;
    const int64_t n = std::min(L.count - i, L.capacity - slot);
    copy_rows(L.k, slot, ko, i, n);
    copy_rows(L.v, slot, vo, i, n);
    i += n;
  }
  return L.count;
}

Tensor KVCache::ring_rows(int layer, bool values) const {
  const Layer& L = layers_.at(layer);
  G4_CHECK(L.capacity > 0 && L.count > 0, "KV cache: ring view of layer {} (not a ring, or empty)", layer);
  return (values ? L.v : L.k).slice_rows(0, L.count);  // while count < capacity the filled slots are 0 .. count-1
}

void KVCache::slot_positions(int layer, std::vector<int64_t>& pos) const {
  const Layer& L = layers_.at(layer);
  G4_CHECK(L.capacity > 0, "KV cache: slot_positions of a layer that is not a ring");
  pos.resize(L.count);
  // Slot i holds the one position p in [start_pos, start_pos + count) with p % capacity == i.
  const int64_t first_slot = L.start_pos % L.capacity;
  for (int64_t i = 0; i < L.count; ++i) pos[i] = L.start_pos + (i - first_slot + L.capacity) % L.capacity;
}

Tensor KVCache::all_rows(int layer, bool values) const {
  const Layer& L = layers_.at(layer);
  G4_CHECK(L.capacity == 0, "KV cache: {}_all of a ring layer", values ? "v" : "k");
  if (L.count) return (values ? L.v : L.k).slice_rows(0, L.count);
  Tensor t;
  t.shape = {0, L.kv_dim};
  t.device = ops_->device();
  return t;
}

}  // namespace gemma4
