// Backend selection: CPU always; CUDA when the build has it (GEMMA4_HAS_CUDA) and a device is present.
#include "ops/ops.h"

#ifdef GEMMA4_HAS_CUDA
namespace gemma4::cuda {
std::unique_ptr<Ops> make_ops(Precision p);
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

std::unique_ptr<Ops> make_cuda_ops(Precision p) {
  std::string why;
  if (!cuda_available(&why)) throw Error("CUDA is not available: {}", why);
#ifdef GEMMA4_HAS_CUDA
  return cuda::make_ops(p);
#else
  (void)p;
  return nullptr;  // unreachable
#endif
}

std::unique_ptr<Ops> make_ops(Device d, Precision p) {
  return d == Device::CUDA ? make_cuda_ops(p) : make_cpu_ops();
}

const char* precision_name(Precision p) { return p == Precision::BF16 ? "bf16" : "f32"; }

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

std::optional<Precision> select_precision(const std::string& requested) {
  if (requested.empty() || requested == "auto") return std::nullopt;
  if (requested == "f32" || requested == "fp32" || requested == "float32") return Precision::F32;
  if (requested == "bf16" || requested == "bfloat16") return Precision::BF16;
  throw UsageError("--precision {}: expected auto, f32 or bf16", requested);
}

const char* device_name(Device d) { return d == Device::CUDA ? "cuda" : "cpu"; }

}  // namespace gemma4
