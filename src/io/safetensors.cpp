// safetensors reader: the whole file is mapped read-only; tensors are views into the mapping.
// The header is validated completely before anything is handed out, so a view never points outside the file.
#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

namespace gemma4 {

static_assert(std::endian::native == std::endian::little, "safetensors is little-endian; big-endian hosts unsupported");

namespace {

using json = nlohmann::json;

// Largest header we accept (HF's reader uses the same 100 MB limit); real 12B headers are ~100 KB.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

// A non-negative JSON integer that fits in uint64 (nlohmann stores those as number_unsigned).
bool is_count(const json& v) { return v.is_number_unsigned(); }

// A key given twice in one object would silently keep only one value; the DOM parser cannot tell, so a SAX pass
// looks (nlohmann's parse callback could, but it is quadratic in the number of keys).
struct DuplicateKeyFinder : json::json_sax_t {
  std::vector<std::set<std::string>> open_objects;
  std::optional<std::string> duplicate;
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override { open_objects.emplace_back(); return true; }
  bool end_object() override { open_objects.pop_back(); return true; }
  bool start_array(std::size_t) override { return true; }
  bool end_array() override { return true; }
  bool key(string_t& k) override {
    if (open_objects.back().insert(k).second) return true;
    duplicate = k;
    return false;  // stop at the first one
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override { return false; }
};

std::optional<std::string> first_duplicate_key(const char* begin, const char* end) {
  DuplicateKeyFinder finder;
  json::sax_parse(begin, end, &finder);
  return finder.duplicate;
}

TensorInfo parse_entry(const std::string& path, const std::string& name, const json& e, size_t data_bytes) {
  auto fail = [&](const std::string& what) { return Error("{}: tensor '{}': {}", path, name, what); };
  if (!e.is_object()) throw fail("header entry is not an object");
  for (auto it = e.begin(); it != e.end(); ++it)
    if (it.key() != "dtype" && it.key() != "shape" && it.key() != "data_offsets")
      throw fail(fmt::format("unexpected header field '{}'", it.key()));
  if (!e.contains("dtype") || !e["dtype"].is_string()) throw fail("'dtype' missing or not a string");
  if (!e.contains("shape") || !e["shape"].is_array()) throw fail("'shape' missing or not an array");
  if (!e.contains("data_offsets") || !e["data_offsets"].is_array() || e["data_offsets"].size() != 2 ||
      !is_count(e["data_offsets"][0]) || !is_count(e["data_offsets"][1]))
    throw fail("'data_offsets' missing or not two non-negative integers");

  TensorInfo info;
  info.name = name;
  std::string dt = e["dtype"].get<std::string>();
  auto parsed = dtype_from_name(dt);
  if (!parsed) throw fail(fmt::format("unsupported dtype '{}' (supported: F32 F64 BF16 F16 I64 I32 U8 BOOL)", dt));
  info.dtype = *parsed;

  // numel * dtype size, with overflow checks: a lying shape must not wrap around to a small number.
  uint64_t bytes = dtype_size(info.dtype);
  for (const auto& d : e["shape"]) {
    if (!is_count(d) || d.get<uint64_t>() > uint64_t(INT64_MAX)) throw fail("'shape' holds a value that is not a non-negative integer");
    uint64_t dim = d.get<uint64_t>();
    info.shape.push_back(int64_t(dim));
    if (__builtin_mul_overflow(bytes, dim, &bytes)) throw fail(fmt::format("shape {} is too large", e["shape"].dump()));
  }
  uint64_t b = e["data_offsets"][0].get<uint64_t>(), en = e["data_offsets"][1].get<uint64_t>();
  if (b > en) throw fail(fmt::format("data_offsets [{}, {}] begin after end", b, en));
  if (en > data_bytes)
    throw fail(fmt::format("data_offsets [{}, {}] reach past the data block of {} bytes", b, en, data_bytes));
  if (en - b != bytes)
    throw fail(fmt::format("data_offsets [{}, {}] but shape {} of {} needs {} bytes", b, en, shape_str(info.shape), dt,
                           bytes));
  info.begin = b;
  info.end = en;
  return info;
}

}  // namespace

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  std::shared_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = path;

  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error("{}: cannot open: {}", path, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    throw Error("{}: cannot stat: {}", path, std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error("{}: not a regular file", path);
  }
  f->file_size_ = size_t(st.st_size);
  if (f->file_size_ < 8) {
    ::close(fd);
    throw Error("{}: file is {} bytes, too short for a safetensors header", path, f->file_size_);
  }
  void* p = ::mmap(nullptr, f->file_size_, PROT_READ, MAP_PRIVATE, fd, 0);
  int map_err = errno;
  ::close(fd);  // the mapping stays valid after close
  if (p == MAP_FAILED) throw Error("{}: mmap failed: {}", path, std::strerror(map_err));
  size_t len = f->file_size_;
  f->mapping_ = std::shared_ptr<void>(p, [len](void* q) { ::munmap(q, len); });
  const char* base = static_cast<const char*>(p);

  uint64_t header_len;
  std::memcpy(&header_len, base, 8);
  if (header_len > f->file_size_ - 8)
    throw Error("{}: header length {} exceeds the file size {} (truncated or not a safetensors file)", path,
                header_len, f->file_size_);
  if (header_len > kMaxHeaderBytes) throw Error("{}: header length {} exceeds the {} byte limit", path, header_len, kMaxHeaderBytes);
  f->data_ = base + 8 + header_len;
  size_t data_bytes = f->file_size_ - 8 - header_len;

  json header;
  std::optional<std::string> duplicate;
  try {
    header = json::parse(base + 8, base + 8 + header_len);
    duplicate = first_duplicate_key(base + 8, base + 8 + header_len);
  } catch (const json::exception& e) {
    throw Error("{}: header is not valid JSON: {}", path, e.what());
  }
  if (duplicate) throw Error("{}: header repeats the key '{}'", path, *duplicate);
  if (!header.is_object()) throw Error("{}: header is not a JSON object", path);

  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it->is_object()) throw Error("{}: __metadata__ is not an object", path);
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string()) throw Error("{}: __metadata__ value of '{}' is not a string", path, m.key());
        f->metadata_[m.key()] = m->get<std::string>();
      }
      continue;
    }
    f->tensors_.emplace(it.key(), parse_entry(path, it.key(), *it, data_bytes));
  }

  // No two tensors may share bytes. Empty tensors own no bytes and may sit anywhere in range.
  std::vector<const TensorInfo*> by_offset;
  for (const auto& [name, info] : f->tensors_)
    if (info.end > info.begin) by_offset.push_back(&info);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const TensorInfo* a, const TensorInfo* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const TensorInfo &a = *by_offset[i - 1], &b = *by_offset[i];
    if (b.begin < a.end)
      throw Error("{}: tensor '{}': data_offsets [{}, {}] overlap tensor '{}' at [{}, {}]", path, b.name, b.begin, b.end,
                  a.name, a.begin, a.end);
  }
  return f;
}

SafetensorsFile::~SafetensorsFile() = default;

const TensorInfo& SafetensorsFile::info(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) throw Error("{}: no tensor '{}'", path_, name);
  return it->second;
}

Tensor SafetensorsFile::get(const std::string& name) const {
  const TensorInfo& i = info(name);
  Tensor t;
  t.dtype = i.dtype;
  t.shape = i.shape;
  // The mapping is PROT_READ: views are read-only even though Tensor::data is not const.
  t.data = const_cast<char*>(data_ + i.begin);
  t.owner = mapping_;
  t.device = Device::CPU;
  return t;
}

}  // namespace gemma4
