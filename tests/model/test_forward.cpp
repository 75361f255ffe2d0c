// Forward-pass properties that need no reference: prefill + step-by-step decode equals one full forward
// (every feature: sliding ring cache, K=V, KV sharing, PLE, MoE), and the sliding cache stays bounded.
#include <gtest/gtest.h>

#include <cmath>

#include "generate/generator.h"
#include "model/model.h"
#include "tiny_model.h"

using namespace gemma4;

using test::tiny_config;

namespace {

std::vector<int64_t> some_ids(int n, int vocab) {
  std::vector<int64_t> ids;
  for (int i = 0; i < n; ++i) ids.push_back((i * 37 + 11) % vocab);
  return ids;
}

void expect_prefill_decode_matches_full(const ModelConfig& cfg, DType dt) {
  Model m(cfg, random_weights(cfg, dt, 7));
  auto ids = some_ids(19, int(cfg.text.vocab_size));
  KVCache full_cache = m.new_cache();
  Tensor full = m.forward(ids, full_cache, nullptr, true);

  // Prefill 7 tokens (longer than the window), then one token at a time, then a chunk of 3.
  KVCache c = m.new_cache();
  std::vector<int64_t> p(ids.begin(), ids.begin() + 7);
  Tensor first = m.forward(p, c, nullptr, true);
  std::vector<std::vector<float>> rows;
  for (int64_t t = 0; t < 7; ++t) rows.emplace_back(first.ptr<float>() + t * full.dim(1), first.ptr<float>() + (t + 1) * full.dim(1));
  size_t t = 7;
  for (; t < 16; ++t) {
    Tensor l = m.forward({ids[t]}, c, nullptr, false);
    rows.emplace_back(l.ptr<float>(), l.ptr<float>() + l.dim(1));
  }
  Tensor chunk = m.forward(std::vector<int64_t>(ids.begin() + 16, ids.end()), c, nullptr, true);
  for (int64_t r = 0; r < chunk.dim(0); ++r)
    rows.emplace_back(chunk.ptr<float>() + r * chunk.dim(1), chunk.ptr<float>() + (r + 1) * chunk.dim(1));
  ASSERT_EQ(rows.size(), ids.size());
  float maxdiff = 0;
  for (size_t r = 0; r < rows.size(); ++r)
    for (int64_t v = 0; v < full.dim(1); ++v)
      maxdiff = std::max(maxdiff, std::fabs(rows[r][v] - full.ptr<float>()[r * full.dim(1) + v]));
  EXPECT_LT(maxdiff, 1e-4f);
  // The logits must not be degenerate (else this test proves nothing).
  float spread = 0;
  for (int64_t v = 0; v < full.dim(1); ++v) spread = std::max(spread, std::fabs(full.ptr<float>()[v]));
  EXPECT_GT(spread, 1e-2f);
}

}  // namespace

TEST(Forward, PrefillThenDecodeEqualsFullForward) {
  expect_prefill_decode_matches_full(tiny_config(false, false), DType::F32);
}
TEST(Forward, PrefillThenDecodeEqualsFullForwardPleKvSharing) {
  expect_prefill_decode_matches_full(tiny_config(true, false), DType::F32);
}
TEST(Forward, PrefillThenDecodeEqualsFullForwardMoe) {
  expect_prefill_decode_matches_full(tiny_config(false, true), DType::F32);
}
TEST(Forward, PrefillThenDecodeEqualsFullForwardBf16) {
  expect_prefill_decode_matches_full(tiny_config(false, false), DType::BF16);
}

TEST(Forward, SlidingCacheNeverExceedsWindow) {
  ModelConfig cfg = tiny_config(false, false);
  Model m(cfg, random_weights(cfg, DType::F32, 3));
  KVCache c = m.new_cache();
  const int window = cfg.text.sliding_window;
  auto ids = some_ids(10 * window + 3, int(cfg.text.vocab_size));
  m.forward(std::vector<int64_t>(ids.begin(), ids.begin() + 2 * window + 1), c, nullptr, false);
  for (size_t t = 2 * window + 1; t < ids.size(); ++t) {
    m.forward({ids[t]}, c, nullptr, false);
    for (int l = 0; l < cfg.text.num_hidden_layers; ++l) {
      if (cfg.text.layer_types[l] == LayerType::Sliding) {
        ASSERT_LE(c.held(l), window);
        ASSERT_EQ(c.capacity(l), window);
      } else {
        ASSERT_EQ(c.held(l), int64_t(t + 1));
      }
    }
  }
  EXPECT_EQ(c.length(), int64_t(ids.size()));
}

TEST(Forward, RejectsIdOutsideVocabulary) {
  ModelConfig cfg = tiny_config(false, false);
  Model m(cfg, random_weights(cfg, DType::F32, 3));
  KVCache c = m.new_cache();
  EXPECT_THROW(m.forward({1, 97}, c, nullptr, true), Error);
}

TEST(Generate, GreedyIsDeterministicAndStopsAtEos) {
  ModelConfig cfg = tiny_config(false, false);
  Model m(cfg, random_weights(cfg, DType::F32, 5));
  GenerateOptions o;
  o.max_new_tokens = 12;
  o.ignore_eos = true;
  auto a = generate(m, {2, 5, 9}, o);
  auto b = generate(m, {2, 5, 9}, o);
  ASSERT_EQ(a.size(), 12u);
  EXPECT_EQ(a, b);
  // Stop at the 4th generated token by declaring it an eos id.
  o.ignore_eos = false;
  o.eos_ids = {a[3]};
  auto c = generate(m, {2, 5, 9}, o);
  size_t first = std::find(a.begin(), a.end(), a[3]) - a.begin();
  EXPECT_EQ(c.size(), first + 1);
  // Suppressing the greedy choice changes the first token.
  GenerateOptions s;
  s.max_new_tokens = 1;
  s.sampling.suppress_tokens = {a[0]};
  EXPECT_NE(generate(m, {2, 5, 9}, s)[0], a[0]);
}

TEST(Generate, SamplingIsSeededAndRespectsTopK) {
  ModelConfig cfg = tiny_config(false, false);
  Model m(cfg, random_weights(cfg, DType::F32, 5));
  GenerateOptions o;
  o.max_new_tokens = 8;
  o.ignore_eos = true;
  o.sampling.temperature = 1.5;
  o.sampling.top_k = 5;
  o.sampling.top_p = 0.9;
  o.sampling.seed = 42;
  auto a = generate(m, {2, 5, 9}, o);
  auto b = generate(m, {2, 5, 9}, o);
  EXPECT_EQ(a, b);
  // top_k = 1 with any temperature is greedy.
  GenerateOptions g;
  g.max_new_tokens = 8;
  g.ignore_eos = true;
  GenerateOptions k1 = o;
  k1.sampling.top_k = 1;
  EXPECT_EQ(generate(m, {2, 5, 9}, k1), generate(m, {2, 5, 9}, g));
}

// ---- batched inference ------------------------------------------------------------------------------
namespace {

// Three sequences at different positions (one mid-window, one past the window, one fresh) and of
// different lengths in one forward equal three separate forwards.
void expect_batch_matches_separate(const ModelConfig& cfg) {
  Model m(cfg, random_weights(cfg, DType::F32, 11));
  const int V = int(cfg.text.vocab_size);
  std::vector<std::vector<int64_t>> prefixes = {some_ids(3, V), some_ids(9, V), {}};
  std::vector<std::vector<int64_t>> chunks = {{5}, {7, 8, 9}, some_ids(6, V)};
  std::vector<KVCache> batch_caches, solo_caches;
  for (size_t b = 0; b < 3; ++b) {
    batch_caches.push_back(m.new_cache());
    solo_caches.push_back(m.new_cache());
    if (!prefixes[b].empty()) {
      m.forward(prefixes[b], batch_caches[b], nullptr, false);
      m.forward(prefixes[b], solo_caches[b], nullptr, false);
    }
  }
  for (bool all : {false, true}) {
    std::vector<KVCache*> ptrs;
    for (auto& c : batch_caches) ptrs.push_back(&c);
    Tensor got = m.forward_batch(chunks, ptrs, nullptr, all);
    int64_t row = 0;
    for (size_t b = 0; b < 3; ++b) {
      Tensor want = m.forward(chunks[b], solo_caches[b], nullptr, all);
      for (int64_t r = 0; r < want.dim(0); ++r, ++row)
        for (int64_t v = 0; v < V; ++v)
          EXPECT_NEAR(got.ptr<float>()[row * V + v], want.ptr<float>()[r * V + v], 2e-5f) << "sequence " << b;
    }
    EXPECT_EQ(row, got.dim(0));
    for (size_t b = 0; b < 3; ++b) EXPECT_EQ(batch_caches[b].length(), solo_caches[b].length());
  }
}

}  // namespace

TEST(ForwardBatch, EqualsSeparateForwards) { expect_batch_matches_separate(tiny_config(false, false)); }
TEST(ForwardBatch, EqualsSeparateForwardsPleKvSharing) { expect_batch_matches_separate(tiny_config(true, false)); }
TEST(ForwardBatch, EqualsSeparateForwardsMoe) { expect_batch_matches_separate(tiny_config(false, true)); }

TEST(ForwardBatch, RejectsMismatchedCachesAndEmptySequences) {
  ModelConfig cfg = tiny_config(false, false);
  Model m(cfg, random_weights(cfg, DType::F32, 3));
  KVCache c = m.new_cache();
  EXPECT_THROW(m.forward_batch({{1}, {2}}, {&c}), Error);
  EXPECT_THROW(m.forward_batch({{}}, {&c}), Error);
}

// Prompts of different lengths decoded together give exactly the tokens of decoding each alone (greedy),
// with per-sequence stopping at eos and at max_new_tokens, and a batch limit smaller than the prompt count.
TEST(GenerateBatch, GreedyEqualsOneAtATimeWithPerSequenceStops) {
  ModelConfig cfg = tiny_config(false, false);
  Model m(cfg, random_weights(cfg, DType::F32, 5));
  const int V = int(cfg.text.vocab_size);
  std::vector<std::vector<int64_t>> prompts;
  for (int n : {1, 4, 9, 2, 6, 3}) prompts.push_back(some_ids(n, V));
  prompts[3][0] = 50;
  GenerateOptions o;
  o.max_new_tokens = 12;
  o.ignore_eos = true;
  // An eos id that some sequence produces early: the first token of prompt 2's free run.
  const int64_t eos = generate(m, prompts[2], o)[2];
  o.ignore_eos = false;
  o.eos_ids = {eos};
  for (int max_batch : {32, 4, 1}) {
    auto got = generate_batch(m, prompts, o, max_batch);
    ASSERT_EQ(got.size(), prompts.size());
    bool some_stopped_early = false;
    for (size_t i = 0; i < prompts.size(); ++i) {
      EXPECT_EQ(got[i], generate(m, prompts[i], o)) << "prompt " << i << " max_batch " << max_batch;
      some_stopped_early |= got[i].size() < 12;
    }
    EXPECT_TRUE(some_stopped_early);
  }
}
