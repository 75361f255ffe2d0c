// The AVX2 row-wise kernels (gelu_tanh_mul_avx2, rmsnorm_avx2; declared in ops/cpu/linear.h) against
// double-precision formulas.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "ops/cpu/linear.h"

namespace gemma4::cpu {
namespace {

double gelu_ref(double x) { return 0.5 * x * (1 + std::tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))); }

TEST(RowwiseAvx2, GeluTanhMul) {
  if (!linear_has_avx2()) GTEST_SKIP() << "no AVX2/FMA/F16C";
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.f, 3.f);
  for (int64_t n : {1, 7, 8, 9, 100, 1003}) {
    std::vector<float> g(n), u(n), o(n), o2(n);
    for (auto& v : g) v = nd(rng);
    for (auto& v : u) v = nd(rng);
    if (n == 100) {  // extremes
      g[0] = 0.f, g[1] = -0.f, g[2] = 1e-20f, g[3] = -1e-20f, g[4] = 50.f, g[5] = -50.f, g[6] = 1e4f, g[7] = -1e4f;
      g[8] = 1e-3f, g[9] = -1e-3f, g[10] = -5.f, g[11] = -9.f;
    }
    gelu_tanh_mul_avx2(g.data(), u.data(), o.data(), n);
    gelu_tanh_mul_avx2(g.data(), nullptr, o2.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      const double r = gelu_ref(g[i]);
      // For x << 0 the result is tiny and inherits the fp32 rounding of the exp argument (~1e-7 relative per
      // unit of |2u|): a relative bound that grows with |x| up to where the result is below 1e-9 |x|.
      const double tol = (1e-6 + 3e-7 * std::fabs(g[i])) * std::fabs(r) + 1e-9 * std::fabs(g[i]) + 1e-37;
      EXPECT_NEAR(o2[i], r, tol) << "x=" << g[i];
      EXPECT_NEAR(o[i], r * u[i], tol * std::fabs(u[i])) << "x=" << g[i];
    }
  }
  // In place.
  std::vector<float> g{0.5f, -1.5f, 2.f, 3.f, -4.f, 0.1f, 7.f, -0.2f, 1.f}, u(9, 2.f);
  std::vector<float> want(9);
  for (int i = 0; i < 9; ++i) want[i] = float(gelu_ref(g[i]) * 2);
  gelu_tanh_mul_avx2(g.data(), u.data(), g.data(), 9);
  for (int i = 0; i < 9; ++i) EXPECT_NEAR(g[i], want[i], 1e-6 * std::fabs(want[i]));
}

TEST(RowwiseAvx2, RmsNorm) {
  if (!linear_has_avx2()) GTEST_SKIP() << "no AVX2/FMA/F16C";
  std::mt19937 rng(4);
  std::normal_distribution<float> nd(0.f, 2.f);
  for (int64_t D : {1, 5, 8, 33, 256, 1536, 1541}) {
    for (DType dt : {DType::F32, DType::BF16, DType::F16}) {
      for (bool with_w : {false, true}) {
        const int64_t rows = 3;
        std::vector<float> x(rows * D), y(rows * D), wf(D);
        std::vector<uint16_t> wh(D);
        for (auto& v : x) v = nd(rng);
        for (int64_t i = 0; i < D; ++i) {
          float v = 1.f + 0.1f * nd(rng);
          wh[i] = dt == DType::BF16 ? f32_to_bf16(v) : f32_to_f16(v);
          wf[i] = dt == DType::F32 ? v : dt == DType::BF16 ? bf16_to_f32(wh[i]) : f16_to_f32(wh[i]);
        }
        const void* w = !with_w ? nullptr : dt == DType::F32 ? static_cast<const void*>(wf.data()) : wh.data();
        rmsnorm_avx2(x.data(), w, dt, rows, D, 1e-6f, y.data());
        for (int64_t r = 0; r < rows; ++r) {
          double ss = 0;
          for (int64_t i = 0; i < D; ++i) ss += double(x[r * D + i]) * x[r * D + i];
          const double inv = 1.0 / std::sqrt(ss / D + 1e-6);
          for (int64_t i = 0; i < D; ++i) {
            const double ref = x[r * D + i] * inv * (with_w ? wf[i] : 1.0);
            ASSERT_NEAR(y[r * D + i], ref, 2e-6 * std::fabs(ref) + 1e-7) << "D=" << D << " " << dtype_name(dt);
          }
        }
        rmsnorm_avx2(x.data(), w, dt, rows, D, 1e-6f, x.data());  // in place
        for (int64_t i = 0; i < rows * D; ++i) ASSERT_EQ(x[i], y[i]);
      }
    }
  }
}

}  // namespace
}  // namespace gemma4::cpu
