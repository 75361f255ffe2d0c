// Backend selection: CPU always; CUDA when the build has it (GEMMA4_HAS_CUDA) and a device is present.
#include "ops/ops.h"

#ifdef GEMMA4_HAS_CUDA
namespace gemma4::cuda {
std::unique_ptr<Ops> make_ops();
bool device_available(std::string* why);
}  // namespace gemma4::cuda
#endif

namespace gemma4 {

bool cuda_available(std::string* why) {
#ifdef GEMMA4_HAS_CUDA
  return cuda::device_available(why);
#else
  if (why) *why = "this build has no CUDA support (nvcc was not found when it was configured)";
  return false;
#endif
}

std::unique_ptr<Ops> make_cuda_ops() {
  std::string why;
  if (!cuda_available(&why)) throw Error("CUDA is not available: {}", why);
#ifdef GEMMA4_HAS_CUDA
  return cuda::make_ops();
#else
  return nullptr;  // unreachable
#endif
}

std::unique_ptr<Ops> make_ops(Device d) { return d == Device::CUDA ? make_cuda_ops() : make_cpu_ops(); }

Device select_device(const std::string& requested) {
  if (requested.empty() || requested == "auto") return cuda_available() ? Device::CUDA : Device::CPU;
  if (requested == "cpu") return Device::CPU;
  if (requested == "cuda") {
    std::string why;
    if (!cuda_available(&why)) throw Error("--device cuda: CUDA is not available: {}", why);
    return Device::CUDA;
  }
  throw UsageError("--device {}: expected cpu, cuda or auto", requested);
}

const char* device_name(Device d) { return d == Device::CUDA ? "cuda" : "cpu"; }

}  // namespace gemma4
