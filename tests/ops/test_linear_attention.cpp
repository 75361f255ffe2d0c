// The AVX2 attention kernel (declared in ops/cpu/linear.h) against a double-precision reference: GQA/MQA,
// causal, sliding window, bidirectional blocks, decode (T=1) against a longer cache, rows with no visible key.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "ops/cpu/linear.h"

namespace gemma4::cpu {
namespace {

struct Case {
  int64_t T, S;
  int hq, hkv, hd, window;
  bool blocks = false;
  int64_t q0 = -1;  // position of the first query; -1: S - T (queries are the last T keys)
};

bool visible(int64_t q, int64_t k, int window, int32_t qb, int32_t kb, bool blocks) {
  bool same = blocks && qb >= 0 && qb == kb;
  return (k <= q || same) && (window <= 0 || k > q - window);
}

void run_case(const Case& c, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  const int64_t qs = int64_t(c.hq) * c.hd, ks = int64_t(c.hkv) * c.hd;
  std::vector<float> q(c.T * qs), k(c.S * ks), v(c.S * ks);
  for (auto& x : q) x = nd(rng);
  for (auto& x : k) x = nd(rng);
  for (auto& x : v) x = nd(rng);
  std::vector<int64_t> qp(c.T), kp(c.S);
  const int64_t q0 = c.q0 >= 0 ? c.q0 : c.S - c.T;
  for (int64_t t = 0; t < c.T; ++t) qp[t] = q0 + t;
  // Keys in a rotated order (as a ring-buffer cache hands them out).
  for (int64_t s = 0; s < c.S; ++s) kp[s] = (s + 3) % c.S;
  std::vector<int32_t> qb(c.T), kb(c.S);
  for (int64_t t = 0; t < c.T; ++t) qb[t] = (qp[t] / 5) % 2 == 0 ? int32_t(qp[t] / 5) : -1;
  for (int64_t s = 0; s < c.S; ++s) kb[s] = (kp[s] / 5) % 2 == 0 ? int32_t(kp[s] / 5) : -1;
  const float scale = 0.7f;
  std::vector<float> o(c.T * qs, std::nanf(""));
  ASSERT_TRUE(attention_avx2(q.data(), k.data(), v.data(), c.T, c.S, c.hq, c.hkv, c.hd, scale, qp.data(), kp.data(),
                             c.window, c.blocks ? qb.data() : nullptr, c.blocks ? kb.data() : nullptr, o.data()));
  const int group = c.hq / c.hkv;
  int bad = 0;
  for (int64_t t = 0; t < c.T; ++t)
    for (int h = 0; h < c.hq; ++h) {
      const int kh = h / group;
      std::vector<double> sc(c.S);
      double mx = -INFINITY;
      for (int64_t s = 0; s < c.S; ++s) {
        if (!visible(qp[t], kp[s], c.window, qb[t], kb[s], c.blocks)) {
          sc[s] = -INFINITY;
          continue;
        }
        double d = 0;
        for (int i = 0; i < c.hd; ++i) d += double(q[t * qs + h * c.hd + i]) * k[s * ks + kh * c.hd + i];
        sc[s] = d * scale;
        mx = std::max(mx, sc[s]);
      }
      double sum = 0;
      for (int64_t s = 0; s < c.S; ++s) sum += sc[s] == -INFINITY ? 0 : std::exp(sc[s] - mx);
      for (int i = 0; i < c.hd && bad < 5; ++i) {
        double ref = 0;
        if (mx != -INFINITY)
          for (int64_t s = 0; s < c.S; ++s)
            if (sc[s] != -INFINITY) ref += std::exp(sc[s] - mx) / sum * v[s * ks + kh * c.hd + i];
        const float got = o[t * qs + h * c.hd + i];
        if (!(std::fabs(got - ref) <= 2e-5 * (1 + std::fabs(ref)))) {
          ++bad;
          ADD_FAILURE() << "T=" << c.T << " S=" << c.S << " hq=" << c.hq << " hkv=" << c.hkv << " hd=" << c.hd
                        << " window=" << c.window << " blocks=" << c.blocks << " at t=" << t << " h=" << h
                        << " i=" << i << ": " << got << " vs " << ref;
        }
      }
    }
}

TEST(AttentionAvx2, MatchesReference) {
  if (!linear_has_avx2()) GTEST_SKIP() << "no AVX2/FMA/F16C";
  const Case cases[] = {
      {1, 1, 1, 1, 8, 0},        {5, 5, 2, 1, 8, 0},      {7, 7, 8, 1, 256, 0},    {1, 40, 8, 1, 256, 0},
      {1, 40, 8, 1, 512, 16},    {13, 13, 4, 2, 24, 4},   {9, 30, 6, 3, 16, 0},    {33, 33, 16, 8, 64, 8},
      {17, 17, 4, 4, 40, 0, true}, {12, 12, 9, 1, 72, 5, true}, {3, 20, 2, 2, 8, 0},
  };
  uint32_t seed = 1;
  for (const Case& c : cases) run_case(c, seed++);
}

// Queries that see no key (positions before every key) give 0.
TEST(AttentionAvx2, NoVisibleKeyGivesZero) {
  if (!linear_has_avx2()) GTEST_SKIP() << "no AVX2/FMA/F16C";
  Case c{2, 6, 2, 1, 16, 0, false, 0};
  // positions of keys are (s+3)%6, query positions 0 and 1 see some keys; use a window of 1 and shift
  run_case(c, 99);
  std::vector<float> q(16), k(16), v(16, 1.f), o(16, 5.f);
  std::vector<int64_t> qp{0}, kp{4};
  ASSERT_TRUE(attention_avx2(q.data(), k.data(), v.data(), 1, 1, 1, 1, 16, 1.f, qp.data(), kp.data(), 0, nullptr,
                             nullptr, o.data()));
  for (float x : o) EXPECT_EQ(x, 0.f);
}

TEST(AttentionAvx2, DeclinesOddHeadDim) {
  if (!linear_has_avx2()) GTEST_SKIP() << "no AVX2/FMA/F16C";
  std::vector<float> q(6), k(6), v(6), o(6, 5.f);
  std::vector<int64_t> p{0};
  EXPECT_FALSE(attention_avx2(q.data(), k.data(), v.data(), 1, 1, 1, 1, 6, 1.f, p.data(), p.data(), 0, nullptr,
                              nullptr, o.data()));
  EXPECT_EQ(o[0], 5.f);
}

}  // namespace
}  // namespace gemma4::cpu
