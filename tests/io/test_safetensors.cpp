// SafetensorsFile and save_safetensors: round trips, exact HF byte layout, zero-copy views, and every kind of
// corrupt or lying file giving a one-line Error that names the file (and the tensor).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "io/safetensors.h"
#include "io_test_helpers.h"
#include "test_util.h"

namespace gemma4::test {
namespace {

namespace fs = std::filesystem;

const DType kAllDtypes[] = {DType::F32, DType::BF16, DType::F16, DType::I64, DType::I32, DType::U8, DType::BOOL};

TEST(Safetensors, RoundTripEveryDtypeScalarAndEmptyAndMetadata) {
  std::string path = temp_dir() + "/all.safetensors";
  std::vector<std::pair<std::string, Tensor>> ts;
  uint32_t seed = 1;
  for (DType dt : kAllDtypes) {
    std::string n = dtype_name(dt);
    ts.push_back({n + ".matrix", random_tensor(dt, {3, 5}, seed++)});
    ts.push_back({n + ".scalar", random_tensor(dt, {}, seed++)});
    ts.push_back({n + ".empty", random_tensor(dt, {0, 4}, seed++)});
    ts.push_back({n + ".odd", random_tensor(dt, {7}, seed++)});  // odd sizes leave later tensors unaligned
  }
  ts.push_back({"ünïcode.名前", random_tensor(DType::F32, {2}, seed++)});
  std::map<std::string, std::string> meta = {{"format", "pt"}, {"note", "héllo \"quoted\""}};
  save_safetensors(path, ts, meta);
  EXPECT_FALSE(fs::exists(path + ".tmp"));

  auto f = SafetensorsFile::open(path);
  EXPECT_EQ(f->path(), path);
  EXPECT_EQ(f->metadata(), meta);
  ASSERT_EQ(f->tensors().size(), ts.size());
  size_t expected_offset = 0;
  for (const auto& [name, t] : ts) {
    ASSERT_TRUE(f->has(name)) << name;
    const TensorInfo& info = f->info(name);
    EXPECT_EQ(info.name, name);
    EXPECT_EQ(info.begin, expected_offset) << name << ": tensors are packed in the given order";
    expected_offset += t.nbytes();
    Tensor got = f->get(name);
    EXPECT_EQ(got.dtype, t.dtype) << name;
    EXPECT_EQ(got.shape, t.shape) << name;
    EXPECT_EQ(got.device, Device::CPU);
    EXPECT_TRUE(got.defined());
    EXPECT_EQ(tensor_bytes(got), tensor_bytes(t)) << name;
  }
  EXPECT_EQ(f->get("F32.scalar").numel(), 1);
  EXPECT_EQ(f->get("I64.empty").numel(), 0);
}

TEST(Safetensors, WritesHfByteLayout) {
  // What HF safetensors writes for {"a": F32 [2] = {1, 2}} with metadata {"format": "pt"}: metadata first,
  // compact JSON, keys dtype/shape/data_offsets, header padded with spaces to a multiple of 8.
  std::string path = temp_dir() + "/hf.safetensors";
  save_safetensors(path, {{"a", Tensor::from_f32({1.f, 2.f}, {2})}}, {{"format", "pt"}});
  std::string json =
      R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  std::string padded = json + std::string((8 - json.size() % 8) % 8, ' ');
  float data[2] = {1.f, 2.f};
  EXPECT_EQ(read_file(path), raw_safetensors(padded, std::string(reinterpret_cast<char*>(data), 8)));

  // No metadata: no __metadata__ key at all.
  save_safetensors(path, {{"b", Tensor::from_i64({7}, {1})}});
  std::string s = read_file(path);
  uint64_t n;
  std::memcpy(&n, s.data(), 8);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ(s.substr(8, n).find("__metadata__"), std::string::npos);
}

// The mapping that contains `p`, from /proc/self/maps: the path it maps, or "" when none.
std::string mapped_file_containing(const void* p) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  auto addr = reinterpret_cast<uintptr_t>(p);
  while (std::getline(maps, line)) {
    std::istringstream ls(line);
    std::string range, perms, off, dev, inode, file;
    ls >> range >> perms >> off >> dev >> inode >> file;
    uintptr_t lo = std::stoull(range.substr(0, range.find('-')), nullptr, 16);
    uintptr_t hi = std::stoull(range.substr(range.find('-') + 1), nullptr, 16);
    if (addr >= lo && addr < hi) return file;
  }
  return "";
}

TEST(Safetensors, ViewsAreZeroCopyAndKeepTheMappingAlive) {
  std::string path = fs::canonical(temp_dir()).string() + "/zc.safetensors";
  Tensor a = random_tensor(DType::BF16, {64, 32}, 11), b = random_tensor(DType::F32, {100}, 12);
  save_safetensors(path, {{"a", a}, {"b", b}});

  Tensor va, vb;
  {
    auto f = SafetensorsFile::open(path);
    va = f->get("a");
    vb = f->get("b");
    // Both views point into one mapping of this very file, at the header-declared offsets.
    EXPECT_EQ(mapped_file_containing(va.data), path);
    EXPECT_EQ(static_cast<char*>(vb.data) - static_cast<char*>(va.data), ptrdiff_t(a.nbytes()));
    EXPECT_EQ(va.owner.get(), vb.owner.get());
    std::string file = read_file(path);
    EXPECT_EQ(static_cast<char*>(va.data) - static_cast<char*>(va.owner.get()), ptrdiff_t(file.size() - a.nbytes() - b.nbytes()));
  }  // the SafetensorsFile is gone; the views still hold the mapping
  EXPECT_EQ(mapped_file_containing(va.data), path);
  EXPECT_EQ(tensor_bytes(va), tensor_bytes(a));
  EXPECT_EQ(tensor_bytes(vb), tensor_bytes(b));
  void* where = va.data;
  va = Tensor();
  EXPECT_EQ(mapped_file_containing(where), path);  // vb still holds it
  vb = Tensor();
  EXPECT_NE(mapped_file_containing(where), path);  // last view gone: unmapped
}

TEST(Safetensors, MissingTensorNamesFileAndTensor) {
  std::string path = temp_dir() + "/one.safetensors";
  save_safetensors(path, {{"x", Tensor::from_f32({1.f}, {1})}});
  auto f = SafetensorsFile::open(path);
  EXPECT_FALSE(f->has("y"));
  expect_error([&] { f->get("y"); }, {path, "'y'"});
  expect_error([&] { f->info("y"); }, {path, "'y'"});
}

// ---- writer errors ----

TEST(SafetensorsWrite, RejectsBadInputAndLeavesNoFiles) {
  std::string dir = temp_dir();
  std::string path = dir + "/w.safetensors";
  Tensor t = Tensor::from_f32({1.f, 2.f}, {2});
  expect_error([&] { save_safetensors(path, {{"x", t}, {"x", t}}); }, {path, "'x'", "twice"});
  Tensor gpu = t;
  gpu.device = Device::CUDA;
  expect_error([&] { save_safetensors(path, {{"ok", t}, {"g", gpu}}); }, {path, "'g'", "CPU"});
  expect_error([&] { save_safetensors(path, {{"__metadata__", t}}); }, {path, "__metadata__"});
  expect_error([&] { save_safetensors(path, {{"", t}}); }, {path, "empty name"});
  expect_error([&] { save_safetensors(path, {{"bad\xff", t}}); }, {path});  // not UTF-8
  EXPECT_TRUE(fs::is_empty(dir));
  expect_error([&] { save_safetensors(dir + "/no/such/dir/x.safetensors", {{"x", t}}); }, {"no/such/dir/x.safetensors.tmp"});

  // A failed save keeps the previous file intact.
  save_safetensors(path, {{"x", t}});
  std::string before = read_file(path);
  expect_error([&] { save_safetensors(path, {{"y", t}, {"y", t}}); }, {path});
  EXPECT_EQ(read_file(path), before);
  EXPECT_FALSE(fs::exists(path + ".tmp"));
}

// ---- corrupt and lying files ----

class SafetensorsBad : public ::testing::Test {
 protected:
  std::string dir = temp_dir();
  int n = 0;
  // Writes `bytes` to a fresh file and returns its path.
  std::string put(const std::string& bytes) {
    std::string p = dir + "/bad" + std::to_string(n++) + ".safetensors";
    write_file(p, bytes);
    return p;
  }
  void expect_open_error(const std::string& bytes, std::vector<std::string> parts) {
    std::string p = put(bytes);
    parts.insert(parts.begin(), p);
    expect_error([&] { SafetensorsFile::open(p); }, parts);
  }
  static std::string entry(const std::string& name, const std::string& dtype, const std::string& shape, size_t b,
                           size_t e) {
    return fmt::format(R"("{}":{{"dtype":"{}","shape":{},"data_offsets":[{},{}]}})", name, dtype, shape, b, e);
  }
};

TEST_F(SafetensorsBad, TruncatedFiles) {
  std::string good_path = dir + "/good.safetensors";
  save_safetensors(good_path, {{"w", random_tensor(DType::F32, {4, 4}, 3)}, {"v", random_tensor(DType::F32, {8}, 4)}});
  std::string good = read_file(good_path);
  ASSERT_NO_THROW(SafetensorsFile::open(good_path));
  expect_open_error("", {"too short"});
  expect_open_error(good.substr(0, 5), {"too short"});
  expect_open_error(good.substr(0, 8), {"header length"});                    // no header at all
  expect_open_error(good.substr(0, 40), {"header length", "exceeds"});        // cut in the header
  expect_open_error(good.substr(0, good.size() - 4), {"tensor 'v'", "past the data block"});  // cut in the data
}

TEST_F(SafetensorsBad, HeaderLengthLies) {
  std::string h = "{" + entry("x", "F32", "[1]", 0, 4) + "}";
  expect_open_error(raw_safetensors(h, "abcd", uint64_t(1) << 40), {"header length 1099511627776", "exceeds"});
  expect_open_error(raw_safetensors(h, "abcd", ~uint64_t(1)), {"header length", "exceeds"});  // 2^64 - 2
  // Length shorter than the JSON: the parse sees a cut-off document.
  expect_open_error(raw_safetensors(h, "abcd", h.size() - 3), {"not valid JSON"});
}

TEST_F(SafetensorsBad, MalformedJson) {
  expect_open_error(raw_safetensors(R"({"x":{"dtype":"F32",)", ""), {"not valid JSON"});
  expect_open_error(raw_safetensors("\xff\xfe garbage", ""), {"not valid JSON"});
  expect_open_error(raw_safetensors("[1,2]", ""), {"not a JSON object"});
  expect_open_error(raw_safetensors("{" + entry("x", "F32", "[1]", 0, 4) + "," + entry("x", "F32", "[1]", 4, 8) + "}",
                                    std::string(8, 'z')),
                    {"repeats the key 'x'"});
  expect_open_error(raw_safetensors(R"({"__metadata__":{"":"a","":"b"}})", ""), {"repeats the key ''"});
  expect_open_error(raw_safetensors(R"({"x":{"dtype":"F32","dtype":"U8","shape":[4],"data_offsets":[0,4]}})", "abcd"),
                    {"repeats the key 'dtype'"});
}

TEST_F(SafetensorsBad, EntriesOfTheWrongShape) {
  std::string d(16, 'z');
  expect_open_error(raw_safetensors(R"({"x":5})", d), {"tensor 'x'", "not an object"});
  expect_open_error(raw_safetensors(R"({"x":{"shape":[1],"data_offsets":[0,4]}})", d), {"tensor 'x'", "'dtype'"});
  expect_open_error(raw_safetensors(R"({"x":{"dtype":7,"shape":[1],"data_offsets":[0,4]}})", d), {"tensor 'x'", "'dtype'"});
  expect_open_error(raw_safetensors(R"({"x":{"dtype":"F32","data_offsets":[0,4]}})", d), {"tensor 'x'", "'shape'"});
  expect_open_error(raw_safetensors(R"({"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", d), {"tensor 'x'", "'shape'"});
  expect_open_error(raw_safetensors(R"({"x":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", d), {"tensor 'x'", "'shape'"});
  expect_open_error(raw_safetensors(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", d), {"tensor 'x'", "'data_offsets'"});
  expect_open_error(raw_safetensors(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,"4"]}})", d), {"tensor 'x'", "'data_offsets'"});
  expect_open_error(raw_safetensors(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"extra":1}})", d),
                    {"tensor 'x'", "'extra'"});
  expect_open_error(raw_safetensors(R"({"__metadata__":{"k":1}})", d), {"__metadata__", "'k'"});
  expect_open_error(raw_safetensors(R"({"__metadata__":[1]})", d), {"__metadata__"});
}

TEST_F(SafetensorsBad, UnknownDtype) {
  expect_open_error(raw_safetensors("{" + entry("w", "C64", "[1]", 0, 8) + "}", std::string(8, 'z')),
                    {"tensor 'w'", "'C64'"});
  expect_open_error(raw_safetensors("{" + entry("w", "f32", "[1]", 0, 4) + "}", std::string(4, 'z')),
                    {"tensor 'w'", "'f32'"});
}

TEST_F(SafetensorsBad, HeaderLies) {
  std::string d(48, 'z');
  // Size mismatch: exactly the message the spec asks for.
  expect_open_error(raw_safetensors("{" + entry("x", "F32", "[3,4]", 0, 10) + "}", d),
                    {"tensor 'x': data_offsets [0, 10] but shape [3, 4] of F32 needs 48 bytes"});
  // Offsets out of range.
  expect_open_error(raw_safetensors("{" + entry("x", "F32", "[3,4]", 4, 52) + "}", d),
                    {"tensor 'x'", "[4, 52]", "past the data block of 48 bytes"});
  expect_open_error(raw_safetensors("{" + entry("x", "U8", "[0]", 60, 60) + "}", d), {"tensor 'x'", "past the data block"});
  // begin > end.
  expect_open_error(raw_safetensors("{" + entry("x", "U8", "[0]", 8, 4) + "}", d), {"tensor 'x'", "begin after end"});
  // Overlap, partial and total.
  expect_open_error(raw_safetensors("{" + entry("a", "F32", "[4]", 0, 16) + "," + entry("b", "F32", "[4]", 12, 28) + "}", d),
                    {"overlap", "'a'", "'b'"});
  expect_open_error(raw_safetensors("{" + entry("a", "F32", "[4]", 8, 24) + "," + entry("b", "U8", "[2]", 10, 12) + "}", d),
                    {"overlap", "'a'", "'b'"});
  // A shape whose byte size overflows 64 bits must not wrap around to a small number.
  expect_open_error(raw_safetensors("{" + entry("x", "F32", "[4611686018427387904,4]", 0, 0) + "}", d),
                    {"tensor 'x'", "too large"});
  expect_open_error(raw_safetensors("{" + entry("x", "F32", "[4611686018427387905]", 0, 4) + "}", d),
                    {"tensor 'x'", "too large"});
  // Zero-size tensors at the same offset as data are fine; adjacent tensors are fine.
  std::string ok = put(raw_safetensors("{" + entry("a", "F32", "[4]", 0, 16) + "," + entry("e", "F32", "[0,3]", 8, 8) + "," +
                                           entry("b", "F32", "[8]", 16, 48) + "}",
                                       d));
  EXPECT_NO_THROW(SafetensorsFile::open(ok));
}

TEST_F(SafetensorsBad, NotAFile) {
  expect_error([&] { SafetensorsFile::open(dir + "/nope.safetensors"); }, {dir + "/nope.safetensors", "cannot open"});
  expect_error([&] { SafetensorsFile::open(dir); }, {dir});
}

}  // namespace
}  // namespace gemma4::test
