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
  for (int p = 0; p < 2; ++p) {
    if (exec[p]) cudaGraphExecDestroy(exec[p]);
    if (start[p]) cudaEventDestroy(start[p]);
    if (done[p]) cudaEventDestroy(done[p]);
    if (pinned[p]) cudaFreeHost(pinned[p]);
  }
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
  if (g.exec[0]) {
    // This launch's host area was last read by the launch before the previous one: usually long done.
    ck(cudaEventSynchronize(g.done[g.parity]), "step graph wait");
    collect_timing(g, g.parity);
    mode_ = Mode::Replay;
    return;
  }
  for (char*& p : g.pinned)
    if (!p) ck(cudaMallocHost(reinterpret_cast<void**>(&p), kUploadBytes), "pinned step uploads");
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
    // One copy of the whole upload area ahead of the recorded nodes (the roots of the captured chain); the
    // second instance copies from the second host area.
    cudaGraphNode_t copy = nullptr;
    if (g.upload_used > 0) {
      size_t n = 0;
      ck(cudaGraphGetRootNodes(graph, nullptr, &n), "graph roots");
      std::vector<cudaGraphNode_t> roots(n);
      if (n) ck(cudaGraphGetRootNodes(graph, roots.data(), &n), "graph roots");
      ck(cudaGraphAddMemcpyNode1D(&copy, graph, nullptr, 0, g.dev.get(), g.pinned[0], g.upload_used,
                                  cudaMemcpyHostToDevice),
         "graph upload node");
      std::vector<cudaGraphNode_t> from(n, copy);
      if (n) ck(cudaGraphAddDependencies(graph, from.data(), roots.data(), nullptr, n), "graph upload edges");
    }
    cudaError_t ie = cudaGraphInstantiate(&g.exec[0], graph, 0);
    if (ie == cudaSuccess && copy)
      ie = cudaGraphMemcpyNodeSetParams1D(copy, g.dev.get(), g.pinned[1], g.upload_used, cudaMemcpyHostToDevice);
    if (ie == cudaSuccess) ie = cudaGraphInstantiate(&g.exec[1], graph, 0);
    cudaGraphDestroy(graph);
    if (ie != cudaSuccess) {
      cudaGetLastError();
      for (cudaGraphExec_t& e : g.exec)
        if (e) cudaGraphExecDestroy(e), e = nullptr;
      g.broken = true;
      throw Error("decode step graph: instantiation failed: {} {}", cudaGetErrorString(ie), kHint);
    }
    for (int p = 0; p < 2; ++p) {
      if (!g.done[p]) ck(cudaEventCreate(&g.done[p]), "step graph event");
      if (!g.start[p]) ck(cudaEventCreate(&g.start[p]), "step graph event");
    }
    // The recording wrote its arrays into area 0, and the first launch follows now: make it instance 0.
    g.parity = 0;
  }
  const int p = g.parity;
  collect_timing(g, p);
  stats_.host_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - began_).count();
  ck(cudaEventRecord(g.start[p], stream_), "step graph event");
  ck(cudaGraphLaunch(g.exec[p], stream_), "step graph launch");
  ck(cudaEventRecord(g.done[p], stream_), "step graph event");
  g.timing_pending[p] = true;
  g.parity = 1 - p;
  ++stats_.steps;
}

void StepGraphs::collect_timing(Graph& g, int p) const {
  if (!g.timing_pending[p]) return;
  float ms = 0;
  if (cudaEventSynchronize(g.done[p]) == cudaSuccess &&
      cudaEventElapsedTime(&ms, g.start[p], g.done[p]) == cudaSuccess)
    stats_.gpu_seconds += ms / 1e3;
  g.timing_pending[p] = false;
}

Ops::StepStats StepGraphs::stats() const {
  for (auto& [key, g] : graphs_) collect_timing(*g, 0), collect_timing(*g, 1);
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
  // A recording writes area 0 (its first launch is instance 0); replays write the area of their instance.
  if (bytes) std::memcpy(g.pinned[mode_ == Mode::Capture ? 0 : g.parity] + at, p, bytes);
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
