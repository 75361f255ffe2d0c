// The model commands as users call them: `gemma4 forward`, `gemma4 generate`, and their errors (one line on
// stderr, exit 1; usage errors exit 2).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "io/safetensors.h"
#include "test_util.h"

using namespace gemma4;
namespace fs = std::filesystem;

namespace {

std::string fixture(const std::string& name) { return test::source_dir() + "/tests/fixtures/" + name; }

int count_lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n + (!s.empty() && s.back() != '\n');
}

void expect_one_line_error(const test::RunResult& r, int code, const std::string& needle) {
  EXPECT_EQ(r.exit_code, code) << r.err;
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
}

// A copy of a fixture directory that a test may damage.
std::string copy_fixture(const std::string& name) {
  std::string dst = test::temp_dir() + "/" + name;
  fs::copy(fixture(name), dst, fs::copy_options::recursive);
  return dst;
}

}  // namespace

TEST(ForwardCli, WritesHfLogitsForImagesAndAudio) {
  std::string out = test::temp_dir() + "/out.safetensors";
  auto r = test::run_gemma4({"forward", "--model", fixture("unified_f32"), "--inputs",
                             fixture("unified_f32") + "/inputs.safetensors", "--out", out});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto got = SafetensorsFile::open(out);
  auto ref = SafetensorsFile::open(fixture("unified_f32") + "/reference.safetensors");
  Tensor g = got->get("logits"), w = ref->get("logits");
  ASSERT_EQ(g.dtype, DType::F32);
  ASSERT_EQ(g.shape, w.shape);
  float maxdiff = 0;
  for (int64_t i = 0; i < g.numel(); ++i) maxdiff = std::max(maxdiff, std::fabs(g.ptr<float>()[i] - w.ptr<float>()[i]));
  EXPECT_LE(maxdiff, 1e-3f);
}

TEST(GenerateCli, IdsOnlyMatchesHfGreedy) {
  auto ref = SafetensorsFile::open(fixture("unified_f32") + "/reference.safetensors");
  std::string prompt, want;
  for (int64_t id : ref->get("gen_prompt_ids").i64_vector()) prompt += (prompt.empty() ? "" : ",") + std::to_string(id);
  auto ids = ref->get("gen_ids").i64_vector();
  for (size_t i = 0; i < ids.size(); ++i) want += (i ? " " : "") + std::to_string(ids[i]);
  auto r = test::run_gemma4({"generate", "--model", fixture("unified_f32"), "--prompt-ids", prompt, "--max-new-tokens",
                             std::to_string(ids.size()), "--temperature", "0", "--ids-only", "--ignore-eos"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, want + "\n");
  // With the generation config's eos ids active, it stops at the first eos (reference gen_ids_eos).
  std::string want_eos;
  auto eos_ids = ref->get("gen_ids_eos").i64_vector();
  for (size_t i = 0; i < eos_ids.size(); ++i) want_eos += (i ? " " : "") + std::to_string(eos_ids[i]);
  auto e = test::run_gemma4({"generate", "--model", fixture("unified_f32"), "--prompt-ids", prompt, "--max-new-tokens",
                             std::to_string(ids.size()), "--temperature", "0", "--ids-only"});
  ASSERT_EQ(e.exit_code, 0) << e.err;
  EXPECT_EQ(e.out, want_eos + "\n");
}

TEST(GenerateCli, SamplingIsSeeded) {
  std::vector<std::string> args = {"generate", "--model", fixture("unified_text_causal"), "--prompt-ids", "2,17,9",
                                   "--max-new-tokens", "8", "--temperature", "0.8", "--top-k", "20", "--top-p", "0.9",
                                   "--seed", "7", "--ids-only", "--ignore-eos"};
  auto a = test::run_gemma4(args), b = test::run_gemma4(args);
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_EQ(count_lines(a.out), 1);
}

TEST(ModelCliErrors, IdOutsideVocabulary) {
  auto r = test::run_gemma4({"generate", "--model", fixture("unified_text_causal"), "--prompt-ids", "2,512",
                             "--max-new-tokens", "2", "--ids-only"});
  expect_one_line_error(r, 1, "outside the vocabulary");
}

TEST(ModelCliErrors, TruncatedCheckpoint) {
  std::string dir = copy_fixture("unified_text_causal");
  fs::resize_file(dir + "/model.safetensors", fs::file_size(dir + "/model.safetensors") / 2);
  auto r = test::run_gemma4({"generate", "--model", dir, "--prompt-ids", "2,3", "--max-new-tokens", "1"});
  expect_one_line_error(r, 1, "model.safetensors");
}

TEST(ModelCliErrors, UnknownModelType) {
  std::string dir = copy_fixture("unified_text_causal");
  std::string cfg = test::read_file(dir + "/config.json");
  auto pos = cfg.find("gemma4_unified_text");
  ASSERT_NE(pos, std::string::npos);
  cfg.replace(pos, std::string("gemma4_unified_text").size(), "gemma9");
  test::write_file(dir + "/config.json", cfg);
  auto r = test::run_gemma4({"inspect", dir});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("gemma9"), std::string::npos) << r.err;
  auto g = test::run_gemma4({"generate", "--model", dir, "--prompt-ids", "2", "--max-new-tokens", "1"});
  expect_one_line_error(g, 1, "unknown model_type 'gemma9'");
}

TEST(ModelCliErrors, InputsWithoutIdsAndUsage) {
  std::string in = test::temp_dir() + "/in.safetensors";
  save_safetensors(in, {{"tokens", Tensor::from_i64({1, 2}, {2})}});
  auto r = test::run_gemma4({"forward", "--model", fixture("unified_text_causal"), "--inputs", in, "--out",
                             test::temp_dir() + "/o.safetensors"});
  expect_one_line_error(r, 1, "input_ids");
  auto u = test::run_gemma4({"forward", "--inputs", in});
  expect_one_line_error(u, 2, "missing required option");
  auto p = test::run_gemma4({"generate", "--model", fixture("unified_text_causal"), "--prompt-ids", "2,x"});
  expect_one_line_error(p, 2, "'x'");
  auto m = test::run_gemma4({"forward", "--model", test::temp_dir() + "/nope", "--inputs",
                             fixture("unified_f32") + "/inputs.safetensors", "--out", in + ".o"});
  expect_one_line_error(m, 1, "nope");
}

TEST(ModelCliErrors, ImagePlaceholdersWithoutPixels) {
  std::string in = test::temp_dir() + "/in.safetensors";
  auto inputs = SafetensorsFile::open(fixture("unified_f32") + "/inputs.safetensors");
  save_safetensors(in, {{"input_ids", Tensor::from_i64(inputs->get("input_ids").i64_vector(), inputs->get("input_ids").shape)}});
  auto r = test::run_gemma4({"forward", "--model", fixture("unified_f32"), "--inputs", in, "--out", in + ".o"});
  expect_one_line_error(r, 1, "pixel_values");
}
