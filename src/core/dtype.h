// Element types as stored in safetensors, and bf16/f16 <-> f32 conversion.
#pragma once
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace gemma4 {

enum class DType : uint8_t { F32, BF16, F16, I64, I32, U8, BOOL, F64 };

size_t dtype_size(DType t);
// Safetensors spelling: "F32", "BF16", "F16", "I64", "I32", "U8", "BOOL", "F64".
const char* dtype_name(DType t);
std::optional<DType> dtype_from_name(std::string_view s);

inline float bf16_to_f32(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Round to nearest even, as torch does; NaN stays NaN.
inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

inline float round_to_bf16(float f) { return bf16_to_f32(f32_to_bf16(f)); }

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

}  // namespace gemma4
