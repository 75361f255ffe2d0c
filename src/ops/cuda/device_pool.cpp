#include "ops/cuda/device_pool.h"

#include <cuda_runtime.h>

#include <algorithm>

#include "core/error.h"

namespace gemma4::cuda {

namespace {

constexpr size_t kKeepCached = size_t(256) << 20;

size_t round_size(size_t bytes) {
  if (bytes < 256) return 256;
  if (bytes < (size_t(1) << 20)) return (bytes + 255) / 256 * 256;
  size_t p = size_t(1) << (63 - __builtin_clzll(bytes));  // highest power of two <= bytes
  size_t step = p / 8;
  return (bytes + step - 1) / step * step;
}

}  // namespace

DevicePool::~DevicePool() { trim(); }

std::shared_ptr<void> DevicePool::allocate(size_t bytes) {
  const size_t size = round_size(bytes);
  void* p = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = free_.lower_bound(size);
    if (it != free_.end() && it->first <= size + size / 4) {
      p = it->second;
      const size_t got = it->first;
      free_.erase(it);
      cached_ -= got;
      in_use_ += got;
      auto self = shared_from_this();
      return std::shared_ptr<void>(p, [self, got](void* q) { self->release(q, got); });
    }
  }
  // A miss while much memory sits cached (sizes that stopped recurring: a growing context's scratch) gives
  // that memory back first, so the cache never holds more than a small fraction on top of live tensors.
  if (cached_bytes() > std::max(kKeepCached, size)) trim();
  cudaError_t e = cudaMalloc(&p, size);
  if (e != cudaSuccess) {
    cudaGetLastError();
    trim();  // give the cache back to the driver and try once more
    e = cudaMalloc(&p, size);
    if (e != cudaSuccess) {
      cudaGetLastError();
      throw Error("CUDA out of memory allocating {} bytes ({} MB in use by tensors): {}", bytes, in_use_bytes() >> 20,
                  cudaGetErrorString(e));
    }
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    in_use_ += size;
    peak_ = std::max(peak_, in_use_ + cached_);
  }
  auto self = shared_from_this();
  return std::shared_ptr<void>(p, [self, size](void* q) { self->release(q, size); });
}

void DevicePool::release(void* p, size_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  free_.emplace(bytes, p);
  cached_ += bytes;
  in_use_ -= bytes;
}

void DevicePool::trim() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [size, p] : free_) cudaFree(p);
  free_.clear();
  cached_ = 0;
}

size_t DevicePool::cached_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cached_;
}

size_t DevicePool::peak_reserved_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return peak_;
}

void DevicePool::reset_peak() {
  std::lock_guard<std::mutex> lock(mu_);
  peak_ = in_use_ + cached_;
}

size_t DevicePool::in_use_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return in_use_;
}

}  // namespace gemma4::cuda
