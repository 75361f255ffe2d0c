#include "train/metrics.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "train/tensorboard.h"

namespace gemma4 {

namespace fs = std::filesystem;

const std::set<std::string>& timing_metric_names() {
  static const std::set<std::string> s{"elements_per_second", "data_time", "compute_time", "wall_time", "total_time"};
  return s;
}

void MetricBag::add_batch(const Batch& b, const LossStats& s) {
  nll_sum += s.nll_sum;
  num_targets += s.num_targets;
  int64_t n = int64_t(b.examples.size());
  int64_t t = b.num_target_elements();
  int64_t pad = b.padded_elements - b.num_elements;
  num_examples += n, num_elements += b.num_elements, num_target_elements += t, padding += pad;
  total_num_examples += n, total_num_elements += b.num_elements, total_num_target_elements += t;
}

void MetricBag::reset_window() {
  MetricBag fresh;
  fresh.total_num_examples = total_num_examples;
  fresh.total_num_elements = total_num_elements;
  fresh.total_num_target_elements = total_num_target_elements;
  *this = fresh;
}

nlohmann::json MetricBag::to_json() const {
  return {{"nll_sum", nll_sum},
          {"num_targets", num_targets},
          {"num_examples", num_examples},
          {"num_elements", num_elements},
          {"num_target_elements", num_target_elements},
          {"padding", padding},
          {"grad_norm_sum", grad_norm_sum},
          {"num_steps", num_steps},
          {"total_num_examples", total_num_examples},
          {"total_num_elements", total_num_elements},
          {"total_num_target_elements", total_num_target_elements},
          {"data_time", data_time},
          {"compute_time", compute_time}};
}

MetricBag MetricBag::from_json(const nlohmann::json& j) {
  G4_CHECK(j.is_object(), "metric state: expected an object");
  MetricBag b;
  auto num = [&](const char* k) -> const nlohmann::json& {
    G4_CHECK(j.contains(k) && j.at(k).is_number(), "metric state: '{}' is missing or not a number", k);
    return j.at(k);
  };
  b.nll_sum = num("nll_sum").get<double>();
  b.num_targets = num("num_targets").get<int64_t>();
  b.num_examples = num("num_examples").get<int64_t>();
  b.num_elements = num("num_elements").get<int64_t>();
  b.num_target_elements = num("num_target_elements").get<int64_t>();
  b.padding = num("padding").get<int64_t>();
  b.grad_norm_sum = num("grad_norm_sum").get<double>();
  b.num_steps = num("num_steps").get<int64_t>();
  b.total_num_examples = num("total_num_examples").get<int64_t>();
  b.total_num_elements = num("total_num_elements").get<int64_t>();
  b.total_num_target_elements = num("total_num_target_elements").get<int64_t>();
  b.data_time = num("data_time").get<double>();
  b.compute_time = num("compute_time").get<double>();
  return b;
}

namespace {

void add_common(nlohmann::ordered_json& v, const MetricBag& b, double elapsed) {
  v["nll_loss"] = b.num_targets > 0 ? b.nll_sum / double(b.num_targets) : 0.0;
  v["num_examples"] = b.num_examples;
  v["num_elements"] = b.num_elements;
  v["num_target_elements"] = b.num_target_elements;
  v["padding"] = b.padding;
  v["batch_size"] = b.num_steps > 0 ? b.num_examples / b.num_steps : 0;
  v["elements_per_batch"] = b.num_steps > 0 ? b.num_elements / b.num_steps : 0;
  v["padding_ratio"] = b.num_elements > 0 ? double(b.padding) / double(b.num_elements + b.padding) : 0.0;
  v["elements_per_second"] = elapsed > 0 ? double(b.num_elements) / elapsed : 0.0;
}

}  // namespace

nlohmann::ordered_json train_values(const MetricBag& b, int64_t step, double lr, int64_t data_epoch, double wall_time,
                                    double total_time) {
  nlohmann::ordered_json v;
  v["step"] = step;
  add_common(v, b, b.data_time + b.compute_time);
  v["grad_norm"] = b.num_steps > 0 ? b.grad_norm_sum / double(b.num_steps) : 0.0;
  v["lr"] = lr;
  v["total_num_examples"] = b.total_num_examples;
  v["total_num_elements"] = b.total_num_elements;
  v["total_num_target_elements"] = b.total_num_target_elements;
  v["data_epoch"] = data_epoch;
  v["data_time"] = b.data_time;
  v["compute_time"] = b.compute_time;
  v["wall_time"] = wall_time;
  v["total_time"] = total_time;
  return v;
}

nlohmann::ordered_json valid_values(const MetricBag& b, int64_t step, double elapsed, double wall_time) {
  nlohmann::ordered_json v;
  v["step"] = step;
  add_common(v, b, elapsed);
  v["compute_time"] = elapsed;
  v["wall_time"] = wall_time;
  return v;
}

MetricRecorder::MetricRecorder(const std::string& output_dir, const std::string& recorders) : dir_(output_dir) {
  std::stringstream ss(recorders);
  std::string item;
  while (std::getline(ss, item, ',')) {
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (item == "jsonl") jsonl_ = true;
    else if (item == "tensorboard") tb_ = true;
    else if (item.empty() || item == "none") continue;
    else throw Error("common.metric_recorders: unknown recorder '{}' (known: jsonl, tensorboard, none)", item);
  }
}

MetricRecorder::~MetricRecorder() = default;

std::string MetricRecorder::jsonl_path(const std::string& run) const {
  return (fs::path(dir_) / "metrics" / (run + ".jsonl")).string();
}

void MetricRecorder::record(const std::string& run, const nlohmann::ordered_json& values) {
  G4_CHECK(values.contains("step"), "metric record without a step");
  int64_t step = values.at("step").get<int64_t>();
  if (jsonl_) {
    std::string path = jsonl_path(run);
    std::error_code ec;
    fs::create_directories(fs::path(path).parent_path(), ec);
    G4_CHECK(!ec, "{}: cannot create directory: {}", fs::path(path).parent_path().string(), ec.message());
    std::ofstream f(path, std::ios::app | std::ios::binary);
    G4_CHECK(f.good(), "{}: cannot open for appending", path);
    f << values.dump() << "\n";
    f.flush();
    G4_CHECK(f.good(), "{}: write failed", path);
  }
  if (tb_) {
    auto& w = tb_writers_[run];
    if (!w) {
      w = std::make_unique<TensorBoardWriter>((fs::path(dir_) / "tb" / run).string());
      if (resumed_step_ >= 0) w->add_session_start(resumed_step_ + 1);
    }
    std::vector<std::pair<std::string, float>> scalars;
    for (auto it = values.begin(); it != values.end(); ++it)
      if (it.key() != "step" && it.value().is_number()) scalars.emplace_back(it.key(), it.value().get<float>());
    w->add_scalars(step, scalars);
  }
}

std::vector<nlohmann::ordered_json> read_metrics_jsonl(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  G4_CHECK(f.good(), "{}: cannot read", path);
  std::vector<nlohmann::ordered_json> out;
  std::string line;
  int64_t n = 0;
  while (std::getline(f, line)) {
    ++n;
    if (line.empty()) continue;
    try {
      out.push_back(nlohmann::ordered_json::parse(line));
    } catch (const std::exception& e) {
      throw Error("{}:{}: malformed metrics record: {}", path, n, e.what());
    }
    G4_CHECK(out.back().is_object() && out.back().contains("step") && out.back()["step"].is_number_integer(),
             "{}:{}: metrics record without an integer 'step'", path, n);
  }
  return out;
}

void MetricRecorder::resume_at(int64_t step) {
  resumed_step_ = step;
  for (const char* run : {"train", "valid"}) {
    std::string path = jsonl_path(run);
    if (!fs::exists(path)) continue;
    // Keep every complete line up to `step`; a line cut short by the interruption is dropped.
    std::ifstream in(path, std::ios::binary);
    std::string line, kept;
    bool changed = false;
    while (std::getline(in, line)) {
      bool keep = false;
      try {
        auto j = nlohmann::json::parse(line);
        keep = j.is_object() && j.contains("step") && j["step"].is_number_integer() && j["step"].get<int64_t>() <= step;
      } catch (const std::exception&) {
        keep = false;
      }
      if (keep) kept += line + "\n";
      else changed = true;
    }
    in.close();
    if (!changed) continue;
    std::string tmp = path + ".tmp";
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      out << kept;
      out.flush();
      G4_CHECK(out.good(), "{}: write failed", tmp);
    }
    std::error_code ec;
    fs::rename(tmp, path, ec);
    G4_CHECK(!ec, "{}: cannot rename into place: {}", path, ec.message());
  }
}

}  // namespace gemma4
