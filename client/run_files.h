// Reading a run's stored files: listing them and downloading one to a local
// path. A download is written to "<dest>.part" and renamed into place when
// complete, so a reader never sees a half-written file; a stream that drops
// is reopened from the bytes already written.
//
// Thread-safety: free functions, thread-safe.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "amld/v1/runs.pb.h"
#include "client/connection.h"
#include "client/interrupt.h"

namespace amld::client {

// Runs.ListFiles: the run's stored files whose path starts with `prefix`.
absl::StatusOr<std::vector<amld::v1::RunFile>> ListRunFiles(const Connection& conn,
                                                            const std::string& run_id,
                                                            const std::string& prefix);

// Downloads `path` of the run to `dest` (its parent folders are created).
// Returns the file's size. The daemon's refusal of a bad path (absolute,
// "..", a link out of the run) keeps its code, INVALID_ARGUMENT.
absl::StatusOr<int64_t> DownloadRunFile(const Connection& conn, const std::string& run_id,
                                        const std::string& path, const std::filesystem::path& dest,
                                        Interrupt* interrupt = nullptr);

// `dir` joined with the '/'-separated `rel_path` reported by the daemon.
// INVALID_ARGUMENT when rel_path is empty, absolute or has a "." or ".."
// component, so nothing the daemon says can write outside `dir`.
absl::StatusOr<std::filesystem::path> SafeJoin(const std::filesystem::path& dir,
                                               const std::string& rel_path);

}  // namespace amld::client
