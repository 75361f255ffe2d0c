// TensorBoard event files: CRC-32C test vectors (RFC 3720 B.4), TFRecord framing, and Event protos read
// back by a small independent reader (framing + checksums + protobuf wire format).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>

#include "test_util.h"
#include "train/tensorboard.h"

using namespace gemma4;

namespace {

uint32_t reference_masked(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

// --- a minimal reader, written from the format description ---
struct Reader {
  const std::string& s;
  size_t p = 0;
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0;; shift += 7) {
      if (p >= s.size()) throw std::runtime_error("truncated varint");
      uint8_t b = uint8_t(s[p++]);
      v |= uint64_t(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
  }
  template <typename T>
  T fixed() {
    if (p + sizeof(T) > s.size()) throw std::runtime_error("truncated fixed");
    T v;
    std::memcpy(&v, s.data() + p, sizeof(T));
    p += sizeof(T);
    return v;
  }
  std::string bytes() {
    uint64_t n = varint();
    if (p + n > s.size()) throw std::runtime_error("truncated bytes");
    std::string r = s.substr(p, n);
    p += n;
    return r;
  }
  bool done() const { return p >= s.size(); }
};

struct ParsedEvent {
  double wall_time = 0;
  int64_t step = 0;
  std::string file_version;
  std::vector<std::pair<std::string, float>> scalars;
  int session_status = -1;
};

ParsedEvent parse_event(const std::string& data) {
  ParsedEvent e;
  Reader r{data};
  while (!r.done()) {
    uint64_t key = r.varint();
    uint32_t field = uint32_t(key >> 3), wire = uint32_t(key & 7);
    if (field == 1 && wire == 1) e.wall_time = r.fixed<double>();
    else if (field == 2 && wire == 0) e.step = int64_t(r.varint());
    else if (field == 3 && wire == 2) e.file_version = r.bytes();
    else if (field == 5 && wire == 2) {
      std::string summary = r.bytes();
      Reader rs{summary};
      while (!rs.done()) {
        uint64_t k = rs.varint();
        if (k != ((1 << 3) | 2)) throw std::runtime_error("unexpected summary field");
        std::string value = rs.bytes();
        Reader rv{value};
        std::string tag;
        float v = NAN;
        while (!rv.done()) {
          uint64_t kv = rv.varint();
          if (kv == ((1 << 3) | 2)) tag = rv.bytes();
          else if (kv == ((2 << 3) | 5)) v = rv.fixed<float>();
          else throw std::runtime_error("unexpected value field");
        }
        e.scalars.emplace_back(tag, v);
      }
    } else if (field == 7 && wire == 2) {
      std::string log = r.bytes();
      Reader rl{log};
      while (!rl.done()) {
        uint64_t k = rl.varint();
        if (k == ((1 << 3) | 0)) e.session_status = int(rl.varint());
        else throw std::runtime_error("unexpected session_log field");
      }
    } else {
      throw std::runtime_error("unexpected event field " + std::to_string(field));
    }
  }
  return e;
}

// Splits a file into records, verifying both checksums of each.
std::vector<std::string> read_records(const std::string& file) {
  std::vector<std::string> out;
  size_t p = 0;
  while (p < file.size()) {
    if (p + 12 > file.size()) throw std::runtime_error("truncated header");
    uint64_t len;
    uint32_t len_crc, data_crc;
    std::memcpy(&len, file.data() + p, 8);
    std::memcpy(&len_crc, file.data() + p + 8, 4);
    if (len_crc != reference_masked(crc32c(file.data() + p, 8))) throw std::runtime_error("bad length crc");
    if (p + 12 + len + 4 > file.size()) throw std::runtime_error("truncated record");
    std::string data = file.substr(p + 12, len);
    std::memcpy(&data_crc, file.data() + p + 12 + len, 4);
    if (data_crc != reference_masked(crc32c(data.data(), data.size()))) throw std::runtime_error("bad data crc");
    out.push_back(data);
    p += 12 + len + 4;
  }
  return out;
}

}  // namespace

TEST(Crc32c, StandardTestVectors) {
  EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);
  std::string zeros(32, '\0'), ones(32, '\xff'), inc(32, 0), dec(32, 0);
  for (int i = 0; i < 32; ++i) inc[i] = char(i), dec[i] = char(31 - i);
  EXPECT_EQ(crc32c(zeros.data(), 32), 0x8A9136AAu);
  EXPECT_EQ(crc32c(ones.data(), 32), 0x62A8AB43u);
  EXPECT_EQ(crc32c(inc.data(), 32), 0x46DD794Eu);
  EXPECT_EQ(crc32c(dec.data(), 32), 0x113FDB5Cu);
  EXPECT_EQ(crc32c("", 0), 0u);
  // Incremental use equals one pass.
  EXPECT_EQ(crc32c("6789", 4, crc32c("12345", 5)), 0xE3069283u);
  EXPECT_EQ(masked_crc32c("123456789", 9), reference_masked(0xE3069283u));
}

TEST(TfRecord, FramingLayout) {
  std::string rec = tfrecord("abc");
  ASSERT_EQ(rec.size(), 8u + 4 + 3 + 4);
  EXPECT_EQ(rec.substr(0, 8), std::string("\x03\0\0\0\0\0\0\0", 8));
  EXPECT_EQ(rec.substr(12, 3), "abc");
  auto recs = read_records(rec + tfrecord(""));
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[0], "abc");
  EXPECT_EQ(recs[1], "");
}

TEST(TfRecord, EventEncodingBytes) {
  // Event{wall_time: 1.5, step: 300, summary{value{tag: "a", simple_value: 2.0}}}, encoded by hand:
  // 09 <double 1.5> 10 ac 02 2a 0a [summary: 0a 08 [value: 0a 01 61 15 <float 2.0>]]
  std::string expected("\x09\x00\x00\x00\x00\x00\x00\xf8\x3f\x10\xac\x02\x2a\x0a\x0a\x08\x0a\x01\x61\x15\x00\x00\x00\x40",
                       24);
  EXPECT_EQ(event_scalars(1.5, 300, {{"a", 2.0f}}), expected);
  // file_version: 09 <double> 1a 0d "brain.Event:2"
  std::string fv = event_file_version(0.0);
  EXPECT_EQ(fv.substr(9), std::string("\x1a\x0d") + "brain.Event:2");
}

TEST(TensorBoardWriter, WritesReadableEventFile) {
  std::string dir = test::temp_dir() + "/tb/train";
  std::string path;
  {
    TensorBoardWriter w(dir);
    path = w.path();
    w.add_scalars(1, {{"nll_loss", 2.5f}, {"lr", 1e-5f}});
    w.add_session_start(3);
    w.add_scalars(3, {{"nll_loss", 1.25f}});
  }
  EXPECT_NE(std::filesystem::path(path).filename().string().find("events.out.tfevents."), std::string::npos);
  EXPECT_EQ(std::filesystem::path(path).parent_path(), std::filesystem::path(dir));
  auto recs = read_records(test::read_file(path));
  ASSERT_EQ(recs.size(), 4u);
  ParsedEvent e0 = parse_event(recs[0]);
  EXPECT_EQ(e0.file_version, "brain.Event:2");
  EXPECT_GT(e0.wall_time, 1.5e9);  // seconds since the epoch
  ParsedEvent e1 = parse_event(recs[1]);
  EXPECT_EQ(e1.step, 1);
  ASSERT_EQ(e1.scalars.size(), 2u);
  EXPECT_EQ(e1.scalars[0].first, "nll_loss");
  EXPECT_EQ(e1.scalars[0].second, 2.5f);
  EXPECT_EQ(e1.scalars[1].first, "lr");
  EXPECT_EQ(e1.scalars[1].second, 1e-5f);
  ParsedEvent e2 = parse_event(recs[2]);
  EXPECT_EQ(e2.step, 3);
  EXPECT_EQ(e2.session_status, 1);  // START
  EXPECT_EQ(parse_event(recs[3]).scalars.at(0).second, 1.25f);

  // A flipped byte is detected by the reader's checksum check (the checksums are real).
  std::string bad = test::read_file(path);
  bad[bad.size() - 6] ^= 1;
  EXPECT_THROW(read_records(bad), std::runtime_error);
}
