// TensorBoard event files, written without TensorFlow: TFRecord framing around serialized Event protos.
//
// Record: uint64 length (little endian), uint32 masked crc32c(length bytes), data, uint32 masked crc32c(data);
// masked(c) = ((c >> 15) | (c << 17)) + 0xa282ead8. The first record is Event{wall_time, file_version:
// "brain.Event:2"}; each scalar record is Event{wall_time (1, double), step (2, int64),
// summary (5) {value (1) {tag (1), simple_value (2, float)}}}. A resumed run starts its file with
// Event{session_log (7) {status (1): START}} at the resume step, which makes TensorBoard drop the
// abandoned events of the interrupted run from that step on.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gemma4 {

// CRC-32C (Castagnoli), as TFRecord uses it; `crc` continues a previous value.
uint32_t crc32c(const void* data, size_t n, uint32_t crc = 0);
uint32_t masked_crc32c(const void* data, size_t n);

// One framed TFRecord holding `data`.
std::string tfrecord(std::string_view data);

// Serialized Event protos.
std::string event_file_version(double wall_time, std::string_view version = "brain.Event:2");
std::string event_scalars(double wall_time, int64_t step, const std::vector<std::pair<std::string, float>>& scalars);
std::string event_session_start(double wall_time, int64_t step);

// Appends events to DIR/events.out.tfevents.<seconds>.<host>.<pid>.<n> (a new file per writer, as TensorBoard
// expects). Each add_* writes and flushes a whole record.
class TensorBoardWriter {
 public:
  explicit TensorBoardWriter(const std::string& dir);
  ~TensorBoardWriter();
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

  void add_scalars(int64_t step, const std::vector<std::pair<std::string, float>>& scalars);
  void add_session_start(int64_t step);
  const std::string& path() const { return path_; }

 private:
  void write(const std::string& event);
  std::string path_;
  std::FILE* f_ = nullptr;
};

}  // namespace gemma4
