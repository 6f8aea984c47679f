// How a run ended, from what its supervisor left: the one translation of
// amld-shim's exit record (shim_protocol.h) into the executors' ExitStatus
// (executor.h), and the one "supervisor lost" error for a shim that left
// none. Local, SSH and Slurm executors all read exit.json through here.
//
// Thread-safety: free functions, thread-safe.
#pragma once

#include <filesystem>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "daemon/executors/executor.h"
#include "daemon/executors/shim/shim_protocol.h"

namespace amld::daemon {

// Every field of the record that ExitStatus has (exit code, signal, timed
// out, canceled, start and end time, launch error).
ExitStatus ExitStatusFromRecord(const shim::ExitRecord& record);

// INTERNAL "supervisor lost: <why>; see <shim_log>": the run's process may
// have ended any way; nothing says how.
absl::Status SupervisorLost(absl::string_view why, absl::string_view shim_log);

// The text of an exit.json (named `path` in messages) as an ExitStatus, or
// SupervisorLost when it does not parse.
absl::StatusOr<ExitStatus> ExitStatusFromFile(absl::string_view text, absl::string_view path,
                                              absl::string_view shim_log);

// A distributed run that failed by itself (not canceled or timed out) with
// no failure named yet: names the process that failed first, as amld-launch
// recorded it in <run_dir>/system_logs/amld-launch-failure.txt.
void NameFailedProcess(const std::filesystem::path& run_dir, ExitStatus* status);

// Reads <run_dir>/exit.json; SupervisorLost (pointing at
// <run_dir>/system_logs/amld-shim.log) when it is missing or unreadable.
absl::StatusOr<ExitStatus> ReadExitStatus(const std::filesystem::path& run_dir);

// Exit code 0, no signal, not canceled or timed out, no launch error or
// failure.
bool Succeeded(const ExitStatus& status);

}  // namespace amld::daemon
