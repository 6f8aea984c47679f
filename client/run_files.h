// Reading a run's stored files: listing them and downloading one to a local
// path or a file descriptor, verified end to end against its digest (see
// DownloadDest and DownloadRunFile).
//
// Thread-safety: free functions, thread-safe.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "amld/v1/models.pb.h"
#include "amld/v1/runs.pb.h"
#include "client/connection.h"
#include "client/interrupt.h"

namespace amld::client {

// Runs.DownloadFile's request for `path` of the run from `offset` on (a
// path that is not UTF-8 goes as path_bytes).
amld::v1::DownloadFileRequest RunFileRequest(const std::string& run_id, const std::string& path,
                                             int64_t offset);

// Runs.ListFiles: the run's stored files whose path starts with `prefix`
// (any bytes; sent as prefix_bytes when not UTF-8).
absl::StatusOr<std::vector<amld::v1::RunFile>> ListRunFiles(const Connection& conn,
                                                            const std::string& run_id,
                                                            const std::string& prefix);

// The path of `f` as the run named it: path_bytes when set (a name that is
// not UTF-8), else path. base::EscapeName of it is the form to print.
const std::string& RunFilePath(const amld::v1::RunFile& f);

// The stored path a person typed as `typed`: `typed` itself when the run has
// that file, else, when `typed` is the printable form `aml run files` shows
// (base::EscapeName, e.g. "outputs/bad\xff.txt"), the path it stands for.
// Costs one ListFiles call only when `typed` holds a '\'.
absl::StatusOr<std::string> TypedRunFilePath(const Connection& conn, const std::string& run_id,
                                             const std::string& typed);

// Where a download goes. With `fd` >= 0 the bytes are written there (aml's
// `-o -`: stdout) and `path` only names it in messages. Otherwise `path` is
// replaced only when it is absent or a regular file: the bytes go to a temp
// file in the same folder (".<name>.XXXXXX.part", kept within NAME_MAX), are
// checked against the object's digest and renamed over `path` — so a reader
// never sees a partial file, and a symlink at `path` is never written
// through. A symlink, device, FIFO or socket at `path` is refused unless
// `force` (then the link or node itself is replaced, never what it points
// to); a folder is always refused.
struct DownloadDest {
  std::filesystem::path path;
  int fd = -1;
  bool force = false;
};

// OK when a download may replace `path` (see DownloadDest): absent or a
// regular file; with `force` also a symlink or special file.
// FAILED_PRECONDITION saying what is there and what to do otherwise.
absl::Status CheckReplaceable(const std::filesystem::path& path, bool force);

// Downloads `path` of the run to `dest` (the parent folders of dest.path
// are created). A stream that drops with a transient error is reopened at
// the bytes already written, and the whole file is then checked against the
// object's digest: `expected` when given (from ListFiles), else the digest
// ListFiles reports after the download. A mismatch (the file changed between
// the two streams, or bytes were corrupted) is DATA_LOSS and nothing is
// renamed into place; for an fd the bytes are already written, and the
// error says so. Returns the file's size. The daemon's refusal of a bad path
// (absolute, "..", a link out of the run) keeps its code, INVALID_ARGUMENT.
absl::StatusOr<int64_t> DownloadRunFile(const Connection& conn, const std::string& run_id,
                                        const std::string& path, const DownloadDest& dest,
                                        const amld::v1::Digest* expected = nullptr,
                                        Interrupt* interrupt = nullptr);

// Models.DownloadModelFile of `file` of the model version `model` to
// `dest`, as DownloadRunFile (checked against file.digest()).
absl::StatusOr<int64_t> DownloadModelFile(const Connection& conn, const amld::v1::Model& model,
                                          const amld::v1::ModelFile& file,
                                          const DownloadDest& dest);

// The temp name a download to `dest` uses before its rename: in dest's
// folder, at most NAME_MAX (255) bytes however long dest's name is; the
// XXXXXX is replaced by random letters. Exposed for tests.
std::filesystem::path DownloadTempTemplate(const std::filesystem::path& dest);

// `dir` joined with the '/'-separated `rel_path` reported by the daemon.
// INVALID_ARGUMENT when rel_path is empty, absolute or has a "." or ".."
// component, so nothing the daemon says can write outside `dir`.
absl::StatusOr<std::filesystem::path> SafeJoin(const std::filesystem::path& dir,
                                               const std::string& rel_path);

}  // namespace amld::client
