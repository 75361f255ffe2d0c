// One training sequence: token ids and the target mask (which tokens the model must learn to predict).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace gemma4 {

struct Example {
  std::vector<int64_t> ids;
  // target[t] = 1: ids[t] is a training target, predicted from ids[0..t-1] (target[0] is never used).
  std::vector<uint8_t> target;
  std::string origin;  // "file:line" of the record, for messages
  int64_t num_targets() const {
    int64_t n = 0;
    for (size_t t = 1; t < target.size(); ++t) n += target[t] != 0;
    return n;
  }
};

}  // namespace gemma4
