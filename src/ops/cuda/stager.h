// Host arrays to the device without making the host wait (cuda_ops.cpp):
// - small ones (positions, ids, sampling parameters) are copied into a pinned ring and sent with an async
//   copy; a region of the ring is rewritten only after the copy that last read it has completed (its event);
// - large ones (checkpoint tensors, often pages of an mmap'ed file) go through two pinned buffers, copied in
//   by all cores piece by piece while the previous piece is sent. (cudaMemcpy straight from pageable memory
//   makes the driver pin the pages itself, which is slow for file mappings.)
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <deque>
#include <vector>

namespace gemma4::cuda {

class Stager {
 public:
  static constexpr size_t kBytes = size_t(32) << 20;  // the small-array ring
  Stager();
  ~Stager();
  Stager(const Stager&) = delete;
  Stager& operator=(const Stager&) = delete;
  // dst (device) = src[0, n) in stream order; large n goes through upload_large.
  void upload(void* dst, const void* src, size_t n, cudaStream_t stream);
  // Returns when the data is on the device.
  void upload_large(void* dst, const void* src, size_t n, cudaStream_t stream);

 private:
  struct Pending {
    size_t a, b;
    cudaEvent_t ev;
  };
  static bool overlaps(const Pending& p, size_t a, size_t b) { return p.a < b && a < p.b; }
  char* buf_ = nullptr;
  size_t cursor_ = 0;
  std::deque<Pending> pending_;
  std::vector<cudaEvent_t> spare_;
  void* big_[2] = {nullptr, nullptr};
  cudaEvent_t big_ev_[2] = {nullptr, nullptr};
};

}  // namespace gemma4::cuda
