// Random weights for benchmarks and tests. Each element comes from a counter-based hash of (seed, tensor name,
// index), so the result is the same for any thread count and fast enough (~1 ns/element/thread) to build a 1B
// model in a few seconds.
#include <cmath>

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

// Approximately standard normal: Irwin-Hall sum of four 16-bit uniforms, centred and scaled to unit variance
// (range +-3.46).
inline float approx_normal(uint64_t r) {
  float s = float(r & 0xffff) + float((r >> 16) & 0xffff) + float((r >> 32) & 0xffff) + float(r >> 48);
  return (s * (1.0f / 65536.0f) - 2.0f) * 1.7320508f;
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

template <typename Store>
void fill(Tensor& t, uint64_t key, Init init, Store store) {
  const int64_t n = t.numel();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) store(t, i, init.mean + init.std * approx_normal(splitmix64(key + uint64_t(i))));
}

void fill_random(Tensor& t, uint64_t key, Init init) {
  switch (t.dtype) {
    case DType::F32: fill(t, key, init, [](Tensor& x, int64_t i, float v) { x.ptr<float>()[i] = v; }); break;
    case DType::BF16:
      fill(t, key, init, [](Tensor& x, int64_t i, float v) { x.ptr<uint16_t>()[i] = f32_to_bf16(v); });
      break;
    case DType::F16:
      fill(t, key, init, [](Tensor& x, int64_t i, float v) { x.ptr<uint16_t>()[i] = f32_to_f16(v); });
      break;
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
