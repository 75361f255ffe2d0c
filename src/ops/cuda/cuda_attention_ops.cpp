// CudaOps (cuda_ops.h): attention (decode kernels, the fused prefill kernel, the cuBLAS and split paths; which
// one runs for which case: README.md), the KV appends at a device-side row, and the q/k/v projections and
// norms of a layer's attention input.
#include "ops/cuda/cuda_ops.h"

namespace gemma4::cuda {

void CudaOps::store_kv(const Tensor& k, const Tensor& v, Tensor& cache_k, Tensor& cache_v, int64_t row) {
  rows_at(k, cache_k, &v, &cache_v, row);
}

void CudaOps::attention(const Tensor& q, const Tensor& k, const Tensor& v, int n_q_heads, int n_kv_heads, int head_dim,
                        float scale, const AttnMask& mask, Tensor& o) {
  auto prof = prof_.scope([&] {
    return fmt::format("attention T{} hd={} S{}", q.numel() / (int64_t(n_q_heads) * head_dim) >= 16 ? ">=16" : "<16",
                       head_dim,
                       k.numel() / (int64_t(n_kv_heads) * head_dim) > 8192
                           ? ">8K"
                           : (k.numel() / (int64_t(n_kv_heads) * head_dim) > 1024 ? ">1K" : "<=1K"));
  });
  on_device(q, "attention q");
  on_device(k, "attention k");
  on_device(v, "attention v");
  on_device(o, "attention output");
  G4_CHECK((k.dtype == DType::F32 || k.dtype == DType::BF16) && v.dtype == k.dtype,
           "attention: keys/values must be F32 or BF16 (a bf16 KV cache), got {} / {}", dtype_name(k.dtype),
           dtype_name(v.dtype));
  G4_CHECK((q.dtype == DType::F32 || q.dtype == DType::BF16) && o.dtype == q.dtype,
           "attention: q and the output must be both F32 or both BF16, got {} / {}", dtype_name(q.dtype),
           dtype_name(o.dtype));
  const bool kv_bf16 = k.dtype == DType::BF16, io_bf16 = q.dtype == DType::BF16;
  G4_CHECK(head_dim > 0 && head_dim <= 512, "attention: head_dim {} (the CUDA kernel supports up to 512)", head_dim);
  G4_CHECK(n_kv_heads > 0 && n_q_heads % n_kv_heads == 0, "attention: {} query heads for {} kv heads", n_q_heads,
           n_kv_heads);
  const int64_t T = q.numel() / (int64_t(n_q_heads) * head_dim);
  const int64_t S = k.numel() / (int64_t(n_kv_heads) * head_dim);
  G4_CHECK(v.numel() == k.numel() && o.numel() == q.numel(), "attention: shapes q {} k {} v {} o {}",
           shape_str(q.shape), shape_str(k.shape), shape_str(v.shape), shape_str(o.shape));
  if (T == 0) return;
  if (S == 0) {
    if (skip("attention (no keys)", {P(o.data), o.nbytes()})) return;
    check(cudaMemsetAsync(o.data, 0, o.nbytes(), stream_), "attention (no keys)");
    return;
  }
  const bool step = steps_->active();
  // BF16 q / o (Ops::qkv_dtype) are read and written as they are by the tensor-core prefill paths below with a
  // bf16 cache; any other path runs on F32 copies.
  auto on_f32_copies = [&] {
    Tensor qf = widened(q), of = alloc(DType::F32, o.shape);
    attention(qf, k, v, n_q_heads, n_kv_heads, head_dim, scale, mask, of);
    copy(of, o);
  };
  if (io_bf16 && T < kChunkedMinQueries) return on_f32_copies();
  // Decode (few queries, no bidirectional blocks): K and V read once per KV head (attention_decode).
  const AttnSegment one{0, T, &k, &v, mask};
  if (T < kChunkedMinQueries && !mask.q_block && decode_attention(q, {one}, n_q_heads, n_kv_heads, head_dim, scale, o))
    return;
#ifdef GEMMA4_HAS_CUBLAS
  // Which prefill path (below): the wgmma kernels (flash_wgmma.cu) where they apply (the 12B's layers on
  // Hopper: 227 us / 1.12 ms a sliding / full layer at 4096 tokens); else the fused mma.sync kernel
  // (flash_attention.cu) for head_dim 256, and for 512 when the chunked cuBLAS path cannot take it
  // (bidirectional blocks, keys out of order). At 512 that kernel computes Q K^T once per half of the output
  // dims; on the 12B's full layers (4096 tokens, H200) it took 2.7 ms a layer against 1.9 ms for the cuBLAS
  // path. GEMMA4_CUDA_FLASH=0: neither fused kernel.
  const bool tc_prefill = precision_ == Precision::BF16 && T >= kChunkedMinQueries;
  const bool consecutive = keys_consecutive(mask.k_pos, S);
  const bool wgmma = tc_prefill && flash_ && flash_wgmma_takes(n_q_heads, n_kv_heads, head_dim, io_bf16, kv_bf16,
                                                              consecutive, mask.q_block != nullptr);
  const bool cublas_takes_it = head_dim == 512 && !mask.q_block && consecutive && !wgmma;
  const bool flash = tc_prefill && flash_ && !cublas_takes_it && flash_attention_supported(n_q_heads, n_kv_heads, head_dim);
  const bool chunked_tc = tc_prefill && !flash && !mask.q_block && consecutive;
#else
  const bool flash = false, chunked_tc = false;
#endif
  if (io_bf16 && !((flash || chunked_tc) && kv_bf16)) return on_f32_copies();
  G4_CHECK(!step, "attention: only decode attention (few queries, no bidirectional blocks) can be recorded");
  Tensor qp = upload(mask.q_pos, T), kp = upload(mask.k_pos, S);
  // The paths below read F32 keys/values, except the tensor-core prefill, which reads a bf16 cache as is.
  Tensor kf = k, vf = v;
  auto widen = [&] {
    if (!kv_bf16 || kf.dtype == DType::F32) return;
    kf = alloc(DType::F32, k.shape), vf = alloc(DType::F32, v.shape);
    copy(k, kf), copy(v, vf);
  };
  Tensor qb, kb;
  if (mask.q_block) {
    qb = upload(mask.q_block, T);
    kb = upload(mask.k_block, S);
  }
#ifdef GEMMA4_HAS_CUBLAS
  if (flash) {
    FlashAttention fa{q.data, k.data, v.data, o.data, T, S, n_q_heads, n_kv_heads, head_dim, scale,
                      qp.ptr<int64_t>(), kp.ptr<int64_t>(), mask.window,
                      mask.q_block ? qb.ptr<int32_t>() : nullptr, mask.q_block ? kb.ptr<int32_t>() : nullptr,
                      consecutive, kv_bf16, io_bf16};
    check_launch(flash_attention(fa, stream_), "attention (flash)");
    return;
  }
  // cuBLAS GEMMs + masked softmax (attention_chunked.cpp): prefill over query chunks (tensor cores in bf16
  // precision) when the keys are at consecutive positions; decode over many keys in any order when the
  // decode kernel does not apply (more than 16 query heads per KV head).
  const bool prefill = T >= kChunkedMinQueries && consecutive;
  const bool long_decode = T < kChunkedMinQueries && S >= kGemmDecodeMinKeys;
  if (!mask.q_block && (prefill || long_decode)) {
    const bool tensor_cores = precision_ == Precision::BF16 && prefill;
    if (!tensor_cores) widen();
    ChunkedAttention c{q.data,         kf.data,           vf.data,           o.data,         T,           S,
                       n_q_heads,      n_kv_heads,        head_dim,          scale,          mask.window, mask.q_pos,
                       mask.k_pos,     qp.ptr<int64_t>(), kp.ptr<int64_t>(), tensor_cores,   consecutive, blas_tc_,
                       blas_};
    c.stream = stream_;
    c.kv_bf16 = kf.dtype == DType::BF16;
    c.io_bf16 = io_bf16;
    attention_chunked(c, [this](size_t n) { return device_block(n); });
    check_launch(0, "attention (cuBLAS)");
    return;
  }
#endif
  // Few queries with bidirectional blocks: split the keys over enough blocks to fill the GPU, then merge.
  widen();
  const int64_t rows = T * n_q_heads;
  // About 8 blocks per SM, at least 16 keys (two per warp) per block.
  int64_t nsplit = (8 * int64_t(prop_.multiProcessorCount) + rows - 1) / rows;
  nsplit = std::max<int64_t>(1, std::min<int64_t>({nsplit, (S + 15) / 16, 128}));
  auto part = device_block(size_t(rows) * nsplit * (2 + head_dim) * sizeof(float));
  float* pm = static_cast<float*>(part.get());
  float* pl = pm + rows * nsplit;
  float* pa = pl + rows * nsplit;
  check_launch(cuda::attention_split(
                   q.ptr<float>(), kf.ptr<float>(), vf.ptr<float>(), T, S, n_q_heads, n_kv_heads, head_dim, scale,
                   qp.ptr<int64_t>(), kp.ptr<int64_t>(), mask.window, mask.q_block ? qb.ptr<int32_t>() : nullptr,
                   mask.q_block ? kb.ptr<int32_t>() : nullptr, int(nsplit), pm, pl, pa, o.ptr<float>(), stream_),
               "attention");
}

void CudaOps::attention_segments(const Tensor& q, const std::vector<AttnSegment>& segs, int n_q_heads, int n_kv_heads,
                                 int head_dim, float scale, Tensor& o) {
  auto prof = prof_.scope([&] { return fmt::format("attention_segments x{}", segs.size()); });
  if (q.dtype == DType::BF16 && o.dtype == DType::BF16) {  // several sequences' prefill: each through attention()
    Tensor qf = widened(q), of = alloc(DType::F32, o.shape);
    attention_segments(qf, segs, n_q_heads, n_kv_heads, head_dim, scale, of);
    copy(of, o);
    return;
  }
  f32_on_device(q, "attention q");
  f32_on_device(o, "attention output");
  if (decode_attention(q, segs, n_q_heads, n_kv_heads, head_dim, scale, o)) return;
  Ops::attention_segments(q, segs, n_q_heads, n_kv_heads, head_dim, scale, o);  // one launch set per sequence
}

void CudaOps::store_kv_rows(const std::vector<KVRow>& rows) {
  auto prof = prof_.scope([&] { return fmt::format("store_kv_rows x{}", rows.size()); });
  if (rows.empty()) return;
  const int64_t width = rows[0].k.numel();
  const DType dst_dt = rows[0].cache_k->dtype;
  bool ok = dst_dt == DType::F32 || dst_dt == DType::BF16;
  std::vector<int64_t> table;
  for (const KVRow& r : rows) {
    ok = ok && r.k.dtype == DType::F32 && r.v.dtype == DType::F32 && r.k.numel() == width && r.v.numel() == width &&
         r.k.device == Device::CUDA && r.v.device == Device::CUDA && r.cache_k->device == Device::CUDA &&
         r.cache_k->dtype == dst_dt && r.cache_v->dtype == dst_dt && r.cache_k->ndim() == 2 &&
         r.cache_k->dim(1) == width && r.cache_v->shape == r.cache_k->shape && r.row >= 0 && r.row < r.cache_k->dim(0);
    table.insert(table.end(),
                 {int64_t(reinterpret_cast<uintptr_t>(r.k.data)), int64_t(reinterpret_cast<uintptr_t>(r.v.data)),
                  int64_t(reinterpret_cast<uintptr_t>(r.cache_k->data)),
                  int64_t(reinterpret_cast<uintptr_t>(r.cache_v->data)), r.row});
  }
  if (!ok) return Ops::store_kv_rows(rows);  // one store_kv per row
  Tensor dtable = upload(table.data(), int64_t(table.size()));
  if (skip("store_kv_rows", {uint64_t(rows.size()), uint64_t(width), uint64_t(dst_dt == DType::BF16)})) return;
  check_launch(cuda::store_kv_rows(dtable.ptr<int64_t>(), int64_t(rows.size()), width, dst_dt == DType::BF16, stream_),
               "store_kv_rows");
}

void CudaOps::linear_qkv(const Tensor& x, const Tensor& wq, const Tensor& wk, const Tensor* wv, Tensor& q, Tensor& k,
                         Tensor* v) {
  const int64_t K = x.dim(-1), M = x.numel() / std::max<int64_t>(1, K);
  const Tensor& q16 = gemm_weight(wq);
  const Tensor& k16 = gemm_weight(wk);
  const Tensor* v16 = wv ? &gemm_weight(*wv) : nullptr;
  // BF16 outputs (Ops::qkv_dtype) come from the tensor-core GEMMs below; any other path writes F32 copies.
  const bool out_bf16 = q.dtype == DType::BF16;
  G4_CHECK(k.dtype == q.dtype && (!v || v->dtype == q.dtype), "linear_qkv: q, k, v of different dtypes");
  const bool lt = x.device == Device::CUDA && (x.dtype == DType::F32 || x.dtype == DType::BF16) &&
                  lt_gemm_ok(M, K, {&q16, &k16, v16}) && x.numel() == M * K && q.numel() == M * q16.dim(0) &&
                  k.numel() == M * k16.dim(0) && (!v16 || (v && v->numel() == M * v16->dim(0)));
  if (out_bf16 && !lt) {
    Tensor qf = alloc(DType::F32, q.shape), kf = alloc(DType::F32, k.shape);
    Tensor vf = v ? alloc(DType::F32, v->shape) : Tensor();
    linear_qkv(x, wq, wk, wv, qf, kf, v ? &vf : nullptr);
    copy(qf, q), copy(kf, k);
    if (v) copy(vf, *v);
    return;
  }
  // Prefill rows in bf16 precision: x to bf16 once for the three tensor-core GEMMs.
  if (lt) {
    auto prof = prof_.scope([&] { return fmt::format("linear_qkv M>1 N={}+{}+{} K={}", q16.dim(0), k16.dim(0),
                                                     v16 ? v16->dim(0) : 0, K); });
    on_device(q, "linear_qkv q");
    on_device(k, "linear_qkv k");
    if (v16) on_device(*v, "linear_qkv v");
    std::shared_ptr<void> xb;
    if (x.dtype == DType::F32) xb = device_block(size_t(M) * K * 2);
    if (skip("linear_qkv gemm", {P(x.data), P(q16.data), P(k16.data), P(v16 ? v16->data : nullptr), P(q.data),
                                 P(k.data), P(v16 ? v->data : nullptr), uint64_t(M), uint64_t(K), uint64_t(out_bf16)}))
      return;
    if (xb) check_launch(f32_to_bf16(x.ptr<float>(), xb.get(), M * K, stream_), "linear_qkv: x to bf16");
    const void* xin = xb ? xb.get() : x.data;
    lt_gemm(xin, q16, q.data, out_bf16, M);
    lt_gemm(xin, k16, k.data, out_bf16, M);
    if (v16) lt_gemm(xin, *v16, v->data, out_bf16, M);
    return;
  }
  bool fused = x.device == Device::CUDA && q16.dtype != DType::F32 && k16.dtype == q16.dtype &&
               (!v16 || v16->dtype == q16.dtype) && q16.ndim() == 2 && k16.ndim() == 2 && q16.dim(1) == K &&
               k16.dim(1) == K && (!v16 || (v16->ndim() == 2 && v16->dim(1) == K)) && q.numel() == M * q16.dim(0) &&
               k.numel() == M * k16.dim(0) && (!v16 || v->numel() == M * v16->dim(0));
  fused = fused && gemv_rows_ok(M);
  const int wdt = fused ? wtype(q16.dtype, "linear_qkv") : 0;
  for (const Tensor* w : {&q16, &k16, v16}) fused = fused && (!w || gemv_vec_supported(M, K, x.data, w->data, wdt));
  if (x.dtype == DType::BF16) return linear_qkv(widened(x), wq, wk, wv, q, k, v);
  if (!fused) return Ops::linear_qkv(x, wq, wk, wv, q, k, v);
  auto prof = prof_.scope([&] { return fmt::format("linear_qkv M<=8 K={}", K); });
  f32_on_device(x, "linear_qkv");
  f32_on_device(q, "linear_qkv q");
  f32_on_device(k, "linear_qkv k");
  if (v) f32_on_device(*v, "linear_qkv v");
  if (skip("linear_qkv", {P(x.data), P(q16.data), P(k16.data), P(v16 ? v16->data : nullptr), P(q.data), P(k.data),
                          P(v ? v->data : nullptr), uint64_t(M), uint64_t(K)}))
    return;
  const GemvPart parts[3] = {{q16.data, q16.dim(0), q.ptr<float>()},
                             {k16.data, k16.dim(0), k.ptr<float>()},
                             {v16 ? v16->data : nullptr, v16 ? v16->dim(0) : 0, v ? v->ptr<float>() : nullptr}};
  check_launch(gemv_vec_multi(x.ptr<float>(), M, K, parts, v16 ? 3 : 2, wdt, stream_), "linear_qkv");
}

void CudaOps::qkv_norm_rope(Tensor& q, Tensor& k, Tensor& v, bool v_from_k, const Tensor& wq, const Tensor& wk,
                            float eps, int n_q_heads, int n_kv_heads, int head_dim, const int64_t* pos,
                            const std::vector<float>& inv_freq, const std::vector<KVRow>* append) {
  auto prof = prof_.scope([&] { return std::string(append ? "qkv_norm_rope + KV append" : "qkv_norm_rope"); });
  const int64_t T = q.numel() / (int64_t(n_q_heads) * head_dim);
  if (q.dtype == DType::BF16 && k.dtype == DType::BF16 && v.dtype == DType::BF16 &&
      !qkv_norm_rope_bf16_supported(T, head_dim, append != nullptr)) {  // BF16 q/k/v another kernel cannot take
    Tensor qf = widened(q), kf = widened(k), vf = widened(v);
    qkv_norm_rope(qf, kf, vf, v_from_k, wq, wk, eps, n_q_heads, n_kv_heads, head_dim, pos, inv_freq, append);
    copy(qf, q), copy(kf, k), copy(vf, v);
    return;
  }
  const bool io_bf16 = q.dtype == DType::BF16;
  for (const Tensor* t : {&q, &k, &v}) {
    on_device(*t, "qkv_norm_rope q/k/v");
    G4_CHECK(t->dtype == (io_bf16 ? DType::BF16 : DType::F32), "qkv_norm_rope: q, k, v must be all F32 or all BF16");
  }
  on_device(wq, "qkv_norm_rope q weight");
  on_device(wk, "qkv_norm_rope k weight");
  G4_CHECK(head_dim <= 512 && wq.numel() == head_dim && wk.numel() == head_dim && wq.dtype == wk.dtype &&
               k.numel() == T * n_kv_heads * head_dim && v.numel() == k.numel() && int(inv_freq.size()) >= head_dim / 2,
           "qkv_norm_rope: q {} k {} v {} weights {} {} for {}/{} heads of {}", shape_str(q.shape), shape_str(k.shape),
           shape_str(v.shape), shape_str(wq.shape), shape_str(wk.shape), n_q_heads, n_kv_heads, head_dim);
  // The appends ride along when row t of k/v is append[t]'s row and every cache is an F32 or BF16 table on the
  // device of the same dtype; otherwise they run as store_kv_rows after the norms.
  const int64_t width = int64_t(n_kv_heads) * head_dim;
  bool fused = decode_fusion_ && append && int64_t(append->size()) == T && T > 0;
  const DType cdt = fused ? (*append)[0].cache_k->dtype : DType::F32;
  std::vector<int64_t> table;
  for (int64_t t = 0; fused && t < T; ++t) {
    const KVRow& r = (*append)[size_t(t)];
    fused = r.k.data == static_cast<char*>(k.data) + t * width * 4 &&
            r.v.data == static_cast<char*>(v.data) + t * width * 4 && r.k.numel() == width && r.v.numel() == width &&
            (cdt == DType::F32 || cdt == DType::BF16) && r.cache_k->dtype == cdt && r.cache_v->dtype == cdt &&
            r.cache_k->device == Device::CUDA && r.cache_v->device == Device::CUDA && r.cache_k->ndim() == 2 &&
            r.cache_k->dim(1) == width && r.cache_v->shape == r.cache_k->shape && r.row >= 0 &&
            r.row < r.cache_k->dim(0);
    table.insert(table.end(), {int64_t(reinterpret_cast<uintptr_t>(r.cache_k->data)),
                               int64_t(reinterpret_cast<uintptr_t>(r.cache_v->data)), r.row});
  }
  if (T == 0) return;
  Tensor dpos = upload(pos, T);
  Tensor dfreq = upload_constant(inv_freq.data(), head_dim / 2);
  Tensor dtable = fused ? upload(table.data(), int64_t(table.size())) : Tensor();
  if (!skip("qkv_norm_rope", {P(q.data), P(k.data), P(v.data), P(wq.data), P(wk.data), uint64_t(v_from_k), uint64_t(T),
                              uint64_t(n_q_heads), uint64_t(n_kv_heads), uint64_t(head_dim), F(eps), P(dfreq.data),
                              uint64_t(fused), uint64_t(cdt == DType::BF16), uint64_t(io_bf16)}))
    check_launch(cuda::qkv_norm_rope(q.data, k.data, v.data, io_bf16, v_from_k, wq.data, wk.data,
                                     wtype(wq.dtype, "qkv_norm_rope"), T, n_q_heads, n_kv_heads, head_dim, eps,
                                     dpos.ptr<int64_t>(), dfreq.ptr<float>(),
                                     fused ? dtable.ptr<int64_t>() : nullptr, cdt == DType::BF16, stream_),
                 "qkv_norm_rope");
  if (append && !fused) store_kv_rows(*append);
}

void CudaOps::rows_at(const Tensor& src, Tensor& dst, const Tensor* src2, Tensor* dst2, int64_t row) {
  auto prof = prof_.scope([&] { return std::string(src2 ? "store_kv" : "copy_rows"); });
  const bool dev = src.device == Device::CUDA && dst.device == Device::CUDA &&
                   (!src2 || (src2->device == Device::CUDA && dst2->device == Device::CUDA));
  if (!dev) {
    if (src2) return Ops::store_kv(src, *src2, dst, *dst2, row);
    return Ops::copy_rows(src, dst, row);
  }
  // Same dtype (a copy), or F32 rows into a BF16 table (a bf16 KV cache append).
  const bool to_bf16 = src.dtype == DType::F32 && dst.dtype == DType::BF16;
  auto fits = [&](const Tensor& s, const Tensor& d) {
    return s.ndim() == 2 && d.ndim() == 2 && s.dim(1) == d.dim(1) && (s.dtype == d.dtype || to_bf16) &&
           s.dtype == src.dtype && d.dtype == dst.dtype && row >= 0 && row + s.dim(0) <= d.dim(0);
  };
  G4_CHECK(fits(src, dst) && (!src2 || (fits(*src2, *dst2) && src2->shape == src.shape && dst2->shape == dst.shape)),
           "copy_rows: {} into {} at row {}", shape_str(src.shape), shape_str(dst.shape), row);
  const int64_t row_bytes = dst.nbytes() / std::max<int64_t>(1, dst.dim(0));
  Tensor drow = upload(&row, 1);
  if (skip("rows_at", {P(src.data), P(dst.data), P(src2 ? src2->data : nullptr), P(dst2 ? dst2->data : nullptr),
                       uint64_t(src.dim(0)), uint64_t(row_bytes), uint64_t(to_bf16)}))
    return;
  if (to_bf16) {
    check_launch(store_rows_bf16(src.ptr<float>(), dst.data, src2 ? src2->ptr<float>() : nullptr,
                                 dst2 ? dst2->data : nullptr, drow.ptr<int64_t>(), src.dim(0), src.dim(1), stream_),
                 "store_kv (bf16)");
    return;
  }
  check_launch(copy_rows_at(src.data, dst.data, src2 ? src2->data : nullptr, dst2 ? dst2->data : nullptr,
                            drow.ptr<int64_t>(), src.dim(0), row_bytes, stream_),
               "copy_rows");
}

bool CudaOps::decode_attention(const Tensor& q, const std::vector<AttnSegment>& segs, int n_q_heads, int n_kv_heads,
                               int head_dim, float scale, Tensor& o) {
  if (segs.empty() || !attention_decode_supported(n_q_heads, n_kv_heads, head_dim)) return false;
  const bool step = steps_->active();
  const DType kv_dt = segs[0].k->dtype;
  const int window = segs[0].mask.window;
  std::vector<int64_t> table, q_pos;  // DecodeSeq records (5 x 8 bytes each), query positions by row
  std::vector<int32_t> row_seq;
  int64_t rows = 0, cap = 0;
  bool explicit_keys = false;
  for (size_t b = 0; b < segs.size(); ++b) {
    const AttnSegment& g = segs[b];
    if (g.T >= kChunkedMinQueries || g.mask.q_block || g.k->dtype != kv_dt || g.v->dtype != kv_dt ||
        g.mask.window != window || g.k->device != Device::CUDA || g.v->device != Device::CUDA)
      return false;
    const int64_t S = g.k->numel() / (int64_t(n_kv_heads) * head_dim);
    if (S == 0 || g.row0 != rows) return false;
    int64_t desc[3];
    bool ring = false;
    if (g.mask.k_run) {  // the caller's description; spot-checked against the positions
      std::copy(g.mask.k_run, g.mask.k_run + 3, desc);
      const int64_t r = desc[2];
      ring = desc[0] == S && r >= 0 && r < S && g.mask.k_pos[r] == desc[1] &&
             g.mask.k_pos[(r + S - 1) % S] == desc[1] + S - 1;
      G4_CHECK(ring, "attention: k_run {{{}, {}, {}}} does not describe the {} key positions", desc[0], desc[1],
               desc[2], S);
    } else {
      ring = rotated_run(g.mask.k_pos, S, desc);
    }
    if (!ring) {
      if (step || segs.size() > 1) {
        G4_CHECK(!step, "attention: a recorded decode step needs keys at consecutive positions (a ring)");
        return false;
      }
      explicit_keys = true;
      desc[0] = S, desc[1] = 0, desc[2] = 0;
    }
    table.insert(table.end(), {int64_t(reinterpret_cast<uintptr_t>(g.k->data)),
                               int64_t(reinterpret_cast<uintptr_t>(g.v->data)), desc[0], desc[1], desc[2]});
    for (int64_t t = 0; t < g.T; ++t) q_pos.push_back(g.mask.q_pos[t]), row_seq.push_back(int32_t(b));
    rows += g.T;
    cap = std::max(cap, step ? step_key_capacity(S) : S);
  }
  G4_CHECK(q.numel() == rows * n_q_heads * head_dim && o.numel() == q.numel(),
           "attention: q {} / o {} for {} query rows", shape_str(q.shape), shape_str(o.shape), rows);
  Tensor dtable = upload(table.data(), int64_t(table.size()));
  Tensor dqp = upload(q_pos.data(), rows);
  Tensor drs = segs.size() > 1 ? upload(row_seq.data(), rows) : Tensor{};
  Tensor dkp = explicit_keys ? upload(segs[0].mask.k_pos, cap) : Tensor{};
  // Few query heads per KV head (the sliding layers): decode_attention.cu, 64 keys per block (at most 64
  // splits), merged in the same launch. Otherwise attention_kernels.cu: about four blocks per SM and at
  // least 32 keys per block, within that kernel's shared memory.
  const bool small_g =
      attention_decode_small_g_supported(n_q_heads, n_kv_heads, head_dim) && rows * n_kv_heads <= kSplitCounters;
  const int64_t blocks_per_split = int64_t(n_kv_heads) * rows;
  const int64_t want = std::max<int64_t>(1, (4 * prop_.multiProcessorCount + blocks_per_split - 1) / blocks_per_split);
  // Many heads per KV head with a bf16 cache in bf16 precision (the full layers): tensor cores (bf16 Q and
  // P), 64-key tiles, about one block per SM per query row. F32 precision keeps fp32 arithmetic.
  const bool mqa = !small_g && precision_ == Precision::BF16 &&
                   attention_decode_mqa_supported(n_q_heads, n_kv_heads, head_dim, kv_dt == DType::BF16);
  const int64_t chunk =
      small_g ? std::max<int64_t>(64, (cap + 63) / 64)
      : mqa   ? attention_decode_mqa_chunk(cap, prop_.multiProcessorCount)
              : std::clamp<int64_t>((cap + want - 1) / want, 32, attention_decode_chunk_limit(n_q_heads, n_kv_heads));
  const int64_t nsplit = (cap + chunk - 1) / chunk, qrows = rows * n_q_heads;
  auto part = device_block(size_t(qrows) * nsplit * (2 + head_dim) * sizeof(float));
  if (skip("attention (decode)", {P(q.data), P(o.data), uint64_t(rows), uint64_t(segs.size()), uint64_t(cap),
                                  uint64_t(n_q_heads), uint64_t(n_kv_heads), uint64_t(head_dim), F(scale),
                                  uint64_t(window), uint64_t(explicit_keys), uint64_t(kv_dt == DType::BF16)}))
    return true;
  float* pm = static_cast<float*>(part.get());
  float* pl = pm + qrows * nsplit;
  float* pa = pl + qrows * nsplit;
  if (small_g) {
    check_launch(attention_decode_small_g(q.ptr<float>(), reinterpret_cast<const DecodeSeq*>(dtable.data),
                                          segs.size() > 1 ? drs.ptr<int32_t>() : nullptr, kv_dt == DType::BF16, rows,
                                          cap, n_q_heads, n_kv_heads, head_dim, scale, dqp.ptr<int64_t>(),
                                          explicit_keys ? dkp.ptr<int64_t>() : nullptr, window, int(nsplit), pm, pl, pa,
                                          split_counters(), o.ptr<float>(), stream_),
                 "attention (decode)");
    return true;
  }
  if (mqa) {
    check_launch(attention_decode_mqa(q.ptr<float>(), reinterpret_cast<const DecodeSeq*>(dtable.data),
                                      segs.size() > 1 ? drs.ptr<int32_t>() : nullptr, rows, cap, n_q_heads, n_kv_heads,
                                      head_dim, scale, dqp.ptr<int64_t>(), explicit_keys ? dkp.ptr<int64_t>() : nullptr,
                                      window, chunk, int(nsplit), pm, pl, pa, o.ptr<float>(), stream_),
                 "attention (decode)");
    return true;
  }
  check_launch(
      attention_decode(q.ptr<float>(), reinterpret_cast<const DecodeSeq*>(dtable.data),
                       segs.size() > 1 ? drs.ptr<int32_t>() : nullptr, kv_dt == DType::BF16, rows, cap, n_q_heads,
                       n_kv_heads, head_dim, scale, dqp.ptr<int64_t>(), explicit_keys ? dkp.ptr<int64_t>() : nullptr,
                       window, int(nsplit), pm, pl, pa, o.ptr<float>(), stream_),
      "attention (decode)");
  return true;
}

bool CudaOps::rotated_run(const int64_t* k_pos, int64_t S, int64_t* desc) {
  int64_t r = 0;
  for (int64_t j = 1; j < S; ++j)
    if (k_pos[j] < k_pos[r]) r = j;
  const int64_t k0 = k_pos[r];
  for (int64_t j = r; j < S; ++j)
    if (k_pos[j] != k0 + (j - r)) return false;
  for (int64_t j = 0; j < r; ++j)
    if (k_pos[j] != k0 + (S - r) + j) return false;
  desc[0] = S, desc[1] = k0, desc[2] = r;
  return true;
}

}  // namespace gemma4::cuda
