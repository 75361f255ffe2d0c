#include "model/model.h"

#include <filesystem>

namespace gemma4 {

std::unique_ptr<Model> Model::load(const std::string& dir, const BindOptions& opt) {
  G4_CHECK(std::filesystem::is_directory(dir), "{}: not a model directory", dir);
  ModelConfig cfg = ModelConfig::from_dir(dir);
  TensorStore store = TensorStore::open(dir);
  KeyAccounting acct;
  Weights w = bind_weights(cfg, store, acct, opt);
  auto m = std::make_unique<Model>(std::move(cfg), std::move(w));
  m->acct_ = std::move(acct);
  return m;
}

Model::Model(ModelConfig cfg, Weights w, std::unique_ptr<Ops> ops)
    : cfg_(std::move(cfg)), w_(std::move(w)), ops_(ops ? std::move(ops) : make_cpu_ops()) {
  layers_ = cfg_.text.layers();
}

}  // namespace gemma4
