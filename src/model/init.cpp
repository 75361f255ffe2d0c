// Random weights for benchmarks and tests. Each element comes from a counter-based hash of (seed, tensor name,
// index), so the result is the same for any thread count and fast: the AVX2 fill loop runs at memory speed.
#include <cmath>
#include <cstring>

#include "model/keymap.h"

namespace gemma4 {

namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

// 32-bit integer hash (good avalanche, vectorizes to 8 lanes with AVX2).
inline uint32_t hash32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return x;
}

// Element i of the stream `key`: approximately standard normal, as the Irwin-Hall sum of four 16-bit uniforms
// (two hashes of the counter), centred and scaled to unit variance (range +-3.46).
inline float approx_normal(uint64_t key, int64_t i) {
  uint32_t hi = uint32_t(uint64_t(i) >> 32) * 0x27d4eb2fu;
  uint32_t a = hash32((uint32_t(i) * 0x9E3779B1u) ^ uint32_t(key) ^ hi);
  uint32_t b = hash32((uint32_t(i) * 0x85EBCA77u) ^ uint32_t(key >> 32) ^ hi);
  float s = float(a & 0xffff) + float(a >> 16) + float(b & 0xffff) + float(b >> 16);
  return (s * (1.0f / 65536.0f) - 2.0f) * 1.7320508f;
}

// The fill loops are cloned for AVX2 (picked at run time) and vectorized; they are memory-bound there.
__attribute__((target_clones("avx2", "default"), optimize("O3"))) void fill_f32(float* p, int64_t n, uint64_t key,
                                                                               float mean, float std) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) p[i] = mean + std * approx_normal(key, i);
}

__attribute__((target_clones("avx2", "default"), optimize("O3"))) void fill_bf16(uint16_t* p, int64_t n, uint64_t key,
                                                                                float mean, float std) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    float v = mean + std * approx_normal(key, i);  // finite, so round-to-nearest-even needs no NaN case
    uint32_t u;
    std::memcpy(&u, &v, 4);
    p[i] = uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
  }
}

// What a tensor is, from its HF name: scales (norm weights, layer_scalar, router scales) are drawn around 1 so
// that a forward which ignores them (or uses 1+w) fails its parity test; biases and matrices around 0.
struct Init {
  float mean, std;
};

bool ends_with(const std::string& s, const char* suffix) {
  size_t n = std::char_traits<char>::length(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

Init init_for(const std::string& name) {
  bool scale = ends_with(name, "layer_scalar") || ends_with(name, "router.scale") ||
               ends_with(name, "per_expert_scale") ||
               (ends_with(name, ".weight") && (name.find("norm.") != std::string::npos ||
                                               name.find("layernorm") != std::string::npos ||
                                               name.find("_ln1.") != std::string::npos ||
                                               name.find("_ln2.") != std::string::npos));
  if (scale) return {1.0f, 0.05f};
  return {0.0f, 0.02f};
}

void fill_random(Tensor& t, uint64_t key, Init init) {
  switch (t.dtype) {
    case DType::F32: fill_f32(t.ptr<float>(), t.numel(), key, init.mean, init.std); break;
    case DType::BF16: fill_bf16(t.ptr<uint16_t>(), t.numel(), key, init.mean, init.std); break;
    case DType::F16: {
      Tensor f = Tensor::empty(DType::F32, t.shape);
      fill_f32(f.ptr<float>(), f.numel(), key, init.mean, init.std);
      const float* src = f.ptr<float>();
      uint16_t* dst = t.ptr<uint16_t>();
      for (int64_t i = 0; i < t.numel(); ++i) dst[i] = f32_to_f16(src[i]);
      break;
    }
    default: throw Error("random_weights: dtype {} is not a float dtype", dtype_name(t.dtype));
  }
}

}  // namespace

Weights random_weights(const ModelConfig& cfg, DType dtype, uint64_t seed, const BindOptions& opt) {
  G4_CHECK(dtype == DType::F32 || dtype == DType::BF16 || dtype == DType::F16,
           "random_weights: dtype {} is not a float dtype", dtype_name(dtype));
  Weights w;
  // Names only seed the generator; the unified layout is the one that includes the embedders.
  Layout layout = cfg.is_unified ? Layout::UnifiedConditional : Layout::CausalLM;
  for_each_parameter(cfg, layout, opt, w, [&](const ExpectedTensor& e, Tensor& slot) {
    slot = Tensor::empty(dtype, e.shape);
    fill_random(slot, splitmix64(seed ^ fnv1a(e.name)), init_for(e.name));
  });
  if (cfg.text.tie_word_embeddings) w.lm_head = w.embed_tokens;
  return w;
}

}  // namespace gemma4
