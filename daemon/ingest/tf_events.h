// TensorBoard event files (`events.out.tfevents.*`, written by
// torch.utils.tensorboard.SummaryWriter, tf.summary, tensorboardX) read as a
// run's metrics, so a script that logs only with SummaryWriter still has
// curves in `aml run metrics`, get_metrics() and the web view.
//
// Framing (TFRecord), each record:
//   uint64 length (little-endian) | uint32 masked CRC32C of those 8 bytes |
//   data (length bytes)           | uint32 masked CRC32C of the data
// where masked(c) = ((c >> 15) | (c << 17)) + 0xa282ead8.
//
// Each record's data is a tensorflow.Event, decoded here from the public
// field numbers with protobuf's CodedInputStream (no TensorFlow protos are
// compiled in):
//   Event:   wall_time = 1 (double), step = 2 (int64), summary = 5
//   Summary: value = 1 (repeated)
//   Value:   tag = 1, simple_value = 2 (float), tensor = 8, metadata = 9
//   SummaryMetadata.plugin_data = 1 → PluginData.plugin_name = 1
//   TensorProto: dtype = 1, tensor_shape = 2 (TensorShapeProto.dim = 2),
//                tensor_content = 4, float_val = 5, double_val = 6,
//                int_val = 7, int64_val = 10
// A value becomes a metric (name = tag, step = the event's step, time = its
// wall_time) when it has a simple_value (torch, TF1) or a scalar tensor of
// a float, double or integer type (TF2's tf.summary.scalar) whose plugin, if
// named, is "scalars". Everything else (images, histograms, text, graphs,
// the file_version record) is ignored without a word.
//
// TfEventsTail follows one file as it grows: it reads from where it stopped,
// takes complete records only and leaves a torn last record for the next
// read (the writer is in the middle of it); once the run has ended
// (`at_end`) a torn last record is reported and ignored. A record whose data
// CRC does not match is reported and skipped (its length is trusted: the
// length's own CRC matched); a length whose CRC does not match cannot be
// trusted, so the tail reports it and looks for the next position where a
// whole record checks, byte by byte. offset() is always the end of the last
// record taken or skipped: where a restarted daemon resumes.
//
// Thread-safety: thread-compatible (a value type).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "amld/v1/runs.pb.h"

namespace amld::daemon {

// "events.out.tfevents." starts the file's name (any folder).
bool IsTfEventsFile(absl::string_view path);

// CRC32C (Castagnoli), and its masked form as TFRecord stores it.
uint32_t Crc32c(absl::string_view data);
uint32_t MaskedCrc32c(absl::string_view data);

// The scalars of one Event record (possibly none). INVALID_ARGUMENT when the
// bytes are not a well-formed protobuf message.
absl::StatusOr<std::vector<amld::v1::Metric>> DecodeEventScalars(absl::string_view record);

// A record larger than this is refused (skipped with a warning) instead of
// being held in memory: scalars are tiny, and a length this big is more
// likely damage than data.
inline constexpr uint64_t kMaxTfRecordBytes = 64 << 20;

class TfEventsTail {
 public:
  // `offset`: where to start (the end of the last record a previous daemon
  // stored values of).
  explicit TfEventsTail(int64_t offset = 0) : offset_(offset) {}

  struct Batch {
    std::vector<amld::v1::Metric> metrics;
    // For each metric, the end offset of its record.
    std::vector<int64_t> record_ends;
    std::vector<std::string> warnings;  // "byte 1234: ..."
  };

  // Reads what was appended to the file open as `fd` since the last call.
  // A file shorter than the offset was rewritten: the tail warns and starts
  // again from its top. Errors are I/O errors; the tail is then unchanged.
  absl::StatusOr<Batch> Read(int fd, bool at_end);

  int64_t offset() const { return offset_; }

 private:
  int64_t offset_ = 0;
  bool torn_reported_ = false;  // at_end warning given for this offset
};

}  // namespace amld::daemon
