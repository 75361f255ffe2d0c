// The Gemma 4 decoder forward, written once against the Ops interface. Reads like the spec's reference
// pseudocode (§2.6), with the family features of §8 (PLE, KV sharing, MoE) and the Unified soft tokens
// (§4). One sequence per call; positions continue from the KV cache.
#include <algorithm>
#include <array>
#include <cmath>
#include <numeric>

#include "model/embedders.h"
#include "model/model.h"
#include "model/moe.h"
#include "model/rope.h"

namespace gemma4 {

namespace {

// Keys/values one attention layer reads: the cached positions followed by this call's new ones
// ([n, kv_dim] tensors on the backend's device).
struct KeySet {
  Tensor k, v;
  std::shared_ptr<const std::vector<int64_t>> pos;
  std::array<int64_t, 3> run{};  // {n, k0, r} when the keys are a rotated consecutive run (AttnMask::k_run)
  bool is_run = false;
};

// The key positions of a cache layer kind (full or ring) for one sequence: every layer of the kind holds
// the same positions, so the array is built once per forward and shared (32K-key arrays per layer add up).
struct KeyPositions {
  int64_t n = -1, start = -1;
  std::shared_ptr<std::vector<int64_t>> pos;
  std::array<int64_t, 3> run{};
};

// Embedding scale sqrt(H), rounded to the embedding's dtype as HF does (spec §2.1, §7.3).
float rounded_scale(double s, DType dt) {
  float f = float(s);
  if (dt == DType::BF16) return round_to_bf16(f);
  if (dt == DType::F16) return f16_to_f32(f32_to_f16(f));
  return f;
}

// Ends an open recorded step if the forward throws before end_step (ops.h begin_step).
struct StepScope {
  Ops* ops = nullptr;
  ~StepScope() {
    if (ops) ops->abort_step();
  }
  void end() {
    if (ops) ops->end_step();
    ops = nullptr;
  }
};

// A [rows, width] view over the start of a scratch buffer that may be larger.
Tensor rows_view(const Tensor& buf, int64_t rows, int64_t width) {
  G4_CHECK(rows * width <= buf.numel(), "scratch buffer too small: {} < {}", buf.numel(), rows * width);
  Tensor t = buf;
  t.shape = {rows, width};
  return t;
}

}  // namespace

Tensor Model::forward(const std::vector<int64_t>& ids, KVCache& cache, const MultimodalInputs* mm, bool all_logits,
                      Tape* tape, bool logits_on_device) {
  return forward_batch({ids}, {&cache}, mm, all_logits, tape, logits_on_device);
}

Tensor Model::forward_batch(const std::vector<std::vector<int64_t>>& seqs, const std::vector<KVCache*>& caches,
                            const MultimodalInputs* mm, bool all_logits, Tape* tape, bool logits_on_device) {
  return forward_impl(seqs, caches, mm, all_logits, tape, logits_on_device, /*pending_input=*/false);
}

bool Model::can_forward_pending() const {
  return ops_->has_pending_tokens() && cfg_.text.hidden_size_per_layer_input == 0;
}

Tensor Model::forward_pending(KVCache& cache) { return forward_pending_batch({&cache}); }

Tensor Model::forward_pending_batch(const std::vector<KVCache*>& caches) {
  G4_CHECK(can_forward_pending(), "forward_pending: needs a backend with pending tokens (a GPU) and a model without "
                                  "per-layer embeddings");
  // The id 0 stands in for each pending token in the host-side checks; the embedding reads the device's.
  return forward_impl(std::vector<std::vector<int64_t>>(caches.size(), {0}), caches, nullptr, false, nullptr,
                      /*logits_on_device=*/true, /*pending_input=*/true);
}

// pending_input: one row per sequence, whose token is the backend's pending token of that row (forward_pending).
Tensor Model::forward_impl(const std::vector<std::vector<int64_t>>& seqs, const std::vector<KVCache*>& caches,
                           const MultimodalInputs* mm, bool all_logits, Tape* tape, bool logits_on_device,
                           bool pending_input) {
  const TextConfig& tc = cfg_.text;
  Ops& ops = *ops_;
  // Weights on the backend's device (the checkpoint views themselves on the CPU). Parts that still run
  // on the host (image/audio embedders, MoE routing, the PLE gate product) use the host weights and a
  // CPU ops when the backend is a GPU; activations cross over there only.
  const Weights& W = device_weights();
  const bool on_host = ops.device() == Device::CPU;
  Ops& host_ops = on_host ? ops : *host_ops_;
  G4_CHECK(!tape || on_host, "forward: training (a tape) runs on the CPU backend only");
  G4_CHECK(!seqs.empty() && seqs.size() == caches.size(), "forward: {} sequences for {} caches", seqs.size(),
           caches.size());
  G4_CHECK(seqs.size() == 1 || (!tape && !mm), "forward: a batch of sequences is text-only inference");
  // The sequences' tokens are stacked as rows; every per-row op (norms, projections, MLP) runs once over
  // all of them, and only attention and the KV cache work per sequence (segment b = rows [row0, row0 + T)).
  struct Segment {
    KVCache* cache;
    int64_t row0, T, pos0;
  };
  std::vector<Segment> segs;
  std::vector<int64_t> ids, positions;
  for (size_t b = 0; b < seqs.size(); ++b) {
    G4_CHECK(!seqs[b].empty(), "forward: empty input");
    const int64_t pos0 = caches[b]->length();
    segs.push_back({caches[b], int64_t(ids.size()), int64_t(seqs[b].size()), pos0});
    ids.insert(ids.end(), seqs[b].begin(), seqs[b].end());
    for (int64_t t = 0; t < int64_t(seqs[b].size()); ++t) positions.push_back(pos0 + t);
  }
  const int64_t T = int64_t(ids.size());
  const int64_t H = tc.hidden_size, V = tc.vocab_size;
  const float eps = float(tc.rms_norm_eps);
  G4_CHECK(!tape || segs[0].pos0 == 0, "forward: a training forward needs a fresh cache");
  // Records a copy of `t` into the tape slot (training only; scratch buffers are reused).
  auto rec = [&](Tensor& slot, const Tensor& t) {
    if (tape) slot = clone(t);
  };
  for (int64_t t = 0; t < T; ++t)
    G4_CHECK(ids[t] >= 0 && ids[t] < V, "input id {} at position {} is outside the vocabulary [0, {})", ids[t], t, V);

  // A decode step (one new token per sequence, text only, every op on the device, no cache growth) is the
  // same op sequence every time up to positions and key counts: on a GPU it is recorded once per key and
  // replayed (ops.h begin_step). The key pins the caches' storage and each layer's attention key capacity.
  StepScope step;
  {
    bool decode = !tape && !mm && !on_host && tc.hidden_size_per_layer_input == 0 && !tc.enable_moe_block;
    for (const Segment& g : segs) decode = decode && g.T == 1 && g.cache->fits(1);
    if (decode) {
      uint64_t key = (0x9e3779b97f4a7c15ull ^ segs.size()) + (pending_input ? 0x51ull : 0);
      auto mix = [&key](uint64_t v) { key = (key ^ v) * 0x100000001b3ull + (key >> 31); };
      for (const Segment& g : segs) {
        mix(g.cache->storage_id());
        for (size_t li = 0; li < layers_.size(); ++li) {
          if (!g.cache->has_layer(int(li))) continue;
          const int64_t keys = g.cache->is_ring(int(li)) ? std::min(g.cache->held(int(li)) + 1, g.cache->capacity(int(li)))
                                                         : g.cache->held(int(li)) + 1;
          mix(uint64_t(step_key_capacity(keys)));
        }
      }
      ops.begin_step(key);
      step.ops = &ops;
    }
  }

  // --- Embedding (§2.1): placeholders are looked up as pad, then overwritten by soft tokens.
  std::vector<int64_t> lookup_ids = ids;
  std::vector<int64_t> image_rows, audio_rows;
  for (int64_t t = 0; t < T; ++t) {
    bool img = cfg_.is_unified && (ids[t] == cfg_.image_token_id || ids[t] == cfg_.video_token_id);
    bool aud = cfg_.is_unified && ids[t] == cfg_.audio_token_id;
    if (img) image_rows.push_back(t);
    if (aud) audio_rows.push_back(t);
    if (img || aud) lookup_ids[t] = tc.pad_token_id;
  }
  Tensor x = ops.alloc(DType::F32, {T, H});
  const float embed_scale = rounded_scale(std::sqrt(double(H)), W.embed_tokens.dtype);
  if (pending_input) {  // placeholders read as pad, as above (a model may sample one)
    std::vector<int64_t> to_pad;
    if (cfg_.is_unified) to_pad = {cfg_.image_token_id, cfg_.video_token_id, cfg_.audio_token_id};
    ops.embedding_pending(W.embed_tokens, T, embed_scale, to_pad, tc.pad_token_id, x);
  } else {
    ops.embedding(W.embed_tokens, lookup_ids, embed_scale, x);
  }

  G4_CHECK(!tape || (image_rows.empty() && audio_rows.empty()),
           "training with image or audio soft tokens is not supported (text only)");
  if (tape) {
    tape->positions = positions;
    tape->lookup_ids = lookup_ids;
    tape->layers.assign(layers_.size(), LayerTape{});
  }
  auto scatter = [&](const Tensor& soft, const std::vector<int64_t>& rows, const char* what) {
    G4_CHECK(soft.dim(0) == int64_t(rows.size()), "{}: {} soft tokens for {} placeholder positions", what,
             soft.dim(0), rows.size());
    for (size_t r = 0; r < rows.size(); ++r) {
      Tensor dst = x.slice_rows(rows[r], rows[r] + 1);
      ops.copy(soft.slice_rows(int64_t(r), int64_t(r) + 1), dst);
    }
  };
  bool has_pixels = mm && mm->pixel_values.defined() && mm->pixel_values.numel() > 0;
  bool has_audio = mm && mm->input_features.defined() && mm->input_features.numel() > 0;
  if (has_pixels) {
    scatter(embed_images(host_ops, cfg_, w_.vision, mm->pixel_values, mm->image_position_ids), image_rows, "images");
  } else {
    G4_CHECK(image_rows.empty(), "input has {} image placeholder tokens but no pixel_values", image_rows.size());
  }
  if (has_audio) {
    scatter(embed_audio(host_ops, cfg_, w_.audio_projection, mm->input_features), audio_rows, "audio");
  } else {
    G4_CHECK(audio_rows.empty(), "input has {} audio placeholder tokens but no input_features", audio_rows.size());
  }

  if (tape) rec(tape->x_emb, x);

  // --- Per-layer embeddings (E2B/E4B, §8.2): ple[t, l, :] = (norm(proj(x) * H^-0.5) + E_ple[id] * sqrt(P)) / sqrt(2)
  const int64_t P = tc.hidden_size_per_layer_input, L = tc.num_hidden_layers;
  Tensor ple, ple_host;
  if (P > 0) {
    std::vector<int64_t> ple_ids = lookup_ids;
    for (auto& id : ple_ids)
      if (id < 0 || id >= tc.vocab_size_per_layer_input) id = tc.pad_token_id;
    Tensor tok = ops.alloc(DType::F32, {T, L * P});
    ops.embedding(W.embed_tokens_per_layer, ple_ids,
                  rounded_scale(std::sqrt(double(P)), W.embed_tokens_per_layer.dtype), tok);
    ple = ops.alloc(DType::F32, {T, L * P});
    ops.linear(x, W.per_layer_model_projection, ple);
    ops.scale(ple, float(1.0 / std::sqrt(double(H))));
    if (tape) rec(tape->ple_lin, ple);
    Tensor pv = ple.reshape({T * L, P});
    ops.rmsnorm(pv, &W.per_layer_projection_norm, eps, pv);
    ops.add(ple, tok, ple);
    ops.scale(ple, float(1.0 / std::sqrt(2.0)));
    if (tape) rec(tape->ple, ple);
    ple_host = ops.to_host(ple);
  }

  // RoPE tables per layer type.
  const LayerSpec* any_full = nullptr;
  for (auto& s : layers_)
    if (s.type == LayerType::Full) any_full = &s;
  std::vector<float> freq_sliding = rope_inv_freq(tc.rope_sliding, tc.head_dim);
  std::vector<float> freq_full = any_full ? rope_inv_freq(tc.rope_full, any_full->head_dim) : std::vector<float>{};

  // Scratch buffers sized for the widest layer.
  int64_t max_q = 0, max_kv = 0, max_inter = 0;
  for (auto& s : layers_) {
    max_q = std::max<int64_t>(max_q, int64_t(tc.num_attention_heads) * s.head_dim);
    max_kv = std::max<int64_t>(max_kv, int64_t(s.num_kv_heads) * s.head_dim);
    max_inter = std::max<int64_t>(max_inter, s.intermediate_size);
  }
  if (tc.enable_moe_block) max_inter = std::max<int64_t>(max_inter, 2 * int64_t(tc.moe_intermediate_size));
  Tensor hbuf = ops.alloc(DType::F32, {T, H}), h2buf = ops.alloc(DType::F32, {T, H});
  // The normed inputs of the q/k/v and feed-forward matmuls: bf16 where the backend's GEMMs read bf16 (a
  // prefill on the GPU), else F32 sharing hbuf.
  const DType norm_dt = ops.matmul_input_dtype(T);
  Tensor nbuf = norm_dt == DType::F32 ? hbuf : ops.alloc(norm_dt, {T, H});
  // The o and down projections' outputs in a dense layer's tail (ops.layer_tail below): bf16 with bf16 matmul
  // inputs, as a bf16 model rounds every linear output (HF), and half the bytes for the residual add that reads
  // them; else F32 (hbuf).
  const bool any_tail = !tape && P == 0 && !layers_.empty() &&
                        std::any_of(layers_.begin(), layers_.end() - 1, [](const LayerSpec& s) { return !s.has_moe; });
  Tensor rbuf = norm_dt == DType::F32 || !any_tail ? hbuf : ops.alloc(norm_dt, {T, H});
  // q, k, v and the attention output: bf16 where the backend's attention reads bf16 (a GPU prefill), except with
  // KV-shared layers (their q takes rmsnorm_rope, an F32 op).
  int64_t min_rows = T;
  for (const Segment& g : segs) min_rows = std::min(min_rows, g.T);
  const bool shares_kv = std::any_of(layers_.begin(), layers_.end(), [](const LayerSpec& s) { return s.kv_source >= 0; });
  const DType qkv_dt = shares_kv || tape ? DType::F32 : ops.qkv_dtype(min_rows);
  Tensor qbuf = ops.alloc(qkv_dt, {T * max_q}), obuf = ops.alloc(qkv_dt, {T * max_q});
  Tensor kbuf = ops.alloc(qkv_dt, {T * max_kv}), vbuf = ops.alloc(qkv_dt, {T * max_kv});
  Tensor gbuf = ops.alloc(DType::F32, {T * max_inter}), ubuf = ops.alloc(DType::F32, {T * max_inter});

  const size_t B = segs.size();
  std::vector<std::vector<KeySet>> keysets(layers_.size(), std::vector<KeySet>(B));
  std::vector<KeyPositions> full_keys(B), ring_keys(B);
  // A layer's gathered keys are kept past its own attention only when a KV-shared layer reads them (§6.2);
  // otherwise they are dropped at once (a 4096-token chunk's window copies are ~84 MB per 12B sliding layer).
  std::vector<bool> shared_later(layers_.size(), false);
  for (auto& s : layers_)
    if (s.kv_source >= 0) shared_later[s.kv_source] = true;
  bool a_ready = false;  // nbuf already holds rmsnorm(x, input_layernorm) of the current layer
  // The previous layer's closing add + norm, when layer_tail left it to this layer's q/k/v projections (a_ready is
  // then set too: linear_qkv_deferred, or finish_deferred, fills nbuf).
  Ops::DeferredNorm deferred;
  const int nq = tc.num_attention_heads;

  // A decode step (one new row per sequence) appends every sequence's K/V row in the same op as the norms.
  const bool row_appends = std::all_of(segs.begin(), segs.end(), [](const Segment& g) { return g.T == 1; });
  for (size_t li = 0; li < layers_.size(); ++li) {
    const LayerSpec& s = layers_[li];
    const LayerWeights& lw = W.layers[li];
    const int hd = s.head_dim, nkv = s.num_kv_heads;
    const int64_t qd = int64_t(nq) * hd, kvd = int64_t(nkv) * hd;
    const std::vector<float>& freq = s.type == LayerType::Full ? freq_full : freq_sliding;

    LayerTape* lt = tape ? &tape->layers[li] : nullptr;
    // --- Attention block (§2.4.2, §2.4.3)
    if (lt) rec(lt->x0, x);
    Tensor a = nbuf;
    if (s.kv_source >= 0) ops.finish_deferred(deferred);  // its q projection alone (below) takes no deferred norm
    if (!a_ready) ops.rmsnorm(x, &lw.input_layernorm, eps, a);  // else the previous layer's fused add computed it
    a_ready = false;
    if (lt) rec(lt->a, a);
    Tensor q = rows_view(qbuf, T, qd);
    Tensor k = rows_view(kbuf, T, kvd), v = rows_view(vbuf, T, kvd);
    std::vector<Ops::KVRow> kv_rows;
    if (s.kv_source < 0) {
      // q, k, v projections (K = V layers: V from the raw K projection), per-head norms, RoPE on q and k.
      if (deferred.pending)
        ops.linear_qkv_deferred(deferred, lw.q_proj, lw.k_proj, s.k_eq_v ? nullptr : &lw.v_proj, q, k,
                                s.k_eq_v ? nullptr : &v);
      else
        ops.linear_qkv(a, lw.q_proj, lw.k_proj, s.k_eq_v ? nullptr : &lw.v_proj, q, k, s.k_eq_v ? nullptr : &v);
      if (lt) {
        rec(lt->q_lin, q), rec(lt->k_lin, k);
        if (!s.k_eq_v) rec(lt->v_lin, v);
      }
      if (row_appends)
        for (size_t b = 0; b < B; ++b) {
          KVCache::RowSlot slot = segs[b].cache->append_slot(int(li), segs[b].pos0);
          const int64_t r = segs[b].row0;
          kv_rows.push_back({k.slice_rows(r, r + 1), v.slice_rows(r, r + 1), slot.k, slot.v, slot.row});
        }
      ops.qkv_norm_rope(q, k, v, s.k_eq_v, lw.q_norm, lw.k_norm, eps, nq, nkv, hd, positions.data(), freq,
                        row_appends ? &kv_rows : nullptr);
      if (lt) rec(lt->q, q), rec(lt->k, k), rec(lt->v, v);
    } else {
      ops.linear(a, lw.q_proj, q);
      if (lt) rec(lt->q_lin, q);
      ops.rmsnorm_rope(q, lw.q_norm, eps, nq, hd, positions.data(), freq);
      if (lt) rec(lt->q, q);
    }
    Tensor o = rows_view(obuf, T, qd);
    std::vector<Ops::AttnSegment> attn(B);
    auto append = [&](KVCache& cache, int64_t pos0, const Tensor& kb, const Tensor& vb) {
      if (!row_appends) cache.append(int(li), pos0, kb, vb);  // else qkv_norm_rope stored the row
    };
    for (size_t b = 0; b < B; ++b) {
      const Segment& g = segs[b];
      KVCache& cache = *g.cache;
      const int64_t Tb = g.T, pos0 = g.pos0;
      const int64_t* seg_pos = positions.data() + g.row0;
      const KeySet* ks = nullptr;
      if (s.kv_source >= 0) {
        ks = &keysets[s.kv_source][b];  // KV-shared layer (§6.2): the source layer's keys and values
      } else {
        const Tensor kb = k.slice_rows(g.row0, g.row0 + Tb), vb = v.slice_rows(g.row0, g.row0 + Tb);
        KeySet& set = keysets[li][b];
        if (!cache.is_ring(int(li))) {
          append(cache, pos0, kb, vb);
          set.k = cache.k_all(int(li));
          set.v = cache.v_all(int(li));
          KeyPositions& kp = full_keys[b];
          const int64_t n = cache.held(int(li));
          if (kp.n != n) {  // positions 0 .. n-1
            kp.pos = std::make_shared<std::vector<int64_t>>(n);
            std::iota(kp.pos->begin(), kp.pos->end(), int64_t(0));
            kp.n = n, kp.run = {n, 0, 0};
          }
          set.pos = kp.pos, set.run = kp.run, set.is_run = true;
        } else if (Tb == 1) {
          // Decode step: the new key evicts the one position the query can no longer see, so append first
          // and attend over the ring's slots in place (no gather copy).
          append(cache, pos0, kb, vb);
          set.k = cache.ring_k(int(li));
          set.v = cache.ring_v(int(li));
          KeyPositions& kp = ring_keys[b];
          const int64_t n = cache.held(int(li)), start = cache.start_position(int(li));
          if (kp.n != n || kp.start != start) {
            kp.pos = std::make_shared<std::vector<int64_t>>();
            cache.slot_positions(int(li), *kp.pos);
            // Slot i holds start + (i - r + n) % n: r = start % capacity once the ring is full, else 0.
            kp.n = n, kp.start = start, kp.run = {n, start, n == cache.capacity(int(li)) ? start % n : 0};
          }
          set.pos = kp.pos, set.run = kp.run, set.is_run = true;
        } else if (cache.held(int(li)) == 0 && kb.dtype == cache.dtype() && !shared_later[li]) {
          // Nothing held yet (a prompt's first chunk): the keys are this call's own rows, read where they are
          // (the copies below cost two [T, kv] round trips a sliding layer).
          set.k = kb;
          set.v = vb;
          set.pos = std::make_shared<std::vector<int64_t>>(seg_pos, seg_pos + Tb);
          cache.append(int(li), pos0, kb, vb);
        } else {
          // The held window (oldest first) followed by this call's keys, assembled contiguously.
          const int64_t n = cache.held(int(li));
          // In the cache's dtype: a bf16 cache gives the attention bf16 keys and values, as its other paths do.
          set.k = ops.alloc(cache.dtype(), {n + Tb, kvd});
          set.v = ops.alloc(cache.dtype(), {n + Tb, kvd});
          auto pos = std::make_shared<std::vector<int64_t>>();
          cache.gather(int(li), set.k, set.v, *pos);
          Tensor kd = set.k.slice_rows(n, n + Tb), vd = set.v.slice_rows(n, n + Tb);
          ops.copy(kb, kd);
          ops.copy(vb, vd);
          pos->insert(pos->end(), seg_pos, seg_pos + Tb);
          set.pos = std::move(pos);
          cache.append(int(li), pos0, kb, vb);
        }
        ks = &set;
      }
      Ops::AttnSegment& a = attn[b];
      a.row0 = g.row0, a.T = Tb, a.k = &ks->k, a.v = &ks->v;
      a.mask.q_pos = seg_pos;
      a.mask.k_pos = ks->pos->data();
      a.mask.k_run = ks->is_run ? ks->run.data() : nullptr;
      a.mask.window = s.type == LayerType::Sliding ? tc.sliding_window : 0;
    }
    // Every sequence attends to its own keys; scale 1.0 (§2.4.2).
    if (B == 1) ops.attention(q, *attn[0].k, *attn[0].v, nq, nkv, hd, 1.0f, attn[0].mask, o);
    else ops.attention_segments(q, attn, nq, nkv, hd, 1.0f, o);
    if (s.kv_source < 0 && !shared_later[li])
      for (size_t b = 0; b < B; ++b) keysets[li][b] = KeySet{};
    if (lt) rec(lt->o, o);
    if (!lt && !s.has_moe && P == 0 && li + 1 < layers_.size()) {
      // A dense layer with another after it, outside training: the tail as one op (a backend may fuse it),
      // ending with the next layer's input norm in nbuf, or with that add + norm deferred into the next layer's
      // q/k/v projections.
      const int64_t I = s.intermediate_size;
      Tensor attn_out = rbuf, m = nbuf, f = norm_dt == DType::F32 ? h2buf : rbuf, next_a = nbuf;
      Tensor g = rows_view(gbuf, T, I), u = rows_view(ubuf, T, I);
      ops.layer_tail(x, o, lw.o_proj, lw.post_attention_layernorm, lw.pre_feedforward_layernorm, lw.gate_proj,
                     lw.up_proj, lw.down_proj, lw.post_feedforward_layernorm, lw.layer_scalar,
                     W.layers[li + 1].input_layernorm, eps, attn_out, m, g, u, f, next_a, &deferred);
      a_ready = true;
      continue;
    }
    Tensor attn_out = hbuf;
    ops.linear(o, lw.o_proj, attn_out);
    if (lt) rec(lt->p, attn_out);
    // --- Feed-forward block (§2.4.4; MoE §8.3), its pre-norm fused into the residual add
    Tensor m = nbuf;
    ops.add_rmsnorm_norm(x, attn_out, lw.post_attention_layernorm, eps, nullptr, lw.pre_feedforward_layernorm, m);
    if (lt) rec(lt->x1, x);
    if (lt) rec(lt->m, m);
    const int64_t I = s.intermediate_size;
    Tensor g = rows_view(gbuf, T, I), u = rows_view(ubuf, T, I);
    Tensor f = h2buf;
    if (lt) {  // training records the pre-activation projections
      ops.linear(m, lw.gate_proj, g);
      ops.linear(m, lw.up_proj, u);
      rec(lt->g, g), rec(lt->u, u);
      ops.gelu_tanh_mul(g, u, g);
      rec(lt->h, g);
      ops.linear(g, lw.down_proj, f);
    } else {
      ops.feed_forward(m, lw.gate_proj, lw.up_proj, lw.down_proj, g, u, f);
    }
    if (lt) rec(lt->f_dense, f);
    if (s.has_moe) {
      ops.rmsnorm(f, &lw.post_feedforward_layernorm_1, eps, f);
      // Routed experts read the post-attention residual. Routing is host code: on a GPU backend the
      // experts run on the CPU with the host weights (correct, not fast).
      Tensor e = on_host ? moe_forward(ops, tc, lw, x)
                         : ops.to_device(moe_forward(host_ops, tc, w_.layers[li], ops.to_host(x)));
      ops.add(f, e, f);
    }
    if (lt) rec(lt->f, f);
    // layer_scalar scales the whole residual stream (§2.4); fused into this add when nothing follows.
    const bool scale_now = P == 0 && !lt;
    if (scale_now && li + 1 < layers_.size()) {  // and the next layer's input norm, into nbuf
      Tensor next_a = nbuf;
      ops.add_rmsnorm_norm(x, f, lw.post_feedforward_layernorm, eps, &lw.layer_scalar,
                           W.layers[li + 1].input_layernorm, next_a);
      a_ready = true;
    } else {
      ops.add_rmsnorm(x, f, lw.post_feedforward_layernorm, eps, scale_now ? &lw.layer_scalar : nullptr);
    }
    if (lt) rec(lt->x2, x);

    // --- Per-layer input (§8.2)
    if (P > 0) {
      Tensor gate = ops.alloc(DType::F32, {T, P});
      ops.linear(x, lw.per_layer_input_gate, gate);
      if (lt) rec(lt->ple_gate_lin, gate);
      ops.gelu_tanh(gate, gate);
      Tensor gate_host = ops.to_host(gate);  // the same tensor on the CPU backend
      float* gp = gate_host.ptr<float>();
      const float* pp = ple_host.ptr<float>();
      for (int64_t t = 0; t < T; ++t)
        for (int64_t i = 0; i < P; ++i) gp[t * P + i] *= pp[(t * L + int64_t(li)) * P + i];
      ops.copy(gate_host, gate);
      Tensor c = hbuf;
      ops.linear(gate, lw.per_layer_projection, c);
      if (lt) rec(lt->ple_c, c);
      ops.rmsnorm(c, &lw.post_per_layer_input_norm, eps, c);
      ops.add(x, c, x);
    }
    if (lt) rec(lt->x3, x);
    if (!scale_now) ops.scale(x, lw.layer_scalar);
  }
  ops.finish_deferred(deferred);  // none is left by the last layer (it takes no layer_tail); for safety
  for (const Segment& g : segs) g.cache->advance(g.T);

  // --- Final norm, tied LM head, softcap (§2.5), in fp32: every row, or each sequence's last row.
  Tensor xs;
  if (all_logits) {
    xs = x;
  } else if (B == 1) {
    xs = x.slice_rows(T - 1, T);
  } else {
    xs = ops.alloc(DType::F32, {int64_t(B), H});
    for (size_t b = 0; b < B; ++b) {
      Tensor dst = xs.slice_rows(int64_t(b), int64_t(b) + 1);
      ops.copy(x.slice_rows(segs[b].row0 + segs[b].T - 1, segs[b].row0 + segs[b].T), dst);
    }
  }
  Tensor xn = ops.alloc(DType::F32, xs.shape);
  ops.rmsnorm(xs, &W.final_norm, eps, xn);
  if (tape) rec(tape->x_final, xs), rec(tape->xn, xn);
  Tensor logits = ops.alloc(DType::F32, {xs.dim(0), V});
  ops.linear(xn, W.lm_head, logits);
  if (tc.final_logit_softcapping > 0) ops.softcap(logits, float(tc.final_logit_softcapping));
  step.end();
  return logits_on_device ? logits : ops.to_host(logits);
}

}  // namespace gemma4
