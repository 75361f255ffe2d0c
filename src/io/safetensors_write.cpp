// safetensors writer: compact JSON header padded with spaces to a multiple of 8 (as HF does, so the data
// block is 8-byte aligned), tensors packed in the given order, written to PATH.tmp, synced, then renamed.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "io/safetensors.h"

namespace gemma4 {

namespace {

// Writes all of buf, retrying short writes (one write() moves at most ~2 GiB).
void write_all(int fd, const void* buf, size_t n, const std::string& path) {
  const char* p = static_cast<const char*>(buf);
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw Error("{}: write failed: {}", path, std::strerror(errno));
    }
    p += w;
    n -= size_t(w);
  }
}

std::string make_header(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                        const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json h = nlohmann::ordered_json::object();
  if (!metadata.empty()) h["__metadata__"] = metadata;
  std::set<std::string> seen;
  size_t offset = 0;
  for (const auto& [name, t] : tensors) {
    if (name.empty()) throw Error("{}: a tensor has an empty name", path);
    if (name == "__metadata__") throw Error("{}: '__metadata__' is reserved and cannot name a tensor", path);
    if (!seen.insert(name).second) throw Error("{}: tensor '{}' appears twice", path, name);
    if (t.device != Device::CPU) throw Error("{}: tensor '{}' is not on the CPU", path, name);
    for (auto d : t.shape)
      if (d < 0) throw Error("{}: tensor '{}': negative dimension in shape {}", path, name, shape_str(t.shape));
    if (t.data == nullptr && t.numel() != 0) throw Error("{}: tensor '{}' has no data", path, name);
    size_t n = t.nbytes();
    h[name] = {{"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + n}}};
    offset += n;
  }
  std::string s;
  try {
    s = h.dump();  // compact; throws on names that are not valid UTF-8
  } catch (const nlohmann::json::exception& e) {
    throw Error("{}: cannot encode header: {}", path, e.what());
  }
  s.append((8 - s.size() % 8) % 8, ' ');
  return s;
}

}  // namespace

void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  std::string header = make_header(path, tensors, metadata);
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw Error("{}: cannot create: {}", tmp, std::strerror(errno));
  try {
    uint64_t n = header.size();  // little-endian host (checked in safetensors.cpp)
    write_all(fd, &n, 8, tmp);
    write_all(fd, header.data(), header.size(), tmp);
    for (const auto& [name, t] : tensors) write_all(fd, t.data, t.nbytes(), tmp);
    if (::fsync(fd) != 0) throw Error("{}: fsync failed: {}", tmp, std::strerror(errno));
  } catch (...) {
    ::close(fd);
    std::remove(tmp.c_str());
    throw;
  }
  if (::close(fd) != 0) {
    int err = errno;
    std::remove(tmp.c_str());
    throw Error("{}: close failed: {}", tmp, std::strerror(err));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    std::remove(tmp.c_str());
    throw Error("{}: cannot rename {} into place: {}", path, tmp, std::strerror(err));
  }
}

}  // namespace gemma4
