// MetricsTail: turns what a run appends to its AMLD_METRICS_FILE
// (runs/<id>/metrics.jsonl) into metric values, one JSON object per line:
//
//   {"name": "loss", "value": 0.25, "step": 3, "time": 1750000000.5}
//
// "name" is a non-empty string; "value" a number or a string (NaN, Infinity
// and -Infinity as Python's json module writes them are numbers too), or
// true, false or null, kept as 1, 0 or NaN with their type (Metric.value_type;
// an integer is marked too), so the SDK gives back what was logged;
// "table", when present, names the table a log_row/log_table column value
// belongs to ("name" is then "<table>/<column>", "step" the row);
// "step" an optional integer — when missing, the count of earlier values of
// that name in this run; "time" optional seconds since the epoch — when
// missing, the time the line was read. Other keys are ignored, so writers may
// add some (a description).
//
// The file is read from where the last read stopped, and only complete lines
// are taken while the run runs (a writer may be in the middle of one); once
// the run has ended (`at_end`), a last line without its newline counts too.
// A malformed line is skipped with a warning that names its line number and
// what is wrong; it never stops the lines after it. A line longer than
// kMaxMetricLineBytes is skipped without being held in memory.
//
// A line with a "kind" changes the run's record instead of logging a value
// (the SDK's Run API inside a run; no gRPC needed):
//
//   {"kind": "tags", "set": {"k": "v"}, "remove": ["k2"]}   run.tag, set_tags
//   {"kind": "properties", "add": {"k": "v"}}                add_properties
//   {"kind": "display_name", "value": "name"}
//   {"kind": "fail", "error": "details"}                     run.fail(): the
//                                                            run ends FAILED
//   {"kind": "upload", "name": "model.pkl"}                  store the file
//       uploads/<name> of the run folder (beside this file) as artifact <name>
//   {"kind": "register_model", "name": "m", "path": "outputs/model.pkl",
//    "tags": {}, "properties": {}, "description": ""}        registered from
//       the run's artifacts when it ends
//
// Maps hold strings. Such lines are applied again when a restarted daemon
// reads the file from its top: each is idempotent (a registration is keyed
// by the run and its line number), so that changes nothing.
//
// After a daemon restart the tail starts over from the top of the file,
// told how many values the store already holds for the run: every value
// line becomes exactly one stored value, in file order, and a batch is
// stored all or none, so skipping that many well-formed lines (recounting
// their names for the step rule) resumes exactly where the last daemon
// stopped — nothing twice, nothing lost. This holds while the file is the
// only source of the run's metrics.
//
// Thread-safety: thread-compatible (a value type; copy it to keep a state to
// go back to when storing a batch fails).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "amld/v1/models.pb.h"
#include "amld/v1/runs.pb.h"
#include "storage/state/state_store.h"

namespace amld::daemon {

inline constexpr int64_t kMaxMetricLineBytes = 1 << 20;

// Parses one line (without its newline). `earlier_values` counts the values
// of each name before this one (for a missing step); `now` is used for a
// missing time. INVALID_ARGUMENT saying what is wrong for anything else than
// the format above.
absl::StatusOr<amld::v1::Metric> ParseMetricLine(
    absl::string_view line, absl::Time now,
    const absl::flat_hash_map<std::string, int64_t>& earlier_values);

// A line with a "kind" (see above).
struct RunRecordLine {
  enum class Kind { kLabels, kUpload, kRegisterModel };
  Kind kind = Kind::kLabels;
  int64_t line = 0;                       // 1-based line number in the file
  amld::storage::RunLabelChanges labels;  // kLabels
  std::string upload_name;                // kUpload
  // kRegisterModel: name, tags, properties, description; source_path is the
  // run's artifact path to register (a file or a folder).
  amld::v1::Model model;
};

// Parses a line that has a "kind"; INVALID_ARGUMENT saying what is wrong.
absl::StatusOr<RunRecordLine> ParseRecordLine(absl::string_view line);

class MetricsTail {
 public:
  // `values_already_stored`: values of this run the store holds already.
  explicit MetricsTail(int64_t values_already_stored = 0) : skip_values_(values_already_stored) {}

  struct Batch {
    std::vector<amld::v1::Metric> metrics;
    std::vector<RunRecordLine> records;  // in file order
    std::vector<std::string> warnings;  // "metrics.jsonl line 7: ..."
    int64_t lines_skipped = 0;          // malformed lines among them
  };

  // Reads what was appended to the file open as `fd` since the last call.
  // A file shorter than what was already read was rewritten: the tail says
  // so in a warning and starts again from its top. Errors are I/O errors;
  // the tail is then unchanged.
  absl::StatusOr<Batch> Read(int fd, absl::Time now, bool at_end);

  // Bytes consumed so far (complete lines, skipped or not).
  int64_t offset() const { return offset_; }

 private:
  void TakeLine(absl::string_view line, absl::Time now, Batch* batch);

  int64_t offset_ = 0;
  int64_t lines_ = 0;        // lines consumed, for warnings
  int64_t skip_values_ = 0;  // well-formed lines still to skip (restart)
  bool in_long_line_ = false;
  absl::flat_hash_map<std::string, int64_t> values_per_name_;
};

}  // namespace amld::daemon
