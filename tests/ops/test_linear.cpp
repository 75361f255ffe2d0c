// The fast CPU linear kernels (GEMV, GEMM) against the scalar reference, for F32/BF16/F16 weights and
// shapes that are not multiples of the blocking (odd M/N/K, M=1, K=1, bias or not).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "ops/cpu/linear.h"

namespace gemma4::cpu {
namespace {

struct Problem {
  std::vector<float> x, bias;
  std::vector<float> w32;      // F32 weights
  std::vector<uint16_t> w16;   // BF16 or F16 weights
  const void* w = nullptr;
};

Problem make_problem(int64_t M, int64_t K, int64_t N, DType dt, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  Problem p;
  p.x.resize(M * K);
  for (auto& v : p.x) v = nd(rng);
  p.bias.resize(N);
  for (auto& v : p.bias) v = nd(rng);
  if (dt == DType::F32) {
    p.w32.resize(N * K);
    for (auto& v : p.w32) v = nd(rng);
    p.w = p.w32.data();
  } else {
    p.w16.resize(N * K);
    for (auto& v : p.w16) v = dt == DType::BF16 ? f32_to_bf16(nd(rng)) : f32_to_f16(nd(rng));
    p.w = p.w16.data();
  }
  return p;
}

// |y - ref| within fp32 summation-order error: a few ulps of sum |x_k w_k|.
void expect_close(const Problem& p, int64_t M, int64_t K, int64_t N, DType dt, const std::vector<float>& y,
                  const std::vector<float>& ref, const char* what) {
  std::vector<float> wrow(K);
  int bad = 0;
  for (int64_t n = 0; n < N && bad < 5; ++n) {
    for (int64_t k = 0; k < K; ++k)
      wrow[k] = dt == DType::F32 ? p.w32[n * K + k]
                : dt == DType::BF16 ? bf16_to_f32(p.w16[n * K + k]) : f16_to_f32(p.w16[n * K + k]);
    for (int64_t m = 0; m < M && bad < 5; ++m) {
      double mag = std::fabs(p.bias[n]);
      for (int64_t k = 0; k < K; ++k) mag += std::fabs(double(p.x[m * K + k]) * wrow[k]);
      const double tol = 1e-6 * (8.0 + std::sqrt(double(K))) * mag + 1e-30;
      const double err = std::fabs(double(y[m * N + n]) - ref[m * N + n]);
      if (!(err <= tol)) {
        ++bad;
        ADD_FAILURE() << what << " " << dtype_name(dt) << " M=" << M << " K=" << K << " N=" << N << " at (" << m
                      << "," << n << "): " << y[m * N + n] << " vs " << ref[m * N + n] << " (tol " << tol << ")";
      }
    }
  }
}

void check(LinearPath path, int64_t M, int64_t K, int64_t N, DType dt, bool with_bias, uint32_t seed) {
  Problem p = make_problem(M, K, N, dt, seed);
  const float* b = with_bias ? p.bias.data() : nullptr;
  if (!with_bias) std::fill(p.bias.begin(), p.bias.end(), 0.f);
  std::vector<float> ref(M * N), y(M * N, std::nanf(""));
  linear_reference(p.x.data(), M, K, p.w, dt, N, ref.data(), b);
  linear_path(path, p.x.data(), M, K, p.w, dt, N, y.data(), b);
  const char* names[] = {"auto", "scalar", "gemv", "gemm"};
  expect_close(p, M, K, N, dt, y, ref, names[int(path)]);
}

const DType kDtypes[] = {DType::F32, DType::BF16, DType::F16};

TEST(Linear, ReportsPath) {
  RecordProperty("avx2", linear_has_avx2() ? "yes" : "no");
  SUCCEED();
}

TEST(Linear, FixedShapesAllPaths) {
  struct S { int64_t M, K, N; };
  const S shapes[] = {{1, 1, 1},   {1, 1, 37},  {3, 1, 5},    {1, 7, 3},    {1, 8, 8},     {1, 64, 64},
                      {1, 129, 47}, {2, 33, 19}, {3, 100, 9}, {4, 257, 23}, {5, 17, 33},   {6, 256, 16},
                      {7, 300, 41}, {12, 512, 32}, {13, 263, 70}, {31, 515, 129}, {64, 40, 600}, {1, 1000, 1}};
  std::vector<LinearPath> paths{LinearPath::Auto, LinearPath::Scalar};
  if (linear_has_avx2()) {
    paths.push_back(LinearPath::Gemv);
    paths.push_back(LinearPath::Gemm);
  }
  uint32_t seed = 1;
  for (const S& s : shapes)
    for (DType dt : kDtypes)
      for (LinearPath path : paths)
        for (bool bias : {false, true}) check(path, s.M, s.K, s.N, dt, bias, seed++);
}

TEST(Linear, RandomShapes) {
  if (!linear_has_avx2()) GTEST_SKIP() << "no AVX2/FMA/F16C";
  std::mt19937 rng(1234);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  for (int t = 0; t < 60; ++t) {
    const int64_t M = t % 3 == 0 ? pick(1, 8) : pick(1, 40);
    const int64_t K = t % 5 == 0 ? pick(1, 9) : pick(1, 700);
    const int64_t N = pick(1, 300);
    const DType dt = kDtypes[t % 3];
    check(LinearPath::Gemv, M, K, N, dt, t % 2 == 0, 100 + t);
    check(LinearPath::Gemm, M, K, N, dt, t % 2 == 1, 200 + t);
  }
}

// Several K blocks and several N blocks per thread (K > 256, N > 512 per thread), edge tiles in M.
TEST(Linear, LargeGemm) {
  if (!linear_has_avx2()) GTEST_SKIP() << "no AVX2/FMA/F16C";
  check(LinearPath::Gemm, 37, 777, 1100, DType::BF16, true, 7);
  check(LinearPath::Gemm, 20, 520, 1040, DType::F16, false, 8);
  check(LinearPath::Gemv, 1, 2049, 1031, DType::BF16, true, 9);
}

TEST(Linear, ZeroSizes) {
  std::vector<float> x(6, 1.f), w(6, 1.f), b{0.5f, -1.f, 2.f}, y(6, 9.f);
  linear(x.data(), 2, 0, w.data(), DType::F32, 3, y.data(), b.data());
  EXPECT_EQ(y, (std::vector<float>{0.5f, -1.f, 2.f, 0.5f, -1.f, 2.f}));
  linear(x.data(), 0, 3, w.data(), DType::F32, 3, y.data());  // nothing to do
  linear(x.data(), 2, 3, w.data(), DType::F32, 0, y.data());
}

TEST(Linear, RejectsOtherDtypes) {
  std::vector<float> x(4), y(4);
  std::vector<int32_t> w(4);
  EXPECT_ANY_THROW(linear(x.data(), 2, 2, w.data(), DType::I32, 2, y.data()));
}

}  // namespace
}  // namespace gemma4::cpu
