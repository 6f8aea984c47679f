// Snapshotting a source folder into the daemon's CAS: the one implementation
// behind `aml run submit` and `aml snapshot create` (which the Python SDK's
// experiment.submit runs), so a snapshot is built, ignored and uploaded the
// same way whichever client submits.
//
// HashSourceFolder connects to the daemon and reads the folder's git state
// concurrently with the rest. When the daemon watches the folder
// (`aml snapshot watch`, daemon/watch/watched_roots.h) it hands over the current
// tree: nothing is walked or uploaded. Otherwise the tree is hashed here,
// through the persistent stat cache of the folder (storage/snapshot/stat_cache.h) so
// that unchanged files are only stat'ed. UploadSourceSnapshot then sends
// only the blobs the daemon lacks, drawing a progress bar on stderr for
// large uploads, and saves the stat cache once the upload succeeded.
//
// Thread-safety: free functions; each call is independent. They print to
// stderr (warnings, the progress bar), so call them from the CLI's thread.
#pragma once

#include <filesystem>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "amld/v1/runs.pb.h"
#include "amld/v1/snapshots.pb.h"
#include "client/commands/command.h"
#include "client/commands/snapshot_limits.h"
#include "client/connection.h"
#include "client/snapshot_uploader.h"
#include "storage/snapshot/snapshot.h"
#include "storage/snapshot/stat_cache.h"

namespace amld::client::commands {

struct SourceSnapshot {
  Connection conn;
  amld::storage::Snapshot snapshot;
  // nullopt outside a git repository, or when the repository could not be
  // read (a warning was printed: the run simply gets no git info).
  std::optional<amld::v1::GitInfo> git;
  // Set when the daemon's watch of the folder served it: `snapshot` then
  // holds only the root digest and total bytes, and nothing is uploaded.
  std::optional<amld::v1::GetWatchedSnapshotResponse> watched;
  // Set when the daemon read the folder itself (local ingest,
  // client/watched_snapshot.h): `snapshot` then holds only the root digest
  // and total bytes, and nothing is uploaded. Otherwise, why it did not
  // (empty: not asked, or an older daemon).
  std::optional<amld::v1::IngestLocalFolderResponse> ingested;
  std::string ingest_fallback_reason;
  // The walk's stat cache (null for a watched folder), saved to
  // stat_cache_file after a successful upload; files read and hashed.
  std::shared_ptr<amld::storage::StatCache> stat_cache;
  std::filesystem::path stat_cache_file;
  absl::Time walk_started;
  int64_t files_hashed = 0;
  // Set by UploadSourceSnapshot when it skipped the folders the daemon held
  // after the last upload of this folder (storage/snapshot/stat_cache.h).
  mutable bool trusted_earlier_upload = false;
  // Where the time went, for --output json ("seconds").
  absl::Duration ask_watched_time, cache_load_time, walk_time;
  mutable absl::Duration upload_time, cache_save_time;
  // The SubmitRun call that followed (aml run submit), for --output json.
  mutable absl::Duration submit_time;

  // Whether the daemon took the snapshot itself (watched or ingested): the
  // file list stays there, and there is nothing to upload.
  bool taken_by_daemon() const { return watched.has_value() || ingested.has_value(); }
};

// NOT_FOUND when `source_dir` is not a folder; UNAVAILABLE (the "start it
// with `aml daemon start`" message) when no daemon answers at the socket of
// `global`; the snapshot builder's error when the tree cannot be read.
// RESOURCE_EXHAUSTED listing the largest files when the folder is over
// `limits` (or a watched one over the daemon's).
absl::StatusOr<SourceSnapshot> HashSourceFolder(const GlobalOptions& global,
                                                const std::filesystem::path& source_dir,
                                                const SnapshotLimits& limits = {});

// Uploads what the daemon lacks of `source.snapshot`, in batches within the
// daemon's max_batch_bytes. With `show_progress`, uploads of 8 MiB and more
// draw a one-line progress bar on stderr. With `trust_earlier_upload`, the
// folders this daemon held after the last upload of the folder are not
// asked about again; pass false to ask about every blob (after a submit was
// refused for missing blobs).
absl::StatusOr<UploadStats> UploadSourceSnapshot(const SourceSnapshot& source, bool show_progress,
                                                 bool trust_earlier_upload = true);

// The stats as the "upload" object of --output json (same keys everywhere).
nlohmann::json UploadStatsJson(const UploadStats& stats);

// How the snapshot was taken, as the "snapshot_source" object of --output
// json: {"kind": "watched_root" | "daemon_read" | "walk", "files_hashed",
// "stat_cache_hits", "read_as_caller" and "watching" (daemon_read only),
// "local_ingest_fallback" (walk, when the daemon could not read it),
// "trusted_earlier_upload", "seconds": {"ask_watched", "cache_load", "walk",
// "upload", "cache_save"},
// "changes_applied" (watched only), "rescanned" (watched only)}.
nlohmann::json SnapshotSourceJson(const SourceSnapshot& source);

// What a submit command sends of the caller's environment (client/submitter_env.h):
// all of it less secrets-looking names by default; `--pass-env NAME` sends one
// of those anyway, `--daemon-env` nothing (the run gets the daemon's).
struct SubmitterEnvOptions {
  bool daemon_env = false;
  std::vector<std::string> pass_env;
};
void AddSubmitterEnvOptions(CLI::App& cmd, SubmitterEnvOptions& o);
// Sets config->submitter_environment from this process's environment
// unless o.daemon_env.
void ApplySubmitterEnv(const SubmitterEnvOptions& o, amld::v1::RunConfig* config);

}  // namespace amld::client::commands
