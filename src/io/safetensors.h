// safetensors reading (mmap, zero-copy views) and writing, plus checkpoint directories that are one file
// or several shards listed in model.safetensors.index.json.
//
// Format: 8-byte little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets:[b,e]},
// "__metadata__": {str: str}}, then the data block; offsets are relative to the data block.
// Validation: JSON well-formed, known dtype, offsets inside the file, no overlaps, (e-b) = numel * dtype size.
// Every error names the file and, where there is one, the tensor.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace gemma4 {

struct TensorInfo {
  std::string name;
  DType dtype;
  Shape shape;
  size_t begin = 0, end = 0;  // byte offsets into the data block
};

class SafetensorsFile {
 public:
  // Maps the file read-only and validates the header. Throws Error naming the file.
  static std::shared_ptr<SafetensorsFile> open(const std::string& path);
  ~SafetensorsFile();

  const std::string& path() const { return path_; }
  const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool has(const std::string& name) const { return tensors_.count(name) != 0; }
  const TensorInfo& info(const std::string& name) const;
  // Zero-copy view into the mapping; the view keeps the mapping alive.
  Tensor get(const std::string& name) const;

 private:
  SafetensorsFile() = default;
  std::string path_;
  std::map<std::string, TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
  std::shared_ptr<void> mapping_;  // munmap on release
  const char* data_ = nullptr;     // start of the data block
  size_t file_size_ = 0;
};

// Writes tensors (CPU, any supported dtype) in the given order. Written to PATH.tmp then renamed, so a
// crash never leaves a half-written file under the final name.
void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// All tensors of a checkpoint directory: model.safetensors, or the shards named by
// model.safetensors.index.json (every shard listed must exist; a tensor in two shards is an error;
// the index's weight_map must agree with the shards' contents). Also accepts a single .safetensors path.
class TensorStore {
 public:
  static TensorStore open(const std::string& dir_or_file);

  std::vector<std::string> names() const;  // sorted
  bool has(const std::string& name) const { return where_.count(name) != 0; }
  const TensorInfo& info(const std::string& name) const;
  Tensor get(const std::string& name) const;
  const std::string& file_of(const std::string& name) const;  // path of the shard holding it
  size_t size() const { return where_.size(); }

 private:
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::map<std::string, size_t> where_;  // name -> index into files_
};

}  // namespace gemma4
