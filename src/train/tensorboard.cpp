#include "train/tensorboard.h"

#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace gemma4 {

namespace {

std::array<uint32_t, 256> make_crc_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : (c >> 1);  // reflected Castagnoli polynomial
    t[i] = c;
  }
  return t;
}

// Protobuf wire encoding (only what Event needs).
void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(char(uint8_t(v) | 0x80));
    v >>= 7;
  }
  out.push_back(char(v));
}
void put_tag(std::string& out, uint32_t field, uint32_t wire) { put_varint(out, (uint64_t(field) << 3) | wire); }
void put_fixed64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(char(uint8_t(v >> (8 * i))));
}
void put_fixed32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(char(uint8_t(v >> (8 * i))));
}
void put_double(std::string& out, uint32_t field, double d) {
  uint64_t u;
  std::memcpy(&u, &d, 8);
  put_tag(out, field, 1);
  put_fixed64(out, u);
}
void put_float(std::string& out, uint32_t field, float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  put_tag(out, field, 5);
  put_fixed32(out, u);
}
void put_bytes(std::string& out, uint32_t field, std::string_view s) {
  put_tag(out, field, 2);
  put_varint(out, s.size());
  out.append(s);
}
void put_int64(std::string& out, uint32_t field, int64_t v) {
  put_tag(out, field, 0);
  put_varint(out, uint64_t(v));
}

std::string event_head(double wall_time, int64_t step) {
  std::string e;
  put_double(e, 1, wall_time);
  if (step != 0) put_int64(e, 2, step);
  return e;
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

uint32_t crc32c(const void* data, size_t n, uint32_t crc) {
  static const std::array<uint32_t, 256> table = make_crc_table();
  const auto* p = static_cast<const uint8_t*>(data);
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

uint32_t masked_crc32c(const void* data, size_t n) {
  uint32_t c = crc32c(data, n);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

std::string tfrecord(std::string_view data) {
  std::string out;
  std::string len;
  put_fixed64(len, data.size());
  out += len;
  put_fixed32(out, masked_crc32c(len.data(), len.size()));
  out.append(data);
  put_fixed32(out, masked_crc32c(data.data(), data.size()));
  return out;
}

std::string event_file_version(double wall_time, std::string_view version) {
  std::string e = event_head(wall_time, 0);
  put_bytes(e, 3, version);
  return e;
}

std::string event_scalars(double wall_time, int64_t step, const std::vector<std::pair<std::string, float>>& scalars) {
  std::string summary;
  for (const auto& [tag, v] : scalars) {
    std::string value;
    put_bytes(value, 1, tag);
    put_float(value, 2, v);
    put_bytes(summary, 1, value);
  }
  std::string e = event_head(wall_time, step);
  put_bytes(e, 5, summary);
  return e;
}

std::string event_session_start(double wall_time, int64_t step) {
  std::string log;
  put_int64(log, 1, 1);  // SessionLog.status = START
  std::string e = event_head(wall_time, step);
  put_bytes(e, 7, log);
  return e;
}

TensorBoardWriter::TensorBoardWriter(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  G4_CHECK(!ec, "{}: cannot create directory: {}", dir, ec.message());
  char host[256] = "localhost";
  if (gethostname(host, sizeof host - 1) != 0) std::strcpy(host, "localhost");
  host[sizeof host - 1] = 0;
  static std::atomic<int> counter{0};
  double now = now_seconds();
  path_ = (fs::path(dir) / fmt::format("events.out.tfevents.{}.{}.{}.{}", int64_t(now), host, int(getpid()),
                                        counter++))
              .string();
  f_ = std::fopen(path_.c_str(), "wb");
  G4_CHECK(f_ != nullptr, "{}: cannot create: {}", path_, std::strerror(errno));
  write(event_file_version(now));
}

TensorBoardWriter::~TensorBoardWriter() {
  if (f_) std::fclose(f_);
}

void TensorBoardWriter::write(const std::string& event) {
  std::string rec = tfrecord(event);
  G4_CHECK(std::fwrite(rec.data(), 1, rec.size(), f_) == rec.size() && std::fflush(f_) == 0, "{}: write failed: {}",
           path_, std::strerror(errno));
}

void TensorBoardWriter::add_scalars(int64_t step, const std::vector<std::pair<std::string, float>>& scalars) {
  write(event_scalars(now_seconds(), step, scalars));
}

void TensorBoardWriter::add_session_start(int64_t step) { write(event_session_start(now_seconds(), step)); }

}  // namespace gemma4
