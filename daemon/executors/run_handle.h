// RunHandle: the one encoding of the handle an executor persists per run
// (executor.h: Launch returns it, Reattach takes it back) — a flat JSON
// object of strings and integers, e.g. the local executor's
// {"boot_id":"...","shim_pid":41,"shim_start_time":8812}. Keys come out
// sorted, so a handle reads the same however it was built; handles in old
// databases keep parsing (fields are only ever added).
//
// Also ShimIdentity, the part of a handle that names one amld-shim process
// (local and SSH runs), and the shim's "ok <pid> <starttime>" report.
//
// Thread-safety: a value type; free functions are thread-safe.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <variant>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace amld::daemon {

class RunHandle {
 public:
  RunHandle() = default;

  RunHandle& Set(absl::string_view key, std::string value);
  RunHandle& Set(absl::string_view key, int64_t value);
  RunHandle& Set(absl::string_view key, uint64_t value);
  std::string Encode() const;

  // `kind` names the executor in messages ("a local executor"). Errors are
  // INVALID_ARGUMENT "handle of run <id> is not <kind> handle (<why>): <text>".
  static absl::StatusOr<RunHandle> Parse(absl::string_view kind, absl::string_view run_id,
                                         const std::string& text);
  // The field, or the error above ("no <key>") when it is missing or of
  // another type.
  absl::StatusOr<std::string> String(absl::string_view key) const;
  absl::StatusOr<int64_t> Int(absl::string_view key) const;
  absl::StatusOr<uint64_t> Uint(absl::string_view key) const;
  bool Has(absl::string_view key) const { return fields_.count(std::string(key)) != 0; }
  // The error above with `why`, for checks beyond a field's type.
  absl::Status Invalid(absl::string_view why) const;

 private:
  using Value = std::variant<std::string, int64_t, uint64_t>;
  std::map<std::string, Value, std::less<>> fields_;
  std::string kind_, run_id_, text_;  // set by Parse, for messages
};

// Names one amld-shim process: a pid alone could be reused after it exits,
// and /proc start times restart at boot.
struct ShimIdentity {
  pid_t pid = 0;
  uint64_t start_time = 0;  // field 22 of /proc/<pid>/stat
  std::string boot_id;      // /proc/sys/kernel/random/boot_id
};

// Adds shim_pid, shim_start_time and boot_id to `handle`.
void SetShimIdentity(const ShimIdentity& id, RunHandle& handle);
// Reads them back: a positive shim_pid and shim_start_time are required;
// boot_id when `boot_id_required` (handles of old local runs lack it).
absl::StatusOr<ShimIdentity> GetShimIdentity(const RunHandle& handle, bool boot_id_required);

// The pid and start time from amld-shim's "ok <pid> <starttime>" report
// line (shim_protocol.h); INVALID_ARGUMENT for anything else.
absl::StatusOr<ShimIdentity> ParseShimOkLine(absl::string_view line);

}  // namespace amld::daemon
