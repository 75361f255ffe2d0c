// The normalizer, pre-tokenizer, decoder and post-processor components of tokenizer.json, each equal to its
// HF `tokenizers` counterpart. Supported: the ones Gemma 2/3/4 files use and their close relatives.
//   normalizer:     Replace (String pattern), Prepend, Sequence
//   pre_tokenizer:  Split (String pattern, every behavior, invert), Metaspace, Sequence
//   decoder:        Replace (String pattern), ByteFallback, Fuse, Strip, Metaspace, Sequence
//   post_processor: TemplateProcessing
// Anything else is an Error naming it ("tokenizer.json: unsupported normalizer type 'NFKC'").
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace gemma4::tok {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void normalize(std::string& s) const = 0;
};

// A piece of text on its way to the model. at_origin: it starts at offset 0 of the original input (what
// Metaspace's prepend_scheme "first" looks at).
struct PreToken {
  std::string text;
  bool at_origin = false;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Splits every piece in place; empty pieces are dropped (as HF's PreTokenizedString::split does).
  virtual void pre_tokenize(std::vector<PreToken>& pieces) const = 0;
};

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
};

// TemplateProcessing for a single sequence: the ids to put before and after it when add_special_tokens is true.
struct PostProcessor {
  std::vector<int32_t> prefix, suffix;
};

// `where` names the file for error messages. A null JSON value gives nullptr.
std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& j, const std::string& where);
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& j, const std::string& where);
std::unique_ptr<Decoder> make_decoder(const nlohmann::json& j, const std::string& where);
std::unique_ptr<PostProcessor> make_post_processor(const nlohmann::json& j, const std::string& where);

}  // namespace gemma4::tok
