// Helpers shared by the io tests: random tensors, raw safetensors bytes, and error-message checks.
#pragma once
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace gemma4::test {

// A CPU tensor of the given dtype and shape filled with random bytes (BOOL gets 0/1).
inline Tensor random_tensor(DType dt, Shape shape, uint32_t seed) {
  Tensor t = Tensor::empty(dt, std::move(shape));
  std::mt19937 rng(seed);
  auto* p = static_cast<unsigned char*>(t.data);
  for (size_t i = 0; i < t.nbytes(); ++i) p[i] = dt == DType::BOOL ? rng() & 1 : rng() & 0xff;
  return t;
}

inline std::string tensor_bytes(const Tensor& t) { return std::string(static_cast<const char*>(t.data), t.nbytes()); }

// 8-byte little-endian length + header + data, with the length given explicitly (to make it lie) or not.
inline std::string raw_safetensors(const std::string& header, const std::string& data,
                                   std::optional<uint64_t> header_len = std::nullopt) {
  uint64_t n = header_len.value_or(header.size());
  std::string out(8, '\0');
  std::memcpy(out.data(), &n, 8);
  return out + header + data;
}

// Runs fn, expects a gemma4::Error whose message contains every one of `parts`.
inline void expect_error(const std::function<void()>& fn, const std::vector<std::string>& parts) {
  try {
    fn();
  } catch (const Error& e) {
    std::string msg = e.what();
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "message: " << msg << "\nmissing: " << p;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "message spans lines: " << msg;
    return;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected gemma4::Error, got another exception: " << e.what();
    return;
  }
  ADD_FAILURE() << "expected gemma4::Error, nothing thrown";
}

}  // namespace gemma4::test
