// Added tokens of tokenizer.json (HF AddedVocabulary): matched in the text before the model runs, leftmost-longest
// (as HF's Aho-Corasick does), with the single_word / lstrip / rstrip flags applied to each match.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "text/tokenizer_hash.h"

namespace gemma4::tok {

struct AddedToken {
  std::string content;
  bool single_word = false, lstrip = false, rstrip = false, normalized = true, special = false;
  bool operator==(const AddedToken&) const = default;
};

// A byte range of the text; id >= 0 when it is an added token.
struct TextSplit {
  size_t begin, end;
  int32_t id;
};

// Leftmost-longest matcher over a set of patterns.
class AddedMatcher {
 public:
  void add(std::string_view pattern, int32_t id);
  bool empty() const { return terminal_.size() <= 1; }
  // HF AddedVocabulary::find_matches: the text cut into pieces, the added tokens tagged with their ids.
  // `tokens` gives the flags of each id.
  void find(std::string_view text, const std::vector<const AddedToken*>& tokens, std::vector<TextSplit>& out) const;

 private:
  int32_t child(int32_t node, unsigned char b) const {
    const PairMap::Value* v = edges_.find(node, b);
    return v ? v->id : -1;
  }
  PairMap edges_;                      // (node, byte) -> child node
  std::vector<int32_t> terminal_{-1};  // node -> token id ending here, or -1 (node 0 is the root)
  bool can_start_[256] = {};
};

}  // namespace gemma4::tok
