#include "ops/cuda/stager.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "core/error.h"

namespace gemma4::cuda {

namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw Error("CUDA {}: {}", what, cudaGetErrorString(e));
}

}  // namespace

Stager::Stager() { check(cudaMallocHost(&buf_, kBytes), "pinned staging buffer"); }

Stager::~Stager() {
  for (auto& p : pending_) cudaEventDestroy(p.ev);
  for (auto e : spare_) cudaEventDestroy(e);
  cudaFreeHost(buf_);
  for (int i = 0; i < 2; ++i)
    if (big_[i]) cudaFreeHost(big_[i]), cudaEventDestroy(big_ev_[i]);
}

void Stager::upload(void* dst, const void* src, size_t n, cudaStream_t stream) {
  if (n > kBytes / 2) return upload_large(dst, src, n, stream);
  const size_t len = (n + 255) / 256 * 256;
  if (cursor_ + len > kBytes) cursor_ = 0;
  while (!pending_.empty() && overlaps(pending_.front(), cursor_, cursor_ + len)) {
    check(cudaEventSynchronize(pending_.front().ev), "staging wait");
    spare_.push_back(pending_.front().ev);
    pending_.pop_front();
  }
  std::memcpy(buf_ + cursor_, src, n);
  check(cudaMemcpyAsync(dst, buf_ + cursor_, n, cudaMemcpyHostToDevice, stream), "upload");
  cudaEvent_t ev;
  if (spare_.empty()) check(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming), "event");
  else ev = spare_.back(), spare_.pop_back();
  check(cudaEventRecord(ev, stream), "event record");
  pending_.push_back({cursor_, cursor_ + len, ev});
  cursor_ += len;
}

void Stager::upload_large(void* dst, const void* src, size_t n, cudaStream_t stream) {
  constexpr size_t kPiece = size_t(32) << 20;
  for (int i = 0; i < 2; ++i)
    if (!big_[i]) {
      check(cudaMallocHost(&big_[i], kPiece), "pinned upload buffer");
      check(cudaEventCreateWithFlags(&big_ev_[i], cudaEventDisableTiming), "event");
      check(cudaEventRecord(big_ev_[i], stream), "event record");
    }
  for (size_t off = 0, piece = 0; off < n; off += kPiece, ++piece) {
    const int b = int(piece % 2);
    const size_t len = std::min(kPiece, n - off);
    check(cudaEventSynchronize(big_ev_[b]), "upload wait");  // the copy that last read this buffer is done
    const char* s = static_cast<const char*>(src) + off;
    char* d = static_cast<char*>(big_[b]);
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < int64_t((len + (1 << 20) - 1) >> 20); ++c) {
      const size_t o = size_t(c) << 20;
      std::memcpy(d + o, s + o, std::min<size_t>(size_t(1) << 20, len - o));
    }
    check(cudaMemcpyAsync(static_cast<char*>(dst) + off, big_[b], len, cudaMemcpyHostToDevice, stream), "upload");
    check(cudaEventRecord(big_ev_[b], stream), "event record");
  }
  check(cudaStreamSynchronize(stream), "upload");
}

}  // namespace gemma4::cuda
