#include "ops/cuda/device_pool.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <iterator>

#include <cstdlib>

#include "core/error.h"

namespace gemma4::cuda {

namespace {

// Cached (free) memory kept for reuse. A long prefill's per-layer scratch alternates between the sliding and
// the full layers' sizes (a few hundred MB in all at 4096 tokens); a smaller bound made every switch free the
// whole cache, and cudaFree waits for the GPU, which then idled while the host caught up.
// GEMMA4_POOL_KEEP_MB overrides it (for measurements).
const size_t kKeepCached = [] {
  const char* v = std::getenv("GEMMA4_POOL_KEEP_MB");
  return v && std::atoll(v) > 0 ? size_t(std::atoll(v)) << 20 : size_t(1) << 30;
}();

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
  // back the largest cached blocks until the cache and this block fit in kKeepCached, so the cache never holds
  // more than that on top of live tensors.
  if (cached_bytes() + size > kKeepCached) trim_to(kKeepCached > size ? kKeepCached - size : 0);
  cudaError_t e = cudaMalloc(&p, size);
  ++allocs_;
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

void DevicePool::trim_to(size_t keep) {
  std::lock_guard<std::mutex> lock(mu_);
  while (cached_ > keep && !free_.empty()) {
    auto it = std::prev(free_.end());  // the largest
    cudaFree(it->second);
    ++frees_;
    cached_ -= it->first;
    free_.erase(it);
  }
}

void DevicePool::trim() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [size, p] : free_) cudaFree(p), ++frees_;
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
