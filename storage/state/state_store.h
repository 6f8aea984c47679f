// StateStore: the workspace's durable state in one SQLite file — experiments,
// runs and every status transition they went through, artifacts, metrics.
// Logs and artifact bytes are files and CAS blobs, never rows.
//
// SQLite in WAL mode with foreign keys on; the schema is migrated forward by
// `PRAGMA user_version` when the file is opened (an older file always
// loads; a newer one is refused with FAILED_PRECONDITION). Every status
// change goes through Transition(), one transaction each; illegal ones
// (COMPLETED → RUNNING, anything out of a terminal status: the table is in
// run_status.h) are refused with FAILED_PRECONDITION and change nothing. A call that returned OK survives
// the daemon being killed at any moment; with synchronous=NORMAL the last
// commits can be lost if the machine loses power, never the file's integrity.
//
// Thread-safety: thread-safe; calls are serialized on one connection (the
// daemon is the only writer).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "amld/v1/compute.pb.h"
#include "amld/v1/experiments.pb.h"
#include "amld/v1/models.pb.h"
#include "amld/v1/runs.pb.h"
#include "storage/digest.h"
#include "storage/run_status.h"

namespace amld::storage {

// OK when `name` is 1 to 128 letters, digits, '-', '_' and '.', starting with
// a letter or digit; otherwise INVALID_ARGUMENT saying what is wrong. No run
// id can then start with '.', which the run folder pool's spares rely on.
absl::Status ValidateExperimentName(const std::string& name);

// The built-in compute target: this machine. Always exists, never stored.
inline constexpr char kLocalTargetName[] = "local";
// OK when `target` may be stored: a valid name (1 to 128 letters, digits,
// '-', '_', '.'), exactly one kind, and not the local kind; INVALID_ARGUMENT
// saying what to change otherwise. These are the store's own rules; what a
// kind's settings mean (an ssh host, a slurm workdir) is checked by that
// kind's executor (daemon/executors/{ssh,slurm}/*_target.h) before the
// target is stored.
absl::Status ValidateComputeTarget(const amld::v1::ComputeTarget& target);
// INVALID_ARGUMENT "compute target "NAME": WHAT", the shape of every
// complaint about a target's settings.
absl::Status InvalidComputeTarget(const std::string& name, absl::string_view what);

// What a new run is created with.
struct NewRun {
  std::string id;
  amld::v1::RunConfig config;  // config.experiment_name names the experiment
  uint32_t submitter_uid = 0;
  std::string parent_run_id;  // empty when none
  absl::Time now;
};

// Extra facts recorded with a transition; unset fields leave the run's
// values as they are.
struct TransitionDetails {
  // The {} initializers let callers use designated initializers naming only
  // what they set, without -Wmissing-field-initializers warnings.
  std::string reason{};  // stored with the transition
  std::optional<int> exit_code{};
  std::optional<int> exit_signal{};
  std::optional<std::string> error{};  // Run.error
  std::optional<std::string> placement{};
  // Run.assigned_gpus, replaced as a whole.
  std::optional<std::vector<int>> assigned_gpus{};
  // The executor's handle (SetRunHandle), stored in the same transaction:
  // RUNNING and the handle that lets a restart re-adopt the run become
  // durable together, in one commit instead of two.
  std::optional<std::string> handle{};
};

struct RunFilter {
  std::string experiment_name{};      // empty: any
  std::vector<RunStatus> statuses{};  // empty: any
  std::optional<uint32_t> submitter_uid{};
  std::string parent_run_id{};  // empty: any
  int page_size = 50;           // <= 0 means 50; clamped to 1000
  std::string page_token{};     // from RunPage::next_page_token
};

struct RunPage {
  std::vector<amld::v1::Run> runs;  // newest first
  std::string next_page_token;      // empty on the last page
};

struct Artifact {
  std::string path;  // "outputs/model.json"
  Digest digest;
};

// What changes about a run after submit (Runs.UpdateRun, or the run's own
// "tags"/"properties"/"display_name"/"fail" lines). Applied in this order:
// set_tags, remove_tags, add_properties, display_name, failure.
struct RunLabelChanges {
  std::vector<std::pair<std::string, std::string>> set_tags{};
  std::vector<std::string> remove_tags{};
  std::vector<std::pair<std::string, std::string>> add_properties{};
  std::optional<std::string> display_name{};
  // The script called run.fail(details): the run ends FAILED with this.
  std::optional<std::string> failure{};
};

// Model names: 1 to 255 letters, digits, '-', '_' and '.', starting with a
// letter or digit (azureml's rule); INVALID_ARGUMENT otherwise.
absl::Status ValidateModelName(const std::string& name);

class StateStore {
 public:
  // Opens or creates the database at `path` and migrates it. The folder
  // must exist. FAILED_PRECONDITION for a file of a newer amld (upgrade
  // amld), a file that is not a database, or another program's database.
  static absl::StatusOr<std::unique_ptr<StateStore>> Open(const std::filesystem::path& path);
  ~StateStore();

  // The schema version this code writes (the latest migration).
  static int LatestSchemaVersion();
  // The file's `PRAGMA user_version`.
  absl::StatusOr<int> SchemaVersion();

  // Experiments. CreateExperiment returns the existing one when present;
  // INVALID_ARGUMENT for a name ValidateExperimentName refuses. NOT_FOUND
  // from GetExperiment when none has that name. Listed by name.
  absl::StatusOr<amld::v1::Experiment> CreateExperiment(const std::string& name, absl::Time now);
  absl::StatusOr<amld::v1::Experiment> GetExperiment(const std::string& name);
  absl::StatusOr<std::vector<amld::v1::Experiment>> ListExperiments();

  // Creates the experiment if needed and the run as QUEUED, in one
  // transaction. ALREADY_EXISTS when the id is taken; NOT_FOUND when the
  // parent run does not exist; INVALID_ARGUMENT for an empty id, a bad
  // experiment name or a malformed snapshot digest.
  absl::StatusOr<amld::v1::Run> InsertRun(const NewRun& run);
  // NOT_FOUND when no run has that id.
  absl::StatusOr<amld::v1::Run> GetRun(const std::string& id);
  // INVALID_ARGUMENT for a token this store did not issue or an UNKNOWN or
  // unknown status in the filter.
  absl::StatusOr<RunPage> ListRuns(const RunFilter& filter);
  // The ids of runs whose id starts or ends with `fragment`, newest first,
  // at most `limit` (for typed ids: daemon/services/run_ids.h). Scans the
  // ids (a suffix cannot use the index): ~10 ms per 100,000 runs.
  absl::StatusOr<std::vector<std::string>> FindRunIds(const std::string& fragment, int limit);
  // Every run in one of `statuses`, oldest first (for the scheduler and
  // recovery at start); none when `statuses` is empty.
  absl::StatusOr<std::vector<amld::v1::Run>> RunsInStatus(const std::vector<RunStatus>& statuses);
  // Number of runs in each status.
  absl::StatusOr<absl::flat_hash_map<RunStatus, int64_t>> CountByStatus();

  // Moves the run to `to` and records the transition at `now`.
  // FAILED_PRECONDITION when illegal; NOT_FOUND when no such run.
  absl::StatusOr<amld::v1::Run> Transition(const std::string& run_id, RunStatus to,
                                           const TransitionDetails& details, absl::Time now);

  // The executor's opaque handle of a run (pids, host, job id), for
  // re-adoption after a restart. Empty when none was set; NOT_FOUND when no
  // run has that id.
  absl::Status SetRunHandle(const std::string& run_id, const std::string& handle);
  absl::StatusOr<std::string> GetRunHandle(const std::string& run_id);

  // Write transactions committed since Open: a counting seam for tests that
  // hold the run lifecycle to a number of commits (each costs WAL pages).
  int64_t write_transactions() const;

  // Replaces Run.placement without a status change: where a run handed to
  // another scheduler waits and what that scheduler says ("slurm:1234
  // PENDING (Resources)"). FAILED_PRECONDITION for a terminal run (its
  // record is final); NOT_FOUND when no run has that id.
  absl::StatusOr<amld::v1::Run> SetRunPlacement(const std::string& run_id,
                                                const std::string& placement);

  // Deletes an ended run's rows — the run, its transitions, artifacts and
  // metrics — in one transaction. NOT_FOUND when no run has that id;
  // FAILED_PRECONDITION when it has not ended, or when runs name it as their
  // parent (delete those first). The CAS objects it named are not touched.
  absl::Status DeleteRun(const std::string& run_id);

  // Adds or replaces artifacts of a run, in one transaction; all or none.
  // INVALID_ARGUMENT for a malformed digest or a path that is empty,
  // absolute, or has an empty, "." or ".." component; NOT_FOUND when no run
  // has that id (also from ListArtifacts).
  absl::Status PutArtifacts(const std::string& run_id, const std::vector<Artifact>& artifacts);
  // Removes the run's artifacts at exactly these paths (files that vanished
  // while the run ran), in one transaction; paths it does not have are
  // ignored. NOT_FOUND when no run has that id.
  absl::Status RemoveArtifacts(const std::string& run_id, const std::vector<std::string>& paths);
  // Artifacts whose path starts with `prefix`, sorted by path.
  absl::StatusOr<std::vector<Artifact>> ListArtifacts(const std::string& run_id,
                                                      const std::string& prefix = "");
  // NOT_FOUND when the run has no artifact at `path`.
  absl::StatusOr<Artifact> GetArtifact(const std::string& run_id, const std::string& path);

  // Appends metric values, in one transaction; all or none. INVALID_ARGUMENT
  // when a metric has no name, no value or no time; NOT_FOUND when no run
  // has that id (also from GetMetrics). NaN and infinities are kept.
  //
  // `source` names the file the values were read from when it is not the
  // run's metrics.jsonl (or a client's call): a TensorBoard events file,
  // "logs/…/events.out.tfevents.…"; `source_offsets` then holds, for each
  // value, the end offset of the record it came from, so a restarted
  // daemon resumes every source where the last one stopped
  // (GetMetricSources) — nothing twice, nothing lost.
  absl::Status AppendMetrics(const std::string& run_id,
                             const std::vector<amld::v1::Metric>& metrics,
                             const std::string& source = "",
                             const std::vector<int64_t>& source_offsets = {});
  // Per source of the run's values ("" for metrics.jsonl and clients'
  // calls): how many values it gave and the largest offset recorded.
  struct MetricSourceProgress {
    int64_t values = 0;
    int64_t end_offset = 0;
  };
  absl::StatusOr<absl::flat_hash_map<std::string, MetricSourceProgress>> GetMetricSources(
      const std::string& run_id);
  // Values ordered by name, step, time; `names` empty means all.
  absl::StatusOr<std::vector<amld::v1::Metric>> GetMetrics(const std::string& run_id,
                                                           const std::vector<std::string>& names);

  // Applies `changes` in one transaction and returns the run with them
  // (Run.tags, properties, display_name). INVALID_ARGUMENT for an empty
  // tag or property key; FAILED_PRECONDITION when a property is already
  // set to another value (nothing is changed then); NOT_FOUND when no run
  // has that id. Allowed in any status: azureml tags finished runs too.
  absl::StatusOr<amld::v1::Run> UpdateRunLabels(const std::string& run_id,
                                                const RunLabelChanges& changes);
  // The failure the run's script asked for (run.fail), if it did.
  absl::StatusOr<std::optional<std::string>> RequestedFailure(const std::string& run_id);

  // Models (proto amld/v1/models.proto). RegisterModel stores `model` as
  // the next version of model.name() (version, created_time set here) and
  // returns it; `origin`, when not empty, is unique: a second registration
  // with the same origin returns the first one unchanged. INVALID_ARGUMENT
  // for a bad name or a file path ValidateRelativePath refuses; NOT_FOUND
  // when model.run_id() names no run.
  absl::StatusOr<amld::v1::Model> RegisterModel(const amld::v1::Model& model,
                                                const std::string& origin, absl::Time now);
  // Registers run `run_id`'s artifacts at `run_path` as the next version
  // of model.name() (run_id and source_path set here): one artifact, then
  // the model is that file under its base name (single_file); a folder,
  // then every artifact under it, with paths relative to it ("" or "." is
  // every artifact of the run's outputs/). NOT_FOUND when the run has none
  // there (the message names a few it has); otherwise as RegisterModel.
  absl::StatusOr<amld::v1::Model> RegisterModelFromRun(amld::v1::Model model,
                                                       const std::string& run_id,
                                                       const std::string& run_path,
                                                       const std::string& origin, absl::Time now);
  // Version 0: the latest. NOT_FOUND when there is none.
  absl::StatusOr<amld::v1::Model> GetModel(const std::string& name, int64_t version);
  // By name, newest version first; `name` empty: all; `run_id` not empty:
  // only that run's.
  absl::StatusOr<std::vector<amld::v1::Model>> ListModels(const std::string& name,
                                                          bool latest_only,
                                                          const std::string& run_id);

  // Compute targets (proto amld/v1/compute.proto). The built-in "local"
  // target is returned by Get and List but never stored.
  // Create: INVALID_ARGUMENT when ValidateComputeTarget refuses it;
  // ALREADY_EXISTS when the name is taken ("local" included). created_time
  // is set to `now`.
  absl::StatusOr<amld::v1::ComputeTarget> CreateComputeTarget(const amld::v1::ComputeTarget& target,
                                                              absl::Time now);
  // NOT_FOUND when no target has that name.
  absl::StatusOr<amld::v1::ComputeTarget> GetComputeTarget(const std::string& name);
  // Every target, "local" included, sorted by name.
  absl::StatusOr<std::vector<amld::v1::ComputeTarget>> ListComputeTargets();
  // Removes a target, in one transaction with the check that no run which
  // has not ended (any non-terminal status) names it: FAILED_PRECONDITION
  // naming such a run, or for "local"; NOT_FOUND when none has that name.
  absl::Status DeleteComputeTarget(const std::string& name);

  // Proof of content (system mode; daemon/services/content_proof.h): `uid`
  // sent the daemon the bytes of each of `digests` (an upload checked
  // against its digest), so it may refer to them. Table blob_claims.
  absl::Status AddBlobClaims(uint32_t uid, const std::vector<Digest>& digests);
  // The digests among `digests` that `uid` has no claim on, in their order.
  absl::StatusOr<std::vector<Digest>> UnclaimedBlobs(uint32_t uid,
                                                     const std::vector<Digest>& digests);
  // Drops every uid's claims on the blobs with these hashes: the CAS no
  // longer holds them (garbage collection), so whoever sends them again
  // proves them again.
  absl::Status RemoveBlobClaims(const std::vector<std::string>& hashes);

  // Every digest a run refers to directly, the roots of garbage collection:
  // snapshot roots (trees, expanded by the caller) and artifacts (plain
  // blobs). Each list sorted, without duplicates.
  struct References {
    std::vector<Digest> snapshot_roots;
    std::vector<Digest> artifacts;  // registered models' files included
  };
  absl::StatusOr<References> ReferencedDigests();

 private:
  struct Impl;
  explicit StateStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace amld::storage
