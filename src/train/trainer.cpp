#include "train/trainer.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <memory>
#include <optional>

#include "model/keymap.h"
#include "model/model.h"
#include "model/registry.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"
#include "train/checkpoint.h"
#include "train/data.h"
#include "train/grad.h"
#include "train/lr_schedule.h"
#include "train/metrics.h"
#include "train/optimizer.h"
#include "train/progress.h"

namespace gemma4 {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

constexpr int kStateFormat = 1;

struct LoadedModel {
  std::unique_ptr<Model> model;
  Layout layout = Layout::CausalLM;
};

// The model of the recipe with every parameter converted to an owned F32 copy (the master weights).
LoadedModel load_model(const RecipeConfig& cfg) {
  G4_CHECK(cfg.model.dtype == "float32", "model.dtype: '{}' is not supported on CPU (supported: float32)", cfg.model.dtype);
  G4_CHECK(cfg.trainer.dtype == "float32", "trainer.dtype: '{}' is not supported on CPU (supported: float32)",
           cfg.trainer.dtype);
  LoadedModel lm;
  if (!cfg.model.path.empty()) {
    lm.model = Model::load(cfg.model.path);
    lm.layout = lm.model->accounting().layout;
  } else {
    G4_CHECK(!cfg.model.arch.empty(), "model: give model.path (a checkpoint directory) or model.arch (random init)");
    ModelConfig mc = arch_config(cfg.model.arch);
    lm.model = std::make_unique<Model>(mc, random_weights(mc, DType::F32, cfg.common.seed));
    lm.layout = mc.is_unified ? Layout::UnifiedConditional : Layout::CausalLM;
  }
  const ModelConfig& mc = lm.model->config();
  Weights& w = lm.model->mutable_weights();
  BindOptions opt{w.vision.projection.data != nullptr, w.audio_projection.data != nullptr};
  for_each_parameter(mc, lm.layout, opt, w, [&](const ExpectedTensor& e, Tensor& t) {
    G4_CHECK(t.data != nullptr, "model: parameter '{}' is not loaded", e.name);
    t = t.to_f32();
  });
  if (mc.text.tie_word_embeddings) w.lm_head = w.embed_tokens;
  return lm;
}

std::string tokenizer_source(const RecipeConfig& cfg) {
  std::string p = cfg.tokenizer.path.empty() ? cfg.model.path : cfg.tokenizer.path;
  G4_CHECK(!p.empty(), "tokenizer.path: required when model.path is empty");
  return p;
}

// The chat template: tokenizer.chat_template when given, else from the model (or tokenizer) directory. It
// must load when the recipe asks for chat data; otherwise it is optional (only chat records need it).
std::optional<ChatTemplate> load_template(const RecipeConfig& cfg, const std::string& tok_path) {
  if (!cfg.tokenizer.chat_template.empty()) return ChatTemplate::load(cfg.tokenizer.chat_template);
  std::string src = !cfg.model.path.empty() ? cfg.model.path
                    : fs::is_directory(tok_path) ? tok_path
                                                 : fs::path(tok_path).parent_path().string();
  bool required = cfg.dataset.chat_mode || cfg.dataset.format == "chat";
  if (required) return ChatTemplate::load(src.empty() ? "." : src);
  if (src.empty() || !(fs::exists(fs::path(src) / "chat_template.jinja") || fs::exists(fs::path(src) / "tokenizer_config.json")))
    return std::nullopt;
  try {
    return ChatTemplate::load(src);
  } catch (const Error&) {
    return std::nullopt;  // a tokenizer_config.json without a template: fine unless chat records come
  }
}

// Tokenizer and chat-template files next to the exported model, so that it can be used directly (generate,
// chat): tokenizer.json from tokenizer.path; tokenizer_config.json / chat_template.jinja / special_tokens_map.json
// from the tokenizer's directory, else the model directory; an explicit tokenizer.chat_template file wins.
void copy_tokenizer_files(const RecipeConfig& cfg, const std::string& tok_path, const fs::path& dst) {
  std::error_code ec;
  auto copy = [&](const fs::path& from, const fs::path& to) {
    fs::copy_file(from, to, fs::copy_options::overwrite_existing, ec);
    G4_CHECK(!ec, "{}: cannot copy to {}: {}", from.string(), to.string(), ec.message());
  };
  bool tok_is_dir = fs::is_directory(tok_path);
  copy(tok_is_dir ? fs::path(tok_path) / "tokenizer.json" : fs::path(tok_path), dst / "tokenizer.json");
  std::vector<fs::path> dirs{tok_is_dir ? fs::path(tok_path) : fs::path(tok_path).parent_path()};
  if (!cfg.model.path.empty()) dirs.push_back(cfg.model.path);
  for (const char* name : {"tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json"})
    for (const auto& d : dirs)
      if (!d.empty() && fs::is_regular_file(d / name)) {
        copy(d / name, dst / name);
        break;
      }
  const std::string& t = cfg.tokenizer.chat_template;
  if (!t.empty() && fs::is_regular_file(t)) {
    if (fs::path(t).extension() == ".jinja") copy(t, dst / "chat_template.jinja");
    else if (fs::path(t).filename() == "tokenizer_config.json") copy(t, dst / "tokenizer_config.json");
  } else if (!t.empty() && fs::is_directory(t)) {
    for (const char* name : {"chat_template.jinja", "tokenizer_config.json"})
      if (fs::is_regular_file(fs::path(t) / name)) copy(fs::path(t) / name, dst / name);
  }
}

void export_hf(const RecipeConfig& cfg, const fs::path& out_dir, const Model& model, Layout layout,
               const std::string& tok_path) {
  fs::path final_dir = out_dir / "hf", tmp = out_dir / ".tmp_hf";
  std::error_code ec;
  fs::remove_all(tmp, ec);
  ModelConfig mc = model.config();
  mc.torch_dtype = "float32";  // the exported weights are the F32 master copy
  save_checkpoint(tmp.string(), mc, model.weights(), layout);
  copy_tokenizer_files(cfg, tok_path, tmp);
  fs::path old = out_dir / ".old_hf";
  fs::remove_all(old, ec);
  if (fs::exists(final_dir)) {
    fs::rename(final_dir, old, ec);
    G4_CHECK(!ec, "{}: cannot move aside: {}", final_dir.string(), ec.message());
  }
  fs::rename(tmp, final_dir, ec);
  G4_CHECK(!ec, "{}: cannot rename into place: {}", final_dir.string(), ec.message());
  fs::remove_all(old, ec);
}

std::string plain_count(int64_t n) {
  std::string s = std::to_string(n);
  for (int i = int(s.size()) - 3; i > 0; i -= 3) s.insert(size_t(i), ",");
  return s;
}

}  // namespace

int run_sft(const RecipeConfig& cfg, const std::string& output_dir, const SftHooks& hooks) {
  const auto t_start = Clock::now();
  const auto& rg = cfg.regime;
  G4_CHECK(rg.num_steps >= 1, "regime.num_steps must be >= 1, got {}", rg.num_steps);
  G4_CHECK(cfg.trainer.grad_accumulation >= 1, "trainer.grad_accumulation must be >= 1, got {}",
           cfg.trainer.grad_accumulation);
  G4_CHECK(cfg.optimizer.name == "adamw", "optimizer.name: '{}' is not supported (supported: adamw)", cfg.optimizer.name);
  G4_CHECK(cfg.optimizer.betas.size() == 2, "optimizer.betas must hold 2 numbers, got {}", cfg.optimizer.betas.size());
  G4_CHECK(!output_dir.empty(), "the output directory is empty");
  const CosineAnnealingLR sched = make_lr_schedule(cfg);

  fs::path out(output_dir);
  std::error_code ec;
  fs::create_directories(out, ec);
  G4_CHECK(!ec, "{}: cannot create directory: {}", output_dir, ec.message());
  G4_CHECK(fs::is_directory(out), "{}: not a directory", output_dir);
  MetricRecorder recorder(output_dir, cfg.common.metric_recorders);  // validates the names before any work
  write_file_atomic((out / "config.yaml").string(), dump_recipe(cfg));

  // Model, tokenizer, data.
  LoadedModel lm = load_model(cfg);
  Model& model = *lm.model;
  const ModelConfig& mc = model.config();
  std::string tok_path = tokenizer_source(cfg);
  auto tok = Tokenizer::load(tok_path);
  G4_CHECK(tok->vocab_size() <= mc.text.vocab_size, "{}: the tokenizer has {} tokens but the model's vocabulary is {}",
           tok_path, tok->vocab_size(), mc.text.vocab_size);
  std::optional<ChatTemplate> tmpl = load_template(cfg, tok_path);
  SftData data = load_sft_data(cfg, *tok, tmpl ? &*tmpl : nullptr);
  G4_CHECK(data.train != nullptr, "dataset: no training data");

  Weights grads = zeros_like(mc, model.weights());
  std::vector<ParamRef> params = collect_params(mc, lm.layout, model.mutable_weights(), grads);
  int64_t num_params = 0;
  for (const auto& p : params) num_params += p.param.numel();
  AdamW opt(params, AdamWConfig{cfg.optimizer.betas[0], cfg.optimizer.betas[1], cfg.optimizer.eps,
                                cfg.optimizer.weight_decay});

  CheckpointManager ckpt((out / "checkpoints").string());
  ckpt.remove_stale_temps();
  // Checkpoints hold the whole text model (trained parameters and the frozen layer_scalar buffers).
  std::vector<std::pair<std::string, Tensor>> model_tensors;
  for_each_parameter(mc, lm.layout, BindOptions{false, false}, model.mutable_weights(),
                     [&](const ExpectedTensor& e, Tensor& t) { model_tensors.emplace_back(e.name, t); });

  std::FILE* log = stderr;
  std::fprintf(log, "sft: model %s (%s trained parameters, layout %s), train: %s examples", 
               cfg.model.path.empty() ? ("arch " + cfg.model.arch).c_str() : cfg.model.path.c_str(),
               plain_count(num_params).c_str(), layout_name(lm.layout), plain_count(data.train_stats.num_examples).c_str());
  if (data.train_stats.skipped_too_long) std::fprintf(log, " (%lld longer than max_seq_len skipped)", (long long)data.train_stats.skipped_too_long);
  if (data.train_stats.malformed) std::fprintf(log, " (%lld malformed skipped)", (long long)data.train_stats.malformed);
  std::fprintf(log, ", valid: %s examples\n", plain_count(data.valid_stats.num_examples).c_str());
  for (const auto& m : data.train_stats.messages) std::fprintf(log, "sft: %s\n", m.c_str());
  for (const auto& m : data.valid_stats.messages) std::fprintf(log, "sft: %s\n", m.c_str());

  // Resume.
  int64_t step = 0, data_epoch = 1;  // data_epoch is 1-based, as fairseq2 reports it
  double base_total_time = 0;
  MetricBag bag;
  if (auto last = ckpt.last_step()) {
    std::string dir = ckpt.step_dir(*last);
    nlohmann::json st = read_json_file(dir + "/trainer_state.json");
    try {
      G4_CHECK(st.at("format").get<int>() == kStateFormat, "unsupported format {}", st.at("format").dump());
      step = st.at("step").get<int64_t>();
      data_epoch = st.at("data_epoch").get<int64_t>();
      base_total_time = st.at("total_time").get<double>();
      bag = MetricBag::from_json(st.at("metric_bag"));
      G4_CHECK(step == *last, "step {} but the directory is step_{}", step, *last);
      data.train->restore(st.at("data_state"));
    } catch (const Error& e) {
      throw Error("{}/trainer_state.json: {}", dir, e.what());
    } catch (const std::exception& e) {
      throw Error("{}/trainer_state.json: malformed: {}", dir, e.what());
    }
    load_tensors_into(dir + "/model.safetensors", model_tensors);
    opt.load_state(dir + "/optimizer.safetensors");
    G4_CHECK(opt.step_count() == step, "{}: optimizer state is at step {} but the trainer at step {}", dir,
             opt.step_count(), step);
    recorder.resume_at(step);
    std::fprintf(log, "sft: resuming from %s\n", dir.c_str());
    if (step >= rg.num_steps) {
      std::fprintf(log, "sft: the checkpoint is at step %lld: nothing left to train (regime.num_steps %lld)\n",
                   (long long)step, (long long)rg.num_steps);
    }
  }

  ProgressReporter progress(rg.num_steps, step);
  auto every = [](int64_t n, int64_t s) { return n > 0 && s % n == 0; };
  double last_lr = step > 0 ? sched.lr_at(step - 1) : 0.0;
  int64_t run_elements = 0;
  const auto t_train = Clock::now();

  auto validate = [&](int64_t at) {
    if (data.valid.empty()) return;
    auto t0 = Clock::now();
    MetricBag vb;
    for (const Batch& b : data.valid) {
      LossStats bs;
      for (const Example& ex : b.examples) bs += evaluate_loss(model, ex);
      vb.add_batch(b, bs);
      ++vb.num_steps;
    }
    nlohmann::ordered_json v = valid_values(vb, at, seconds_since(t0), seconds_since(t_start));
    recorder.record("valid", v);
    progress.message(fmt::format("validation after step {}: nll_loss {:.4f} over {} target tokens", at,
                                 v["nll_loss"].get<double>(), vb.num_target_elements));
  };

  auto save = [&]() {
    CheckpointContents c;
    c.model = model_tensors;
    c.optimizer = opt.state_tensors();
    c.optimizer_metadata = opt.state_metadata();
    c.trainer_state = {{"format", kStateFormat},
                       {"step", step},
                       {"data_epoch", data_epoch},
                       {"data_state", data.train->state()},
                       {"metric_bag", bag.to_json()},
                       {"total_time", base_total_time + seconds_since(t_start)},
                       {"seed", cfg.common.seed},
                       {"lr", last_lr}};
    ckpt.save(step, c);
    ckpt.prune(rg.keep_last_n_checkpoints);
  };

  bool end_of_data = false;
  while (step < rg.num_steps) {
    // Data.
    auto t_data = Clock::now();
    std::vector<Batch> batches;
    for (int64_t k = 0; k < cfg.trainer.grad_accumulation; ++k) batches.push_back(data.train->next());
    bag.data_time += seconds_since(t_data);
    if (rg.num_data_epochs && data.train->epoch() >= *rg.num_data_epochs) {
      end_of_data = true;
      break;
    }
    data_epoch = data.train->epoch() + 1;

    // Forward/backward over the micro-batches, one sequence at a time.
    auto t_compute = Clock::now();
    zero_grads(mc, grads);
    LossStats step_stats;
    for (const Batch& b : batches) {
      LossStats bs;
      for (const Example& ex : b.examples) bs += forward_backward(model, ex, grads);
      bag.add_batch(b, bs);
      step_stats += bs;
      run_elements += b.num_elements;
    }
    if (step_stats.num_targets > 0) divide_grads(params, double(step_stats.num_targets));
    double gn = clip_grad_norm(params, cfg.trainer.max_grad_norm);
    G4_CHECK(std::isfinite(gn), "step {}: the gradient norm is {}; stopping before the weights are corrupted", step + 1,
             gn);
    last_lr = sched.lr_at(step);
    opt.step(last_lr);
    ++step;
    bag.add_step(gn);
    bag.compute_time += seconds_since(t_compute);
    double step_loss = step_stats.num_targets > 0 ? step_stats.nll_sum / double(step_stats.num_targets) : 0.0;
    progress.step(step, step_loss, last_lr);

    // Post-step: publish, validate, checkpoint.
    bool last = step == rg.num_steps;
    if (last || every(rg.publish_metrics_every_n_steps, step)) {
      double wall = seconds_since(t_start);
      nlohmann::ordered_json v = train_values(bag, step, last_lr, data_epoch, wall, base_total_time + wall);
      recorder.record("train", v);
      if (!progress.tty())
        progress.message(fmt::format("{} grad_norm {:.4f}", progress.bar_line(step, v["nll_loss"].get<double>(), last_lr,
                                                                              progress.elapsed()),
                                     v["grad_norm"].get<double>()));
      bag.reset_window();
    }
    if (last || every(rg.validate_every_n_steps, step)) validate(step);
    if (last || every(rg.checkpoint_every_n_steps, step)) save();
    if (hooks.after_step) hooks.after_step(step);
  }
  if (end_of_data) {
    progress.message(fmt::format("end of data: {} epochs done after step {}", *rg.num_data_epochs, step));
    if (step > 0 && ckpt.last_step() != step) {
      double wall = seconds_since(t_start);
      if (bag.num_steps > 0) {
        recorder.record("train", train_values(bag, step, last_lr, data_epoch, wall, base_total_time + wall));
        bag.reset_window();
      }
      validate(step);
      save();
    }
  }
  progress.finish();
  double train_secs = seconds_since(t_train);
  if (run_elements > 0)
    std::fprintf(log, "sft: %s tokens in %.1f s (%.0f tokens/s)\n", plain_count(run_elements).c_str(), train_secs,
                 double(run_elements) / std::max(train_secs, 1e-9));

  if (rg.export_hf && step > 0) {
    export_hf(cfg, out, model, lm.layout, tok_path);
    std::fprintf(log, "sft: exported the model to %s\n", (out / "hf").string().c_str());
  }
  return 0;
}

}  // namespace gemma4
