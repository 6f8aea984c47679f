// Formatting shared by the `aml` commands: times, durations, sizes, status
// names, plain-text tables, and proto messages as JSON.
//
// JSON of a message is proto3's canonical JSON mapping with the field names
// of the .proto files (snake_case), every field printed even when it has
// its default value, enums by name and timestamps in RFC 3339 (UTC), so
// scripts get a stable shape.
//
// Thread-safety: free functions, thread-safe.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "amld/v1/runs.pb.h"
#include "base/human_bytes.h"
#include "storage/run_status.h"

namespace google::protobuf {
class Message;
class Timestamp;
}  // namespace google::protobuf

namespace amld::client::commands {

absl::Time ToAbslTime(const google::protobuf::Timestamp& ts);
// Local time, "2024-05-01 12:00:03" (with milliseconds when `millis`);
// "-" when unset.
std::string FormatTimestamp(const google::protobuf::Timestamp& ts, bool millis = false);
// "850ms", "12.3s", "4m05s", "2h03m".
std::string HumanDuration(absl::Duration d);
// Sizes and statuses are written the one way base/ and storage/ define.
using amld::base::HumanBytes;
using amld::storage::StatusName;

// Case-insensitive status name ("running", "COMPLETED"); INVALID_ARGUMENT
// listing the valid names otherwise.
absl::StatusOr<amld::v1::RunStatus::Value> ParseStatusName(std::string_view name);

// When the run entered `status` (its last such transition); unset if never.
const google::protobuf::Timestamp* TransitionTime(const amld::v1::Run& run,
                                                  amld::v1::RunStatus::Value status);
// Time from RUNNING to the end (or to now while it runs); zero if it never ran.
absl::Duration RunDuration(const amld::v1::Run& run);
// Time from QUEUED until the run's next status (PREPARING, or the end of a
// run canceled while queued), or until now while it waits.
absl::Duration QueueWait(const amld::v1::Run& run);
// How the process ended: "exit code 3", "signal 9 (SIGKILL)"; empty when it
// did not end (or never ran).
std::string ExitStatusText(const amld::v1::Run& run);
// "FAILED (exit code 3)"-style status with the error when there is one.
std::string StatusWithError(const amld::v1::Run& run);

// Whether `config` runs on the local target ("" or "local").
bool IsLocalTarget(const amld::v1::RunConfig& config);
// The interpreter a script ran with, and where it came from
// (daemon/runs/run_plan.h UseSubmitterEnvironment): "/venv/bin/python3
// (python3 on the submitter's PATH)", "python3 on the daemon's PATH".
std::string InterpreterText(const amld::v1::RunConfig& config);

// The line a follow ends with: "run ID FAILED (exit code 3) after 4m05s".
std::string FinalNote(const amld::v1::Run& run);
// The exit code of a command that followed `run` to its end: 0 only for
// COMPLETED, 1 for FAILED and CANCELED.
int ExitCodeFor(const amld::v1::Run& run);

// How a table is drawn. width > 0: no line is longer (the rightmost column is
// cut, ending in "…"; a line never wraps). colour: the cells of
// status_column get their status's colour (ANSI).
struct TableStyle {
  int width = 0;
  bool colour = false;
  int status_column = -1;
  // With width > 0: the widest columns but the first are narrowed first (to
  // no less than 8 cells each; their cells cut, ending in "…"), so that
  // every column keeps a part in view — for tables whose columns are alike
  // (`aml run compare`'s one per run) rather than one long last column.
  bool shrink_widest = false;
};
// For stdout: its width and colour when it is a terminal (colour unless
// NO_COLOR is set or TERM is dumb); neither when it is a pipe or file.
TableStyle StdoutStyle(int status_column = -1);
// A status name in its colour: green COMPLETED, red FAILED, yellow
// CANCELED/CANCEL_REQUESTED, cyan RUNNING/FINALIZING, else unchanged.
std::string Coloured(const std::string& status);

// Columns padded to their widest cell, two spaces apart.
void PrintTable(std::ostream& out, const std::vector<std::string>& header,
                const std::vector<std::vector<std::string>>& rows, const TableStyle& style = {});

// See the file comment.
std::string ProtoToJson(const google::protobuf::Message& message);

}  // namespace amld::client::commands
