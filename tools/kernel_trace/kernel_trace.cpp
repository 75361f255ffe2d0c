// Kernel timeline recorder: a CUPTI injection library. The CUDA driver loads it into any program started with
//   CUDA_INJECTION64_PATH=/path/to/libkernel_trace.so GEMMA4_TRACE_FILE=trace.csv <program> ...
// and it records every kernel's GPU start and end (also the kernels of replayed CUDA graphs, and with the
// overlap that programmatic dependent launch gives), written as CSV when the program's CUDA context goes away:
//   start_ns,end_ns,correlation,graph,node,grid,block,regs,name
// `correlation` is the launching API call (all kernels of one graph replay share it). tools/kernel_trace/
// step_timeline.py turns the file into a table per kernel of a decode step. Not linked into anything else.
#include <cupti.h>

#include <cxxabi.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

namespace {

struct KernelRecord {
  uint64_t start, end;
  uint32_t correlation, graph;
  uint64_t node;
  int grid[3], block[3];
  int regs;
  std::string name;
};

std::mutex g_mu;
std::vector<KernelRecord> g_records;
bool g_written = false;

constexpr size_t kBufferBytes = size_t(8) << 20;

void CUPTIAPI buffer_requested(uint8_t** buffer, size_t* size, size_t* max_records) {
  *buffer = static_cast<uint8_t*>(std::aligned_alloc(8, kBufferBytes));
  *size = *buffer ? kBufferBytes : 0;
  *max_records = 0;
}

std::string demangle(const char* name) {
  if (!name) return "?";
  int status = 0;
  char* d = abi::__cxa_demangle(name, nullptr, nullptr, &status);
  std::string s = status == 0 && d ? d : name;
  std::free(d);
  for (char& c : s)
    if (c == ',') c = ';';  // one CSV field
  return s;
}

void CUPTIAPI buffer_completed(CUcontext, uint32_t, uint8_t* buffer, size_t, size_t valid) {
  CUpti_Activity* rec = nullptr;
  std::vector<KernelRecord> got;
  while (cuptiActivityGetNextRecord(buffer, valid, &rec) == CUPTI_SUCCESS) {
    if (rec->kind != CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL && rec->kind != CUPTI_ACTIVITY_KIND_KERNEL) continue;
    const auto* k = reinterpret_cast<const CUpti_ActivityKernel10*>(rec);
    got.push_back({k->start, k->end, k->correlationId, k->graphId, k->graphNodeId, {k->gridX, k->gridY, k->gridZ},
                   {k->blockX, k->blockY, k->blockZ}, k->registersPerThread, demangle(k->name)});
  }
  std::free(buffer);
  std::lock_guard<std::mutex> lock(g_mu);
  g_records.insert(g_records.end(), got.begin(), got.end());
}

void write_trace() {
  cuptiActivityFlushAll(1);
  std::lock_guard<std::mutex> lock(g_mu);
  if (g_written) return;
  g_written = true;
  const char* path = std::getenv("GEMMA4_TRACE_FILE");
  FILE* f = std::fopen(path ? path : "kernel_trace.csv", "w");
  if (!f) {
    std::fprintf(stderr, "kernel_trace: cannot write %s\n", path ? path : "kernel_trace.csv");
    return;
  }
  std::fprintf(f, "start_ns,end_ns,correlation,graph,node,grid,block,regs,name\n");
  for (const KernelRecord& r : g_records)
    std::fprintf(f, "%llu,%llu,%u,%u,%llu,%dx%dx%d,%dx%dx%d,%d,%s\n", (unsigned long long)r.start,
                 (unsigned long long)r.end, r.correlation, r.graph, (unsigned long long)r.node, r.grid[0], r.grid[1],
                 r.grid[2], r.block[0], r.block[1], r.block[2], r.regs, r.name.c_str());
  std::fclose(f);
  std::fprintf(stderr, "kernel_trace: %zu kernels written to %s\n", g_records.size(), path ? path : "kernel_trace.csv");
}

// The context's teardown (at the program's exit, before atexit handlers registered after the runtime's) is
// the last moment its records can be flushed.
void CUPTIAPI on_callback(void*, CUpti_CallbackDomain domain, CUpti_CallbackId id, const void*) {
  if (domain == CUPTI_CB_DOMAIN_RESOURCE && id == CUPTI_CBID_RESOURCE_CONTEXT_DESTROY_STARTING) write_trace();
}

}  // namespace

extern "C" int InitializeInjection(void) {
  CUpti_SubscriberHandle sub;
  if (cuptiSubscribe(&sub, on_callback, nullptr) != CUPTI_SUCCESS ||
      cuptiEnableCallback(1, sub, CUPTI_CB_DOMAIN_RESOURCE, CUPTI_CBID_RESOURCE_CONTEXT_DESTROY_STARTING) !=
          CUPTI_SUCCESS ||
      cuptiActivityRegisterCallbacks(buffer_requested, buffer_completed) != CUPTI_SUCCESS ||
      cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL) != CUPTI_SUCCESS) {
    std::fprintf(stderr, "kernel_trace: CUPTI setup failed\n");
    return 0;
  }
  std::atexit(write_trace);
  return 1;
}
