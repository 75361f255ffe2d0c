// A contiguous, row-major tensor: dtype + shape + a pointer, with shared ownership of the bytes
// (a heap buffer, an mmap'ed file, or device memory). Views share the owner; no strides.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"

namespace gemma4 {

enum class Device : uint8_t { CPU, CUDA };

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);  // "[3, 4]"
int64_t shape_numel(const Shape& s);

struct Tensor {
  DType dtype = DType::F32;
  Shape shape;
  void* data = nullptr;
  std::shared_ptr<void> owner;  // keeps `data` alive
  Device device = Device::CPU;

  int64_t numel() const { return shape_numel(shape); }
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype); }
  int64_t dim(int i) const { return shape.at(i < 0 ? shape.size() + i : i); }
  int ndim() const { return int(shape.size()); }
  bool defined() const { return data != nullptr || numel() == 0; }

  template <typename T>
  T* ptr() { return static_cast<T*>(data); }
  template <typename T>
  const T* ptr() const { return static_cast<const T*>(data); }

  // Fresh CPU allocation (64-byte aligned). `zeros` also clears it.
  static Tensor empty(DType dt, Shape shape);
  static Tensor zeros(DType dt, Shape shape);
  static Tensor from_f32(const std::vector<float>& v, Shape shape);
  static Tensor from_i64(const std::vector<int64_t>& v, Shape shape);

  // Same bytes, new shape (numel must match).
  Tensor reshape(Shape s) const;
  // Rows [r0, r1) along dim 0, sharing the bytes.
  Tensor slice_rows(int64_t r0, int64_t r1) const;
  // Converted copy (any float dtype -> F32; I32/I64/U8/BOOL -> F32 values).
  Tensor to_f32() const;
  // Converted copy to a float dtype (F32, BF16, F16).
  Tensor to(DType dt) const;
  std::vector<float> f32_vector() const;
  std::vector<int64_t> i64_vector() const;  // I64/I32/U8/BOOL
};

}  // namespace gemma4
