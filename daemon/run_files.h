// Run files: how a run-relative path a client names ("outputs/model.json",
// "logs/train.log", "user_logs/std_log.txt", "system_logs/...") maps into the
// run's folder, and opening such files without ever following a symlink, so
// a run cannot make the daemon read outside it. Storing a run's files is
// artifact_sync.h's and live_ingester.h's.
//
// Thread-safety: free functions, thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "daemon/run_plan.h"
#include "storage/cas.h"
#include "storage/file_util.h"
#include "storage/state_store.h"

namespace amld::daemon {

// The path relative to the run's root folder where `rel` lives: "outputs/…"
// and "logs/…" are under wd/, "user_logs/…" and "system_logs/…" under the
// root. INVALID_ARGUMENT for any other or malformed path ("..", absolute).
absl::StatusOr<std::string> RunFileLocation(const std::string& rel);

// Opens `rel` for reading beneath the run's root, refusing symlinks in any
// component (INVALID_ARGUMENT), NOT_FOUND when it does not exist,
// INVALID_ARGUMENT when it is not a regular file.
absl::StatusOr<amld::storage::ScopedFd> OpenRunFile(const RunPaths& paths, const std::string& rel);

// openat2(2) of `rel` beneath `dirfd`, refusing symlinks and magic links in
// any component. The fd, or -1 with errno set: ELOOP or EXDEV for a link,
// ENOENT or ENOTDIR when there is no such file.
int OpenBeneath(int dirfd, const std::string& rel, uint64_t flags);

// True when `rel` exists in the run's folder but is, or passes through, a
// symbolic link (what a client asking for it is told instead of NOT_FOUND).
bool IsSymlinkInRun(const RunPaths& paths, const std::string& rel);

}  // namespace amld::daemon
