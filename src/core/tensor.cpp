#include "core/tensor.h"

#include <cstdlib>
#include <cstring>

namespace gemma4 {

std::string shape_str(const Shape& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (auto d : s) n *= d;
  return n;
}

Tensor Tensor::empty(DType dt, Shape shape) {
  for (auto d : shape) G4_CHECK(d >= 0, "negative dimension in shape {}", shape_str(shape));
  Tensor t;
  t.dtype = dt;
  t.shape = std::move(shape);
  size_t bytes = (t.nbytes() + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, bytes ? bytes : 64);
  G4_CHECK(p != nullptr, "out of memory allocating {} bytes", bytes);
  t.owner = std::shared_ptr<void>(p, [](void* q) { std::free(q); });
  t.data = p;
  return t;
}

Tensor Tensor::zeros(DType dt, Shape shape) {
  Tensor t = empty(dt, std::move(shape));
  std::memset(t.data, 0, t.nbytes());
  return t;
}

Tensor Tensor::from_f32(const std::vector<float>& v, Shape shape) {
  G4_CHECK(int64_t(v.size()) == shape_numel(shape), "from_f32: {} values for shape {}", v.size(), shape_str(shape));
  Tensor t = empty(DType::F32, std::move(shape));
  std::memcpy(t.data, v.data(), v.size() * 4);
  return t;
}

Tensor Tensor::from_i64(const std::vector<int64_t>& v, Shape shape) {
  G4_CHECK(int64_t(v.size()) == shape_numel(shape), "from_i64: {} values for shape {}", v.size(), shape_str(shape));
  Tensor t = empty(DType::I64, std::move(shape));
  std::memcpy(t.data, v.data(), v.size() * 8);
  return t;
}

Tensor Tensor::reshape(Shape s) const {
  G4_CHECK(shape_numel(s) == numel(), "reshape {} -> {}: element count differs", shape_str(shape), shape_str(s));
  Tensor t = *this;
  t.shape = std::move(s);
  return t;
}

Tensor Tensor::slice_rows(int64_t r0, int64_t r1) const {
  G4_CHECK(!shape.empty() && r0 >= 0 && r0 <= r1 && r1 <= shape[0], "slice_rows [{}, {}) of {}", r0, r1, shape_str(shape));
  Tensor t = *this;
  int64_t row = shape[0] ? numel() / shape[0] : 0;
  t.shape[0] = r1 - r0;
  t.data = static_cast<char*>(data) + size_t(r0 * row) * dtype_size(dtype);
  return t;
}

std::vector<float> Tensor::f32_vector() const {
  G4_CHECK(device == Device::CPU, "f32_vector needs a CPU tensor");
  G4_CHECK(data != nullptr || numel() == 0, "f32_vector of an undefined tensor");
  int64_t n = numel();
  std::vector<float> out(n);
  switch (dtype) {
    case DType::F32: std::memcpy(out.data(), data, n * 4); break;
    case DType::BF16: for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_f32(ptr<uint16_t>()[i]); break;
    case DType::F16: for (int64_t i = 0; i < n; ++i) out[i] = f16_to_f32(ptr<uint16_t>()[i]); break;
    case DType::F64: for (int64_t i = 0; i < n; ++i) out[i] = float(ptr<double>()[i]); break;
    case DType::I64: for (int64_t i = 0; i < n; ++i) out[i] = float(ptr<int64_t>()[i]); break;
    case DType::I32: for (int64_t i = 0; i < n; ++i) out[i] = float(ptr<int32_t>()[i]); break;
    case DType::U8:
    case DType::BOOL: for (int64_t i = 0; i < n; ++i) out[i] = float(ptr<uint8_t>()[i]); break;
  }
  return out;
}

std::vector<int64_t> Tensor::i64_vector() const {
  G4_CHECK(device == Device::CPU, "i64_vector needs a CPU tensor");
  G4_CHECK(data != nullptr || numel() == 0, "i64_vector of an undefined tensor");
  int64_t n = numel();
  std::vector<int64_t> out(n);
  switch (dtype) {
    case DType::I64: std::memcpy(out.data(), data, n * 8); break;
    case DType::I32: for (int64_t i = 0; i < n; ++i) out[i] = ptr<int32_t>()[i]; break;
    case DType::U8:
    case DType::BOOL: for (int64_t i = 0; i < n; ++i) out[i] = ptr<uint8_t>()[i]; break;
    default: throw Error("expected an integer tensor, got {}", dtype_name(dtype));
  }
  return out;
}

Tensor Tensor::to_f32() const {
  if (!data) return Tensor{};  // undefined stays undefined
  std::vector<float> v = f32_vector();
  return from_f32(v, shape);
}

Tensor Tensor::to(DType dt) const {
  if (!data) return Tensor{};
  if (dt == DType::F32) return to_f32();
  std::vector<float> v = f32_vector();
  Tensor t = empty(dt, shape);
  uint16_t* p = t.ptr<uint16_t>();
  if (dt == DType::BF16) {
    for (size_t i = 0; i < v.size(); ++i) p[i] = f32_to_bf16(v[i]);
  } else if (dt == DType::F16) {
    for (size_t i = 0; i < v.size(); ++i) p[i] = f32_to_f16(v[i]);
  } else {
    throw Error("Tensor::to: unsupported target dtype {}", dtype_name(dt));
  }
  return t;
}

}  // namespace gemma4
