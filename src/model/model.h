// A loaded Gemma 4 model: config + weights (zero-copy views of the checkpoint) + the forward pass written
// once against the Ops interface (forward.cpp). Spec §2 (text), §4 (embedders), §8 (family features).
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "model/config.h"
#include "model/keymap.h"
#include "model/kv_cache.h"
#include "model/tape.h"
#include "model/weights.h"
#include "ops/ops.h"

namespace gemma4 {

// Soft-token inputs of the Unified model (spec §4). Rows of pixel_values whose image_position_ids are
// (-1,-1) are padding and dropped; the remaining rows fill the image placeholder positions in order.
// Each row of input_features is one 640-sample audio frame and fills one audio placeholder position.
struct MultimodalInputs {
  Tensor pixel_values;        // F32 [N, patch_dim]
  Tensor image_position_ids;  // I64 [N, 2] (x, y)
  Tensor input_features;      // F32 [M, audio_embed_dim]
};

class Model {
 public:
  // Loads config.json (+ generation_config.json) and the safetensors of DIR with strict key accounting.
  // `device`: the backend that runs the forward (CUDA: the weights are uploaded once, in their stored dtype).
  // `precision` (GPU only; ops.h): nullopt = auto: BF16 on a GPU when the checkpoint is stored in bf16/f16,
  // else F32. The CPU always computes in fp32.
  static std::unique_ptr<Model> load(const std::string& dir, const BindOptions& opt = {}, Device device = Device::CPU,
                                     std::optional<Precision> precision = std::nullopt);
  // A model over given weights (random init for benchmarks, training). With a non-CPU `ops`, the weights
  // are copied to its device once; weights() keeps the host tensors (training and export read those).
  Model(ModelConfig cfg, Weights w, std::unique_ptr<Ops> ops = nullptr);

  const ModelConfig& config() const { return cfg_; }
  const Weights& weights() const { return w_; }
  // The weights the forward reads: weights() itself on the CPU, their device copies on a GPU backend.
  const Weights& device_weights() const { return dev_w_ ? *dev_w_ : w_; }
  Device device() const { return ops_->device(); }
  Weights& mutable_weights() { return w_; }
  const KeyAccounting& accounting() const { return acct_; }
  Ops& ops() { return *ops_; }

  // Runs ids (positions cache.length() ...) through the decoder, appending their K/V to `cache`.
  // Returns logits F32 [T, V] after the final softcap, for every position when all_logits, else only
  // for the last one ([1, V]). Ids must be < vocab_size (Error otherwise).
  // With a tape (training), the activations backward needs are recorded (cache must be fresh).
  // logits_on_device: the logits stay on the backend's device (for Ops::choose_tokens); on a GPU they are
  // valid until the next forward.
  Tensor forward(const std::vector<int64_t>& ids, KVCache& cache, const MultimodalInputs* mm = nullptr,
                 bool all_logits = true, Tape* tape = nullptr, bool logits_on_device = false);
  // Several sequences in one forward (text only, no tape): sequence b continues caches[b]. The rows of all
  // sequences go through every per-token op together (a decode step of B sequences reads each weight once);
  // attention and the caches work per sequence. Returns logits [sum T_b, V] (all_logits) or [B, V] (each
  // sequence's last position).
  Tensor forward_batch(const std::vector<std::vector<int64_t>>& seqs, const std::vector<KVCache*>& caches,
                       const MultimodalInputs* mm = nullptr, bool all_logits = false, Tape* tape = nullptr,
                       bool logits_on_device = false);
  // A decode step of one sequence whose input token is the backend's pending token (Ops::choose_tokens_pending,
  // not yet read by the host): the pipelined decode of generate(). Logits [1, V] on the device.
  // can_forward_pending(): whether this model and backend can (a backend with pending tokens, a GPU; no
  // per-layer embeddings, whose lookup runs on the host).
  bool can_forward_pending() const;
  Tensor forward_pending(KVCache& cache);
  // The same for B sequences (generate_batch): row b's token is pending token b. Logits [B, V] on the device.
  Tensor forward_pending_batch(const std::vector<KVCache*>& caches);
  const std::vector<LayerSpec>& layer_specs() const { return layers_; }
  // A cache on the model's device: BF16 rows on a GPU in bf16 precision, else F32.
  KVCache new_cache() const {
    const bool bf16 = ops_->device() != Device::CPU && ops_->precision() == Precision::BF16;
    return KVCache(cfg_.text, ops_.get(), bf16 ? DType::BF16 : DType::F32);
  }
  // Backward of a taped forward over `ids` (model/backward.cpp). logits: the forward's output (after the
  // softcap); dlogits: d loss / d logits. Parameter gradients are ADDED into grads (F32, shaped like the
  // weights; tied lm_head aliases embed_tokens). Weights must be F32.
  void backward(const Tape& tape, const Tensor& logits, const Tensor& dlogits, Weights& grads);

 private:
  void pack_gate_up();  // the constructor's (GPU backends): gate and up projections in one allocation a layer
  Tensor forward_impl(const std::vector<std::vector<int64_t>>& seqs, const std::vector<KVCache*>& caches,
                      const MultimodalInputs* mm, bool all_logits, Tape* tape, bool logits_on_device,
                      bool pending_input);
  ModelConfig cfg_;
  Weights w_;
  KeyAccounting acct_;
  std::unique_ptr<Ops> ops_;
  std::unique_ptr<Ops> host_ops_;   // CPU ops for the host-side parts when ops_ is a GPU backend
  std::unique_ptr<Weights> dev_w_;  // device copies of w_ (GPU backends only)
  std::vector<LayerSpec> layers_;
};

}  // namespace gemma4
