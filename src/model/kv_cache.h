// Per-layer K/V cache on the model's device (host memory for the CPU backend, GPU memory for CUDA), F32, or
// BF16 on a GPU in bf16 precision (Model::new_cache): appends round the F32 keys/values once, attention reads
// the BF16 rows directly (half the memory and half the decode attention traffic).
// A sliding layer keeps at most `sliding_window` positions in a ring; a full layer keeps every position
// (contiguous, grown geometrically). KV-shared layers (E2B/E4B) have no entry: they read their source
// layer's keys and values within the same forward call (spec §6).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "core/tensor.h"
#include "model/config.h"

namespace gemma4 {

class Ops;

class KVCache {
 public:
  // `ops` (not owned; it must outlive the cache) allocates and copies on its device; nullptr = CPU.
  // dtype: F32, or BF16 with a GPU `ops`.
  explicit KVCache(const TextConfig& cfg, Ops* ops = nullptr, DType dtype = DType::F32);
  KVCache(KVCache&&) = default;
  KVCache& operator=(KVCache&&) = default;
  KVCache(const KVCache&) = delete;  // storage is shared by Tensor views: copying would alias it
  KVCache& operator=(const KVCache&) = delete;

  int64_t length() const { return length_; }  // positions seen so far
  DType dtype() const { return dtype_; }
  // Changes whenever a layer's storage is (re)allocated: a recorded decode step (ops.h begin_step) that
  // read this cache is valid only while the id stays the same.
  uint64_t storage_id() const { return storage_id_; }
  // True when T more positions fit without growing a full layer's storage.
  bool fits(int64_t T) const;
  // Full layers grow geometrically as positions arrive; reserving the final length up front (prompt + new
  // tokens) allocates each full layer once: no regrowth copies, no transient 3x memory at long contexts.
  void reserve(int64_t positions);
  // Appends T positions (k, v: [T, kv_dim], on the cache's device or the CPU) for `layer` starting at
  // position `pos0` == the layer's next position (before advance()). Sliding layers keep only the newest
  // `window` positions.
  void append(int layer, int64_t pos0, const Tensor& k, const Tensor& v);
  // A one-position append whose row the caller writes (a batched decode step writes every sequence's row in
  // one Ops::store_kv_rows): the bookkeeping of append(layer, pos0, 1 row), returning where the row goes.
  struct RowSlot {
    Tensor* k;
    Tensor* v;
    int64_t row;
  };
  RowSlot append_slot(int layer, int64_t pos0);
  // Copies the held positions of `layer` (oldest first) into rows [0, n) of k_out/v_out ([>= n, kv_dim],
  // on the cache's device, F32 or the cache's dtype) and their positions into pos; returns n.
  int64_t gather(int layer, Tensor& k_out, Tensor& v_out, std::vector<int64_t>& pos) const;
  void advance(int64_t T) { length_ += T; }
  // Number of positions currently held for a layer (<= window on sliding layers).
  int64_t held(int layer) const { return layers_[layer].count; }
  int64_t capacity(int layer) const { return layers_[layer].capacity; }
  int64_t start_position(int layer) const { return layers_[layer].start_pos; }  // oldest held position
  bool has_layer(int layer) const { return layers_[layer].kv_dim > 0; }
  bool is_ring(int layer) const { return layers_[layer].capacity > 0; }
  // Ring (sliding) layers: the held slots as [held, kv_dim] views in slot order (not position order) and
  // the position each slot holds. Attention is order-free (the mask reads each key's position), so a
  // one-token decode step attends over the ring in place instead of gathering it (spec §6.1).
  Tensor ring_k(int layer) const { return ring_rows(layer, false); }
  Tensor ring_v(int layer) const { return ring_rows(layer, true); }
  void slot_positions(int layer, std::vector<int64_t>& pos) const;
  // Full (unbounded) layers: contiguous K/V of positions 0 .. held(layer)-1, as [held, kv_dim] views.
  Tensor k_all(int layer) const { return all_rows(layer, false); }
  Tensor v_all(int layer) const { return all_rows(layer, true); }

 private:
  struct Layer {
    int64_t kv_dim = 0;
    int64_t capacity = 0;   // ring size for sliding layers; 0 = unbounded (full layers)
    int64_t count = 0;      // positions held
    int64_t start_pos = 0;  // position of the oldest held entry
    int64_t rows = 0;       // allocated rows of k/v
    Tensor k, v;            // [rows, kv_dim] on the cache's device
  };
  Tensor alloc(int64_t rows, int64_t kv_dim) const;
  void grow(Layer& L, int64_t rows);
  Tensor ring_rows(int layer, bool values) const;
  Tensor all_rows(int layer, bool values) const;
  void copy_rows(const Tensor& src, int64_t src_row, Tensor& dst, int64_t dst_row, int64_t n) const;

  std::shared_ptr<Ops> own_ops_;  // the CPU ops when none was given
  Ops* ops_ = nullptr;
  std::vector<Layer> layers_;
  int64_t length_ = 0;
  uint64_t storage_id_ = 0;
  DType dtype_ = DType::F32;
};

}  // namespace gemma4
