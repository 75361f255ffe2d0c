// RoPE inverse frequencies per layer type (spec §2.2). Half-split layout: pair (j, j + head_dim/2)
// rotates with inv_freq[j]. "default": 1/theta^(2j/head_dim) for all j. "proportional": only the first
// int(factor * head_dim / 2) pairs rotate, with exponents over the FULL head_dim; the rest get frequency
// exactly 0 (cos = 1, sin = 0).
#pragma once
#include <cmath>
#include <vector>

#include "core/error.h"
#include "model/config.h"

namespace gemma4 {

inline std::vector<float> rope_inv_freq(const RopeParams& p, int head_dim) {
  int half = head_dim / 2;
  std::vector<float> f(half, 0.0f);
  int rotated = half;
  if (p.type == "proportional") {
    rotated = int(p.partial_rotary_factor * head_dim / 2);
  } else if (p.type != "default") {
    throw Error("unsupported rope_type '{}' (supported: default, proportional)", p.type);
  }
  for (int j = 0; j < rotated && j < half; ++j) {
    // torch: 1.0 / (base ** (arange(0, 2r, 2).float() / head_dim)) in fp32
    float expo = float(2 * j) / float(head_dim);
    f[j] = 1.0f / std::pow(float(p.theta), expo);
  }
  return f;
}

}  // namespace gemma4
