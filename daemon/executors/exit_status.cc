#include "daemon/executors/exit_status.h"

#include <optional>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "base/file_util.h"
#include "daemon/executors/launch/launch_protocol.h"

namespace amld::daemon {

ExitStatus ExitStatusFromRecord(const shim::ExitRecord& record) {
  ExitStatus status;
  status.exit_code = record.exit_code;
  status.signal = record.signal;
  status.timed_out = record.timed_out;
  status.canceled = record.canceled;
  status.start_time = absl::FromUnixNanos(record.start_time_ns);
  status.end_time = absl::FromUnixNanos(record.end_time_ns);
  status.launch_error = record.launch_error;
  return status;
}

absl::Status SupervisorLost(absl::string_view why, absl::string_view shim_log) {
  return absl::InternalError(absl::StrCat("supervisor lost: ", why, "; see ", shim_log));
}

absl::StatusOr<ExitStatus> ExitStatusFromFile(absl::string_view text, absl::string_view path,
                                              absl::string_view shim_log) {
  std::string error;
  std::optional<shim::ExitRecord> record =
      shim::ParseExitRecord(std::string_view(text.data(), text.size()), &error);
  if (!record) {
    return SupervisorLost(
        absl::StrCat(path, " is unreadable: ", error, "; the run's exit code is lost"), shim_log);
  }
  return ExitStatusFromRecord(*record);
}

absl::StatusOr<ExitStatus> ReadExitStatus(const std::filesystem::path& run_dir) {
  const std::filesystem::path path = run_dir / shim::kExitFileName;
  const std::string shim_log = (run_dir / "system_logs" / shim::kShimLogName).string();
  absl::StatusOr<std::string> text = base::ReadFileToString(path);
  if (absl::IsNotFound(text.status())) {
    return SupervisorLost(absl::StrCat("amld-shim is gone and left no ", path.string()), shim_log);
  }
  if (!text.ok()) return SupervisorLost(text.status().message(), shim_log);
  absl::StatusOr<ExitStatus> status = ExitStatusFromFile(*text, path.string(), shim_log);
  if (status.ok()) NameFailedProcess(run_dir, &*status);
  return status;
}

void NameFailedProcess(const std::filesystem::path& run_dir, ExitStatus* status) {
  if (!Succeeded(*status) && status->failure.empty() && !status->canceled && !status->timed_out) {
    status->failure = launch::ReadLaunchFailure(run_dir);
  }
}

bool Succeeded(const ExitStatus& e) {
  return e.exit_code == 0 && e.signal == 0 && !e.canceled && !e.timed_out &&
         e.launch_error.empty() && e.failure.empty();
}

}  // namespace amld::daemon
