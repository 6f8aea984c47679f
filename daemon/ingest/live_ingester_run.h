// Private to daemon/ingest/live_ingester*.cc: the state the LiveIngester
// keeps for one watched run, shared by its file half (live_ingester.cc:
// watches, artifacts, Finish) and its metrics half (live_ingester_metrics.cc:
// metrics.jsonl, run records, TensorBoard event files).
#pragma once

#include <fcntl.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "base/file_util.h"
#include "daemon/ingest/artifact_sync.h"
#include "daemon/ingest/live_ingester.h"
#include "daemon/ingest/metrics_tail.h"
#include "daemon/ingest/tf_events.h"

namespace amld::daemon {

namespace live_ingester_internal {

// An O_PATH handle on a run folder, never through a symlink (the run owns
// what is inside and may replace it).
inline amld::base::ScopedFd OpenFolderPath(const std::filesystem::path& dir) {
  return amld::base::ScopedFd(
      ::open(dir.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
}

}  // namespace live_ingester_internal

struct LiveIngester::RunState {
  RunState(std::string id, RunPaths p, amld::storage::ContentStore* cas, absl::Duration racy)
      : run_id(std::move(id)), paths(std::move(p)), sync(cas, paths.wd, racy) {}

  const std::string run_id;
  const RunPaths paths;
  // Set (under the ingester's mutex) once the run is no longer watched.
  std::atomic<bool> done{false};

  absl::Mutex mu;
  bool seeded ABSL_GUARDED_BY(mu) = false;
  ArtifactSync sync ABSL_GUARDED_BY(mu);
  MetricsTail metrics ABSL_GUARDED_BY(mu);
  // TensorBoard event files being followed, by path under wd/; and where a
  // previous daemon stopped in each (from the store, at Seed).
  std::map<std::string, TfEventsTail> tf_events ABSL_GUARDED_BY(mu);
  absl::flat_hash_map<std::string, int64_t> tf_events_resume ABSL_GUARDED_BY(mu);
  bool metrics_file_reported ABSL_GUARDED_BY(mu) = false;
  bool degraded ABSL_GUARDED_BY(mu) = false;  // a watch was refused this pass
  bool degraded_logged ABSL_GUARDED_BY(mu) = false;
  // Removals the store refused while the run ran; retried at Finish.
  std::vector<std::string> unapplied_removals ABSL_GUARDED_BY(mu);
  // Files stored in the CAS, not yet durable, so not yet recorded.
  std::map<std::string, amld::storage::Digest> unrecorded ABSL_GUARDED_BY(mu);
  // register_model lines read so far, done at Finish (after the last files
  // are recorded).
  std::vector<RunRecordLine> model_registrations ABSL_GUARDED_BY(mu);
};

}  // namespace amld::daemon
