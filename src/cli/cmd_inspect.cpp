// gemma4 inspect DIR [--list]: architecture, parameter count and key accounting of a checkpoint directory.
// The accounting is printed to stdout even when the checkpoint is invalid; then the first problem goes to stderr
// (exit 1).
#include <cstdio>
#include <map>

#include "cli/args.h"
#include "cli/command.h"
#include "io/safetensors.h"
#include "model/keymap.h"

namespace gemma4::cli {
namespace {

std::string thousands(int64_t n) {
  std::string s = std::to_string(n), out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i && (s.size() - i) % 3 == 0) out += ',';
    out += s[i];
  }
  return out;
}

// "0-4, 6-10, 47"
std::string ranges(const std::vector<int>& idx) {
  std::string out;
  for (size_t i = 0; i < idx.size();) {
    size_t j = i;
    while (j + 1 < idx.size() && idx[j + 1] == idx[j] + 1) ++j;
    out += (out.empty() ? "" : ", ") + std::to_string(idx[i]);
    if (j > i) out += "-" + std::to_string(idx[j]);
    i = j + 1;
  }
  return out;
}

void print_architecture(const ModelConfig& cfg) {
  const TextConfig& t = cfg.text;
  std::printf("model_type: %s\n", cfg.model_type.c_str());
  std::printf("text: %d layers, hidden %d, vocab %lld, %d query heads, sliding window %d, softcap %g, %s embeddings\n",
              t.num_hidden_layers, t.hidden_size, (long long)t.vocab_size, t.num_attention_heads, t.sliding_window,
              t.final_logit_softcapping, t.tie_word_embeddings ? "tied" : "untied");
  if (t.hidden_size_per_layer_input > 0)
    std::printf("per-layer embeddings: %d per layer, vocab %lld\n", t.hidden_size_per_layer_input,
                (long long)t.vocab_size_per_layer_input);
  if (t.enable_moe_block)
    std::printf("moe: %d experts, top %d, expert width %d\n", t.num_experts, t.top_k_experts, t.moe_intermediate_size);
  // Layer table: one line per distinct layer geometry, with the layer indices that have it.
  std::map<std::string, std::vector<int>> groups;
  std::vector<std::string> order;
  auto specs = t.layers();
  for (int i = 0; i < int(specs.size()); ++i) {
    const LayerSpec& s = specs[i];
    const RopeParams& r = s.type == LayerType::Full ? t.rope_full : t.rope_sliding;
    std::string key = fmt::format("{:<7} head_dim {:>3}  kv_heads {:>2}{}  mlp {}{}  rope {} theta {:g}{}{}",
                                  s.type == LayerType::Full ? "full" : "sliding", s.head_dim, s.num_kv_heads,
                                  s.k_eq_v ? " (k=v)" : "", s.intermediate_size, s.has_moe ? " + moe" : "", r.type,
                                  r.theta, r.type == "proportional" ? fmt::format(" x{:g}", r.partial_rotary_factor) : "",
                                  s.kv_source >= 0 ? fmt::format("  kv from layer {}", s.kv_source) : "");
    if (!groups.count(key)) order.push_back(key);
    groups[key].push_back(i);
  }
  std::printf("layers:\n");
  for (const auto& k : order) std::printf("  %3zu x %s  [%s]\n", groups[k].size(), k.c_str(), ranges(groups[k]).c_str());
  if (cfg.vision)
    std::printf("vision embedder: %d-px patches, dim %d, position table %d\n",
                cfg.vision->patch_size * cfg.vision->pooling_kernel_size, cfg.vision->mm_embed_dim,
                cfg.vision->mm_posemb_size);
  if (cfg.audio) std::printf("audio embedder: %d samples per token\n", cfg.audio->audio_embed_dim);
  if (cfg.has_vision_tower || cfg.has_audio_tower)
    std::printf("towers (not implemented; weights skipped):%s%s\n", cfg.has_vision_tower ? " vision" : "",
                cfg.has_audio_tower ? " audio" : "");
  auto eos = cfg.eos_ids();
  std::printf("eos ids:%s\n", fmt::format(" {}", fmt::join(eos, " ")).c_str());
  std::printf("parameters (text): %s\n", thousands(text_parameter_count(cfg)).c_str());
}

void print_list(const char* label, const std::vector<std::string>& names, bool names_too) {
  std::printf("%s: %zu\n", label, names.size());
  if (names_too)
    for (const auto& n : names) std::printf("  %s\n", n.c_str());
}

int run_inspect(const std::vector<std::string>& argv) {
  Args a(argv, {}, {"--list"}, "gemma4 inspect DIR [--list]");
  if (a.positionals().size() != 1) throw UsageError("usage: {}", a.usage());
  const std::string dir = a.positionals()[0];
  bool list = a.has("--list");

  ModelConfig cfg = ModelConfig::from_dir(dir);
  TensorStore store = TensorStore::open(dir);
  print_architecture(cfg);

  std::map<std::string, size_t> dtypes;
  for (const auto& n : store.names()) dtypes[dtype_name(store.info(n).dtype)]++;
  std::string dts;
  for (const auto& [d, c] : dtypes) dts += fmt::format(" {} x{}", d, c);
  std::printf("stored tensors: %zu (%s )\n", store.size(), dts.c_str());

  KeyAccounting acct;
  std::string error;
  try {
    bind_weights(cfg, store, acct);
  } catch (const Error& e) {
    error = e.what();
  }
  std::printf("layout: %s\n", layout_name(acct.layout));
  print_list("used", acct.used, list);
  for (const auto& [modality, names] : acct.skipped) print_list(("skipped " + modality).c_str(), names, list);
  print_list("missing", acct.missing, true);
  print_list("bad shape", acct.bad_shape, true);
  print_list("unexpected", acct.unexpected, true);
  std::fflush(stdout);
  if (!error.empty()) throw Error(error);
  std::printf("status: ok\n");
  return 0;
}

}  // namespace
G4_COMMAND("inspect", "print a checkpoint's architecture, parameter count and tensor accounting", run_inspect);
}  // namespace gemma4::cli
