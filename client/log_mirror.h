// LogMirror: a local folder per run kept in line with the run's logs/ as
// the daemon stores them — live while the run runs (what the live ingester
// stored, from any target: local, SSH, Slurm), and from the store once it
// has ended, so a run long finished is restored the same way. It is what
// `aml tensorboard` (and through it the SDK's amld.tensorboard) points
// TensorBoard at: <root>/<run id>/ holds the run's logs/ without the
// "logs/" prefix.
//
// Each pass lists every followed run's logs/ (Runs.ListFiles) and fetches
// what changed since the last pass. A file that only grew (TensorBoard's
// event files, text logs) is appended to in place from where the local copy
// ends, and the whole local file is then checked against the stored digest:
// TensorBoard keeps its event files open and reads on, so a file replaced
// by a rename would not be seen to grow. Anything else (a new file, one
// that shrank or whose append does not check) is downloaded whole to a temp
// file and renamed into place (DownloadRunFile). Files the run removed stay.
//
// Thread-safety: thread-compatible; Sync calls the daemon and blocks.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "amld/v1/runs.pb.h"
#include "client/connection.h"
#include "client/interrupt.h"

namespace amld::client {

class LogMirror {
 public:
  // `run_ids`: full ids (resolved by the caller). `root`: the folder the
  // runs' folders go in (created).
  LogMirror(const Connection* conn, std::vector<std::string> run_ids, std::filesystem::path root);

  struct Pass {
    int64_t files_fetched = 0;  // whole downloads and appends
    int64_t bytes_fetched = 0;
    bool all_final = false;     // every run had ended before this pass began
  };
  // One pass over the runs still followed. A run that had ended when the
  // pass began gets its last pass and is followed no further. Errors are the
  // daemon's (a run deleted meanwhile: NOT_FOUND naming it) or local I/O.
  absl::StatusOr<Pass> Sync(Interrupt* interrupt = nullptr);

  // <root>/<run id>.
  std::filesystem::path RunFolder(const std::string& run_id) const;
  const std::filesystem::path& root() const { return root_; }
  const std::vector<std::string>& run_ids() const { return run_ids_; }

 private:
  absl::StatusOr<int64_t> Fetch(const std::string& run_id, const amld::v1::RunFile& file,
                                const std::filesystem::path& local, Interrupt* interrupt);

  const Connection* conn_;
  std::vector<std::string> run_ids_;
  std::filesystem::path root_;
  // Per run, the digest (hash) of each file as last fetched.
  std::map<std::string, std::map<std::string, std::string>> fetched_;
  std::map<std::string, bool> done_;  // the run's last pass happened
};

}  // namespace amld::client
