#include "generate/sampler.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace gemma4 {

Sampler::Sampler(SamplingParams p) : p_(std::move(p)), rng_(p_.seed) {
  G4_CHECK(p_.temperature >= 0, "temperature must be >= 0, got {}", p_.temperature);
  G4_CHECK(p_.top_k >= 0, "top_k must be >= 0, got {}", p_.top_k);
  G4_CHECK(p_.top_p > 0 && p_.top_p <= 1, "top_p must be in (0, 1], got {}", p_.top_p);
}

double Sampler::draw() {
  return p_.temperature == 0.0 ? 0.0 : std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
}

int64_t Sampler::pick(float* logits, int64_t vocab, double r) {
  const SamplingParams& p = p_;
  for (int64_t id : p.suppress_tokens)
    if (id >= 0 && id < vocab) logits[id] = -INFINITY;
  if (p.temperature == 0.0) return std::max_element(logits, logits + vocab) - logits;

  float inv_t = float(1.0 / p.temperature);
  auto& cand = cand_;
  cand.clear();
  cand.reserve(vocab);
  for (int64_t i = 0; i < vocab; ++i)
    if (logits[i] != -INFINITY) cand.push_back({logits[i] * inv_t, i});
  G4_CHECK(!cand.empty(), "every token is suppressed");
  auto by_logit = [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); };
  size_t keep = cand.size();
  if (p.top_k > 0 && size_t(p.top_k) < keep) {
    std::partial_sort(cand.begin(), cand.begin() + p.top_k, cand.end(), by_logit);
    keep = p.top_k;
  } else {
    std::sort(cand.begin(), cand.end(), by_logit);
  }
  cand.resize(keep);
  if (p.top_k > 0) std::sort(cand.begin(), cand.end(), by_logit);
  float mx = cand[0].first;
  double sum = 0;
  std::vector<double> prob(keep);
  for (size_t i = 0; i < keep; ++i) sum += (prob[i] = std::exp(double(cand[i].first - mx)));
  for (auto& q : prob) q /= sum;
  if (p.top_p < 1.0) {  // smallest prefix whose mass reaches top_p (at least one token)
    double c = 0;
    size_t n = 0;
    while (n < keep) {
      c += prob[n++];
      if (c >= p.top_p) break;
    }
    keep = n;
    double s2 = 0;
    for (size_t i = 0; i < keep; ++i) s2 += prob[i];
    for (size_t i = 0; i < keep; ++i) prob[i] /= s2;
  }
  double c = 0;
  for (size_t i = 0; i < keep; ++i) {
    c += prob[i];
    if (r < c) return cand[i].second;
  }
  return cand[keep - 1].second;
}

}  // namespace gemma4
