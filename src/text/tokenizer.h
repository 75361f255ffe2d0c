// Hugging Face tokenizer.json (BPE with byte fallback, as Gemma 2/3/4 ship it) with byte-exact parity to
// HF `tokenizers`, and fairseq2's encode modes.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace gemma4 {

// fairseq2 semantics: default = bos + text + eos, prompt = bos + text, prompt_response = text + eos,
// as_is = text alone.
enum class EncodeMode { AsIs, Default, Prompt, PromptResponse };
EncodeMode parse_encode_mode(std::string_view s);  // throws UsageError on an unknown name

class Tokenizer {
 public:
  // PATH is a tokenizer.json file or a model directory holding one. Throws Error (naming the file and
  // the unsupported component, if any).
  static std::shared_ptr<Tokenizer> load(const std::string& path);
  virtual ~Tokenizer() = default;

  // HF `encode(text, add_special_tokens=False)`: added tokens matched first, then normalizer,
  // pre-tokenizer and BPE. Invalid UTF-8 input is an Error.
  virtual std::vector<int32_t> encode(std::string_view text) const = 0;
  std::vector<int32_t> encode(std::string_view text, EncodeMode mode) const;
  // HF `encode(text, add_special_tokens=True)`: encode() wrapped by the post-processor's template (Gemma: <bos>).
  virtual std::vector<int32_t> encode_with_special_tokens(std::string_view text) const = 0;
  // HF `decode(ids, skip_special_tokens=skip_special)`. An id outside [0, vocab_size) is an Error.
  virtual std::string decode(const std::vector<int32_t>& ids, bool skip_special = false) const = 0;

  virtual int64_t vocab_size() const = 0;  // 1 + the largest id (model and added tokens)
  virtual int32_t token_to_id(std::string_view token) const = 0;  // -1 if absent
  virtual std::string id_to_token(int32_t id) const = 0;
  virtual bool is_special(int32_t id) const = 0;
  // Ids of <bos>, <eos>, <pad> in the file (-1 when absent).
  int32_t bos_id() const { return bos_id_; }
  int32_t eos_id() const { return eos_id_; }
  int32_t pad_id() const { return pad_id_; }

 protected:
  int32_t bos_id_ = 2, eos_id_ = 1, pad_id_ = 0;
};

}  // namespace gemma4
