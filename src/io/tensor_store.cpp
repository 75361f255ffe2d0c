// A checkpoint's tensors: one .safetensors file, or the shards named by model.safetensors.index.json,
// cross-checked against the index so that a stale or hand-edited index cannot silently drop or swap a tensor.
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "io/safetensors.h"

namespace gemma4 {

namespace fs = std::filesystem;

namespace {

std::map<std::string, std::string> read_weight_map(const std::string& index_path) {
  std::ifstream in(index_path, std::ios::binary);
  if (!in) throw Error("{}: cannot open", index_path);
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(ss.str());
  } catch (const nlohmann::json::exception& e) {
    throw Error("{}: not valid JSON: {}", index_path, e.what());
  }
  if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
    throw Error("{}: no 'weight_map' object", index_path);
  std::map<std::string, std::string> wm;
  for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
    if (!it->is_string() || it->get<std::string>().empty())
      throw Error("{}: weight_map entry '{}' is not a shard file name", index_path, it.key());
    wm[it.key()] = it->get<std::string>();
  }
  if (wm.empty()) throw Error("{}: weight_map lists no tensors", index_path);
  return wm;
}

}  // namespace

TensorStore TensorStore::open(const std::string& dir_or_file) {
  std::error_code ec;
  fs::path p(dir_or_file);
  TensorStore store;
  auto add_file = [&](std::shared_ptr<SafetensorsFile> f) {
    size_t idx = store.files_.size();
    for (const auto& [name, info] : f->tensors()) {
      auto [it, inserted] = store.where_.emplace(name, idx);
      if (!inserted)
        throw Error("tensor '{}' is in two shards: {} and {}", name, store.files_[it->second]->path(), f->path());
    }
    store.files_.push_back(std::move(f));
  };

  fs::path index_path;
  if (fs::is_directory(p, ec)) {
    if (fs::is_regular_file(p / "model.safetensors", ec)) {
      add_file(SafetensorsFile::open((p / "model.safetensors").string()));
      return store;
    }
    index_path = p / "model.safetensors.index.json";
    if (!fs::is_regular_file(index_path, ec))
      throw Error("{}: no model.safetensors or model.safetensors.index.json in this directory", dir_or_file);
  } else if (fs::is_regular_file(p, ec)) {
    if (p.filename().string().ends_with(".index.json")) {
      index_path = p;
    } else {
      add_file(SafetensorsFile::open(p.string()));
      return store;
    }
  } else {
    throw Error("{}: no such file or directory", dir_or_file);
  }

  // Sharded: open every shard the index names (each validates itself), then check both directions.
  std::string ipath = index_path.string();
  auto weight_map = read_weight_map(ipath);
  std::set<std::string> shards;
  for (const auto& [name, shard] : weight_map) shards.insert(shard);
  fs::path dir = index_path.parent_path();
  for (const auto& shard : shards) {
    fs::path sp = dir / shard;
    if (!fs::exists(sp, ec)) throw Error("{}: shard {} is missing ({})", ipath, shard, sp.string());
    add_file(SafetensorsFile::open(sp.string()));
  }
  for (const auto& [name, shard] : weight_map) {
    auto it = store.where_.find(name);
    if (it == store.where_.end() || store.files_[it->second]->path() != (dir / shard).string())
      throw Error("{}: tensor '{}' is listed in shard {} but is not there", ipath, name, shard);
  }
  for (const auto& [name, idx] : store.where_)
    if (!weight_map.count(name))
      throw Error("{}: tensor '{}' is in shard {} but not in the index's weight_map", ipath, name,
                  store.files_[idx]->path());
  return store;
}

std::vector<std::string> TensorStore::names() const {
  std::vector<std::string> out;
  out.reserve(where_.size());
  for (const auto& [name, idx] : where_) out.push_back(name);
  return out;
}

// The error for a name the checkpoint lacks.
static Error missing(const std::vector<std::shared_ptr<SafetensorsFile>>& files, const std::string& name) {
  if (files.empty()) return Error("no tensor '{}' (empty tensor store)", name);
  return Error("{}: no tensor '{}' in this checkpoint", files[0]->path(), name);
}

const TensorInfo& TensorStore::info(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) throw missing(files_, name);
  return files_[it->second]->info(name);
}

Tensor TensorStore::get(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) throw missing(files_, name);
  return files_[it->second]->get(name);
}

const std::string& TensorStore::file_of(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) throw missing(files_, name);
  return files_[it->second]->path();
}

}  // namespace gemma4
