// gemma4 forward --model DIR --inputs IN.safetensors --out OUT.safetensors
#include <cstdio>

#include "cli/args.h"
#include "cli/command.h"
#include "io/safetensors.h"
#include "model/model.h"

namespace gemma4::cli {
namespace {

Tensor optional_tensor(const SafetensorsFile& f, const std::string& name, bool integer) {
  if (!f.has(name)) return {};
  Tensor t = f.get(name);
  if (integer) return Tensor::from_i64(t.i64_vector(), t.shape);
  return t.to_f32();
}

int run_forward(const std::vector<std::string>& argv) {
  Args a(argv, {"--model", "--inputs", "--out", "--device", "--precision"}, {},
         "gemma4 forward --model DIR --inputs IN.safetensors --out OUT.safetensors [--device cpu|cuda] [--precision auto|f32|bf16]");
  // Default: cuda when a GPU is present, else cpu (issue 4); asking for cuda without one is an error.
  const Device device = select_device(a.get_or("--device", "auto"));
  std::string in_path = a.get("--inputs"), out_path = a.get("--out");
  auto in = SafetensorsFile::open(in_path);
  G4_CHECK(in->has("input_ids"), "{}: no tensor 'input_ids'", in_path);
  Tensor ids_t = in->get("input_ids");
  G4_CHECK(ids_t.ndim() == 1 || (ids_t.ndim() == 2 && ids_t.dim(0) == 1),
           "{}: input_ids must be [T], got {}", in_path, shape_str(ids_t.shape));
  G4_CHECK(ids_t.dtype == DType::I64 || ids_t.dtype == DType::I32, "{}: input_ids must be I64, got {}", in_path,
           dtype_name(ids_t.dtype));
  std::vector<int64_t> ids = ids_t.i64_vector();

  MultimodalInputs mm;
  mm.pixel_values = optional_tensor(*in, "pixel_values", false);
  mm.image_position_ids = optional_tensor(*in, "image_position_ids", true);
  mm.input_features = optional_tensor(*in, "input_features", false);
  G4_CHECK(mm.pixel_values.defined() == mm.image_position_ids.defined() || !mm.pixel_values.data,
           "{}: pixel_values needs image_position_ids", in_path);
  if (mm.pixel_values.data && !mm.image_position_ids.data)
    throw Error("{}: pixel_values given without image_position_ids", in_path);

  auto model = Model::load(a.get("--model"), {}, device, select_precision(a.get_or("--precision", "auto")));
  KVCache cache = model->new_cache();
  Tensor logits = model->forward(ids, cache, &mm, /*all_logits=*/true);
  save_safetensors(out_path, {{"logits", logits}});
  return 0;
}

}  // namespace
G4_COMMAND("forward", "run the model over input ids (and image/audio tensors); write fp32 logits", run_forward);
}  // namespace gemma4::cli
