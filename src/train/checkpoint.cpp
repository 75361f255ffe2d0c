#include "train/checkpoint.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "core/error.h"
#include "io/safetensors.h"

namespace gemma4 {

namespace fs = std::filesystem;

namespace {

std::optional<int64_t> parse_step_name(const std::string& name) {
  static const std::regex re("step_([0-9]{1,18})");
  std::smatch m;
  if (!std::regex_match(name, m, re)) return std::nullopt;
  return std::stoll(m[1].str());
}

}  // namespace

void write_file_atomic(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    G4_CHECK(f.good(), "{}: cannot write", tmp);
    f << text;
    f.flush();
    G4_CHECK(f.good(), "{}: write failed", tmp);
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  G4_CHECK(!ec, "{}: cannot rename into place: {}", path, ec.message());
}

nlohmann::json read_json_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  G4_CHECK(f.good(), "{}: cannot read", path);
  std::stringstream ss;
  ss << f.rdbuf();
  try {
    return nlohmann::json::parse(ss.str());
  } catch (const std::exception& e) {
    throw Error("{}: malformed JSON: {}", path, e.what());
  }
}

void load_tensors_into(const std::string& file, const std::vector<std::pair<std::string, Tensor>>& dst) {
  auto f = SafetensorsFile::open(file);
  for (const auto& [name, t] : dst) {
    G4_CHECK(f->has(name), "{}: tensor '{}' is missing", file, name);
    Tensor s = f->get(name);
    G4_CHECK(s.dtype == t.dtype && s.shape == t.shape, "{}: tensor '{}': {} {} but the model needs {} {}", file, name,
             dtype_name(s.dtype), shape_str(s.shape), dtype_name(t.dtype), shape_str(t.shape));
    std::memcpy(t.data, s.data, t.nbytes());
  }
  G4_CHECK(f->tensors().size() == dst.size(), "{}: {} tensors, expected {}", file, f->tensors().size(), dst.size());
}

CheckpointManager::CheckpointManager(std::string checkpoints_dir) : dir_(std::move(checkpoints_dir)) {}

std::string CheckpointManager::step_dir(int64_t step) const { return (fs::path(dir_) / fmt::format("step_{}", step)).string(); }

std::vector<int64_t> CheckpointManager::steps() const {
  std::vector<int64_t> out;
  std::error_code ec;
  if (!fs::is_directory(dir_, ec)) return out;
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    auto s = parse_step_name(e.path().filename().string());
    if (s && e.is_directory() && fs::exists(e.path() / "trainer_state.json")) out.push_back(*s);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::optional<int64_t> CheckpointManager::last_step() const {
  auto s = steps();
  if (s.empty()) return std::nullopt;
  return s.back();
}

void CheckpointManager::save(int64_t step, const CheckpointContents& c) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  G4_CHECK(!ec, "{}: cannot create directory: {}", dir_, ec.message());
  fs::path tmp = fs::path(dir_) / fmt::format(".tmp_step_{}.{}", step, int(getpid()));
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp, ec);
  G4_CHECK(!ec, "{}: cannot create directory: {}", tmp.string(), ec.message());
  try {
    if (before_write) before_write("model");
    save_safetensors((tmp / "model.safetensors").string(), c.model, {{"format", "pt"}});
    if (before_write) before_write("optimizer");
    save_safetensors((tmp / "optimizer.safetensors").string(), c.optimizer, c.optimizer_metadata);
    if (before_write) before_write("state");
    write_file_atomic((tmp / "trainer_state.json").string(), c.trainer_state.dump(2) + "\n");
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
  fs::path final_dir = step_dir(step);
  if (fs::exists(final_dir)) {  // an older checkpoint of the same step: swap it out only now
    fs::path old = fs::path(dir_) / fmt::format(".old_step_{}.{}", step, int(getpid()));
    fs::rename(final_dir, old, ec);
    G4_CHECK(!ec, "{}: cannot move aside: {}", final_dir.string(), ec.message());
    fs::rename(tmp, final_dir, ec);
    G4_CHECK(!ec, "{}: cannot rename into place: {}", final_dir.string(), ec.message());
    fs::remove_all(old, ec);
  } else {
    fs::rename(tmp, final_dir, ec);
    G4_CHECK(!ec, "{}: cannot rename into place: {}", final_dir.string(), ec.message());
  }
}

void CheckpointManager::prune(int64_t keep_last) {
  if (keep_last <= 0) return;
  auto s = steps();
  if (int64_t(s.size()) <= keep_last) return;
  for (size_t i = 0; i + size_t(keep_last) < s.size(); ++i) {
    std::error_code ec;
    fs::remove_all(step_dir(s[i]), ec);
    G4_CHECK(!ec, "{}: cannot delete old checkpoint: {}", step_dir(s[i]), ec.message());
  }
}

void CheckpointManager::remove_stale_temps() {
  std::error_code ec;
  if (!fs::is_directory(dir_, ec)) return;
  static const std::regex re("\\.(tmp|old)_step_([0-9]{1,18})\\.[0-9]+");
  std::vector<fs::path> paths;
  for (const auto& e : fs::directory_iterator(dir_, ec)) paths.push_back(e.path());
  for (const auto& p : paths) {
    std::string name = p.filename().string();
    std::smatch m;
    if (!fs::is_directory(p, ec) || !std::regex_match(name, m, re)) continue;
    // An `old` directory is a complete checkpoint that was being replaced: put it back if the
    // replacement never arrived.
    fs::path final_dir = step_dir(std::stoll(m[2].str()));
    if (m[1].str() == "old" && !fs::exists(final_dir)) fs::rename(p, final_dir, ec);
    else fs::remove_all(p, ec);
  }
}

}  // namespace gemma4
