#include "ops/cuda/step_graph.h"

#include <cstdlib>
#include <cstring>

#include "core/error.h"

namespace gemma4::cuda {

namespace {

void ck(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw Error("CUDA {}: {}", what, cudaGetErrorString(e));
}

constexpr const char* kHint = "(GEMMA4_CUDA_GRAPHS=0 runs every step eagerly)";

}  // namespace

StepGraphs::Graph::~Graph() {
  if (exec) cudaGraphExecDestroy(exec);
  if (start) cudaEventDestroy(start);
  if (done) cudaEventDestroy(done);
  if (pinned) cudaFreeHost(pinned);
}

StepGraphs::StepGraphs(cudaStream_t stream, std::shared_ptr<DevicePool> pool)
    : stream_(stream), pool_(std::move(pool)) {
  const char* v = std::getenv("GEMMA4_CUDA_GRAPHS");
  enabled_ = !(v && std::strcmp(v, "0") == 0);
}

StepGraphs::~StepGraphs() {
  cudaStreamSynchronize(stream_);
  graphs_.clear();
}

void StepGraphs::evict() {
  while (int(graphs_.size()) > kMaxGraphs) {
    auto oldest = graphs_.begin();
    for (auto it = graphs_.begin(); it != graphs_.end(); ++it)
      if (it->second->last_use < oldest->second->last_use) oldest = it;
    ck(cudaStreamSynchronize(stream_), "step graph eviction");
    graphs_.erase(oldest);
  }
}

void StepGraphs::begin(uint64_t key) {
  G4_CHECK(mode_ == Mode::Eager, "step graphs: begin_step inside an open step");
  if (!enabled_) return;
  auto it = graphs_.find(key);
  if (it == graphs_.end()) {
    it = graphs_.emplace(key, std::make_unique<Graph>()).first;
    it->second->last_use = ++clock_;
    evict();
    it = graphs_.find(key);
  }
  Graph& g = *it->second;
  g.last_use = ++clock_;
  if (g.broken || ++g.seen < 2) return;  // the first occurrence runs eagerly
  began_ = std::chrono::steady_clock::now();
  cur_ = &g;
  op_i_ = block_i_ = upload_i_ = 0;
  g.upload_used = 0;
  if (g.exec) {
    ck(cudaEventSynchronize(g.done), "step graph wait");  // the last launch has read the upload area
    collect_timing(g);
    mode_ = Mode::Replay;
    return;
  }
  if (!g.pinned) ck(cudaMallocHost(reinterpret_cast<void**>(&g.pinned), kUploadBytes), "pinned step uploads");
  if (!g.dev) g.dev = pool_->allocate(kUploadBytes);
  g.sigs.clear();
  g.blocks.clear();
  g.block_bytes.clear();
  g.upload_bytes.clear();
  ck(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeRelaxed), "begin step capture");
  mode_ = Mode::Capture;
}

void StepGraphs::end() {
  if (mode_ == Mode::Eager) return;
  Graph& g = *cur_;
  const Mode m = mode_;
  mode_ = Mode::Eager;
  cur_ = nullptr;
  if (m == Mode::Replay) {
    if (op_i_ != g.sigs.size() || block_i_ != g.blocks.size() || upload_i_ != g.upload_bytes.size()) {
      g.broken = true;
      throw Error("decode step graph: the step issued {} ops, {} allocations and {} uploads where its recording has "
                  "{}, {} and {} {}",
                  op_i_, block_i_, upload_i_, g.sigs.size(), g.blocks.size(), g.upload_bytes.size(), kHint);
    }
  } else {
    cudaGraph_t graph = nullptr;
    const cudaError_t e = cudaStreamEndCapture(stream_, &graph);
    if (e != cudaSuccess || !graph) {
      cudaGetLastError();
      g.broken = true;
      throw Error("decode step graph: recording failed: {} {}", cudaGetErrorString(e), kHint);
    }
    // One copy of the whole upload area ahead of the recorded nodes (the roots of the captured chain).
    if (g.upload_used > 0) {
      size_t n = 0;
      ck(cudaGraphGetRootNodes(graph, nullptr, &n), "graph roots");
      std::vector<cudaGraphNode_t> roots(n);
      if (n) ck(cudaGraphGetRootNodes(graph, roots.data(), &n), "graph roots");
      cudaGraphNode_t copy = nullptr;
      ck(cudaGraphAddMemcpyNode1D(&copy, graph, nullptr, 0, g.dev.get(), g.pinned, g.upload_used,
                                  cudaMemcpyHostToDevice),
         "graph upload node");
      std::vector<cudaGraphNode_t> from(n, copy);
      if (n) ck(cudaGraphAddDependencies(graph, from.data(), roots.data(), nullptr, n), "graph upload edges");
    }
    const cudaError_t ie = cudaGraphInstantiate(&g.exec, graph, 0);
    cudaGraphDestroy(graph);
    if (ie != cudaSuccess) {
      cudaGetLastError();
      g.exec = nullptr;
      g.broken = true;
      throw Error("decode step graph: instantiation failed: {} {}", cudaGetErrorString(ie), kHint);
    }
    if (!g.done) ck(cudaEventCreate(&g.done), "step graph event");
    if (!g.start) ck(cudaEventCreate(&g.start), "step graph event");
  }
  collect_timing(g);
  stats_.host_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - began_).count();
  ck(cudaEventRecord(g.start, stream_), "step graph event");
  ck(cudaGraphLaunch(g.exec, stream_), "step graph launch");
  ck(cudaEventRecord(g.done, stream_), "step graph event");
  g.timing_pending = true;
  ++stats_.steps;
}

void StepGraphs::collect_timing(Graph& g) const {
  if (!g.timing_pending) return;
  float ms = 0;
  if (cudaEventSynchronize(g.done) == cudaSuccess && cudaEventElapsedTime(&ms, g.start, g.done) == cudaSuccess)
    stats_.gpu_seconds += ms / 1e3;
  g.timing_pending = false;
}

Ops::StepStats StepGraphs::stats() const {
  for (auto& [key, g] : graphs_) collect_timing(*g);
  return stats_;
}

void StepGraphs::abort() {
  if (mode_ == Mode::Eager) return;
  if (mode_ == Mode::Capture) {
    cudaGraph_t graph = nullptr;
    cudaStreamEndCapture(stream_, &graph);
    if (graph) cudaGraphDestroy(graph);
    cudaGetLastError();
  }
  cur_->broken = true;
  mode_ = Mode::Eager;
  cur_ = nullptr;
}

[[noreturn]] void StepGraphs::diverged(const char* what, size_t index) {
  cur_->broken = true;
  throw Error("decode step graph: {} #{} of the step differs from its recording {}", what, index, kHint);
}

std::shared_ptr<void> StepGraphs::block(size_t bytes) {
  Graph& g = *cur_;
  if (mode_ == Mode::Capture) {
    // Held by the recording for its lifetime: replays find the same memory, nobody else can take it.
    g.blocks.push_back(pool_->allocate(bytes));
    g.block_bytes.push_back(bytes);
    return g.blocks.back();
  }
  if (block_i_ >= g.blocks.size() || g.block_bytes[block_i_] != bytes) diverged("allocation", block_i_);
  return g.blocks[block_i_++];
}

void* StepGraphs::upload(const void* p, size_t bytes) {
  Graph& g = *cur_;
  const size_t at = g.upload_used;
  if (mode_ == Mode::Capture) {
    G4_CHECK(at + bytes <= kUploadBytes, "decode step graph: more than {} bytes of uploads {}", kUploadBytes, kHint);
    g.upload_bytes.push_back(bytes);
  } else {
    if (upload_i_ >= g.upload_bytes.size() || g.upload_bytes[upload_i_] != bytes) diverged("upload", upload_i_);
    ++upload_i_;
  }
  if (bytes) std::memcpy(g.pinned + at, p, bytes);
  g.upload_used = at + (bytes + 15) / 16 * 16;
  return static_cast<char*>(g.dev.get()) + at;
}

bool StepGraphs::skip(const char* what, std::initializer_list<uint64_t> sig) {
  uint64_t h = 1469598103934665603ull;
  for (const char* c = what; *c; ++c) h = (h ^ uint64_t(*c)) * 1099511628211ull;
  for (uint64_t v : sig) h = (h ^ v) * 1099511628211ull + (h >> 29);
  Graph& g = *cur_;
  if (mode_ == Mode::Capture) {
    g.sigs.push_back(h);
    return false;
  }
  if (op_i_ >= g.sigs.size() || g.sigs[op_i_] != h) diverged(what, op_i_);
  ++op_i_;
  return true;
}

}  // namespace gemma4::cuda
