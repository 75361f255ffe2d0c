// Loss and per-parameter gradients against PyTorch autograd on the HF model in float64 (tools/grad_reference.py),
// i.e. against the exact gradient: relative L2 error <= 1e-4 for every parameter of the Unified fixtures.
// The E-model (PLE + KV sharing) and MoE fixtures are held to 1e-3: on them fp32 itself cannot reach 1e-4.
// PyTorch's own fp32 autograd on the same HF model is 3.8e-4 (PLE, layers.9.per_layer_input_gate) and 1.5e-4
// (MoE, router.per_expert_scale) away from float64 (tools/grad_noise_floor.py, measured on the GPU machine),
// the same size as ours: these fixtures spread their logits (final norm x14) and a CE gradient inherits the
// forward's absolute logit rounding as relative error. Our worst cases are printed by the test.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "io/safetensors.h"
#include "model/keymap.h"
#include "test_util.h"
#include "train/grad.h"

using namespace gemma4;
namespace fs = std::filesystem;

namespace {

std::vector<std::string> grad_fixtures() {
  std::vector<std::string> dirs;
  fs::path root = fs::path(test::source_dir()) / "tests" / "fixtures";
  if (fs::exists(root))
    for (auto& e : fs::directory_iterator(root))
      if (fs::exists(e.path() / "grad_reference.safetensors")) dirs.push_back(e.path().string());
  std::sort(dirs.begin(), dirs.end());
  return dirs;
}

class GradParity : public ::testing::TestWithParam<std::string> {};

TEST_P(GradParity, LossAndGradientsMatchPyTorch) {
  const std::string dir = GetParam();
  auto model = Model::load(dir);
  auto ref = SafetensorsFile::open(dir + "/grad_reference.safetensors");
  Example ex;
  ex.ids = ref->get("ids").i64_vector();
  for (int64_t v : ref->get("target").i64_vector()) ex.target.push_back(uint8_t(v));
  ex.origin = dir;
  Weights grads = zeros_like(model->config(), model->weights());
  LossStats st = forward_backward(*model, ex, grads);
  const double want_loss = ref->get("loss").ptr<double>()[0];
  const bool unified = model->config().is_unified;
  const double tolerance = unified ? 1e-4 : 1e-3;
  EXPECT_NEAR(st.nll_sum, want_loss, 1e-5 * std::fabs(want_loss));

  size_t matched = 0;
  double worst = 0;
  std::string worst_name;
  for_each_parameter(model->config(), model->accounting().layout, {}, grads, [&](const ExpectedTensor& et, Tensor& g) {
    if (et.modality != "text") return;
    std::string key = "grad." + et.name;
    if (!ref->has(key)) {
      // HF keeps layer_scalar as a buffer (not trained); everything else must have a reference.
      EXPECT_NE(et.name.find("layer_scalar"), std::string::npos) << "no reference gradient for " << et.name;
      return;
    }
    std::vector<float> want = ref->get(key).f32_vector();
    ASSERT_EQ(int64_t(want.size()), g.numel()) << et.name;
    double num = 0, den = 0;
    for (size_t i = 0; i < want.size(); ++i) {
      double d = double(g.ptr<float>()[i]) - want[i];
      num += d * d;
      den += double(want[i]) * want[i];
    }
    double rel = std::sqrt(num / std::max(den, 1e-30));
    if (rel > worst) worst = rel, worst_name = et.name;
    EXPECT_LE(rel, tolerance) << et.name;
    ++matched;
  });
  size_t refs = 0;
  for (auto& [name, info] : ref->tensors()) refs += name.rfind("grad.", 0) == 0;
  EXPECT_EQ(matched, refs);
  std::printf("  %s: loss %.6f (ref %.6f), %zu gradients, worst relative error %.2e (%s)\n",
              fs::path(dir).filename().c_str(), st.nll_sum, want_loss, matched, worst, worst_name.c_str());
}

INSTANTIATE_TEST_SUITE_P(Fixtures, GradParity, ::testing::ValuesIn(grad_fixtures()),
                         [](const auto& info) { return fs::path(info.param).filename().string(); });

TEST(GradParityFixtures, Present) { EXPECT_GE(grad_fixtures().size(), 4u); }

}  // namespace
