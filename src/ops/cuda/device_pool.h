// A caching allocator for device memory. cudaMalloc/cudaFree synchronise the device and cost tens of
// microseconds, far more than a decode step's small kernels, so freed blocks are kept and handed out again.
// All work runs in order on one stream, so a block freed by one op can be reused by the next one at once:
// the stream orders the old reader before the new writer. Sizes are rounded (256 B granularity below 1 MiB,
// 1/8-power-of-two steps above) and a request takes the smallest cached block that fits within 1/4 slack.
#pragma once
#include <atomic>
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>

namespace gemma4::cuda {

class DevicePool : public std::enable_shared_from_this<DevicePool> {
 public:
  ~DevicePool();
  // A block of at least `bytes`, released back to this pool when the last owner drops it.
  // Throws gemma4::Error (naming the size) when the device is out of memory even after trimming the cache.
  std::shared_ptr<void> allocate(size_t bytes);
  // Returns every cached (free) block to the driver.
  void trim();
  // Frees cached blocks, largest first, until at most `keep` bytes stay cached.
  void trim_to(size_t keep);
  size_t cached_bytes() const;
  size_t in_use_bytes() const;
  size_t peak_reserved_bytes() const;  // max of (in use + cached) since the last reset_peak()
  void reset_peak();
  int64_t driver_allocs() const { return allocs_; }
  int64_t driver_frees() const { return frees_; }

 private:
  void release(void* p, size_t bytes);
  mutable std::mutex mu_;
  std::multimap<size_t, void*> free_;  // rounded size -> block
  size_t cached_ = 0, in_use_ = 0, peak_ = 0;
  std::atomic<int64_t> allocs_{0}, frees_{0};
};

}  // namespace gemma4::cuda
