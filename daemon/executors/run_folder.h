// The run folder: where each file of a run lives under <data>/runs/<id>/
// (the layout executor.h describes, shared by executors, ingestion and the
// services), and how a run-relative path a client names ("outputs/model.json",
// "logs/train.log", "user_logs/std_log.txt", "system_logs/...") maps into the
// run's folder, and opening such files without ever following a symlink, so
// a run cannot make the daemon read outside it. Storing a run's files is
// artifact_sync.h's and live_ingester.h's.
//
// Thread-safety: free functions, thread-safe.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/file_util.h"

namespace amld::daemon {

// The folders and files of one run under <data>/runs/<run_id>/ (see
// executor.h for who writes what).
struct RunPaths {
  std::filesystem::path root;         // runs/<id>
  std::filesystem::path wd;           // runs/<id>/wd, the process's cwd
  std::filesystem::path outputs;      // wd/outputs (AMLD_OUTPUTS_DIR)
  std::filesystem::path logs;         // wd/logs (AMLD_LOGS_DIR)
  std::filesystem::path user_logs;    // runs/<id>/user_logs
  std::filesystem::path std_log;      // user_logs/std_log.txt
  std::filesystem::path system_logs;  // runs/<id>/system_logs
  std::filesystem::path metrics;      // runs/<id>/metrics.jsonl (AMLD_METRICS_FILE)
};
RunPaths RunPathsFor(const std::filesystem::path& runs_root, const std::string& run_id);

// The path relative to the run's root folder where `rel` lives: "outputs/…"
// and "logs/…" are under wd/, "user_logs/…" and "system_logs/…" under the
// root. INVALID_ARGUMENT for any other or malformed path ("..", absolute).
absl::StatusOr<std::string> RunFileLocation(const std::string& rel);

// Opens `rel` for reading beneath the run's root, refusing symlinks in any
// component (INVALID_ARGUMENT), NOT_FOUND when it does not exist,
// INVALID_ARGUMENT when it is not a regular file.
absl::StatusOr<amld::base::ScopedFd> OpenRunFile(const RunPaths& paths, const std::string& rel);

// openat2(2) of `rel` beneath `dirfd`, refusing symlinks and magic links in
// any component. The fd, or -1 with errno set: ELOOP or EXDEV for a link,
// ENOENT or ENOTDIR when there is no such file.
int OpenBeneath(int dirfd, const std::string& rel, uint64_t flags);

// True when `rel` exists in the run's folder but is, or passes through, a
// symbolic link (what a client asking for it is told instead of NOT_FOUND).
bool IsSymlinkInRun(const RunPaths& paths, const std::string& rel);

}  // namespace amld::daemon
