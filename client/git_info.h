// Source control state of a source folder, read with libgit2 (no `git`
// process; the library is loaded on first use, for a folder in a work
// tree): the "origin" remote's URL, the branch, HEAD's commit and whether
// the folder has changes against HEAD (tracked or untracked, ignored files
// excepted). Stored with each run so a result can be traced to its code.
//
// The repository is found by walking up from the folder, as git does; only
// changes inside the folder count towards `dirty`.
//
// Thread-safety: thread-safe (libgit2 is initialized once per process).
#pragma once

#include <filesystem>
#include <optional>

#include "absl/status/statusor.h"
#include "amld/v1/runs.pb.h"

namespace amld::client {

// nullopt when the folder is not inside a git repository; an error only when
// the repository exists but cannot be read.
absl::StatusOr<std::optional<amld::v1::GitInfo>> ReadGitInfo(const std::filesystem::path& dir);

}  // namespace amld::client
