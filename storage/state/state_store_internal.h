// What the StateStore's implementation files share: the connection behind
// the public class (StateStore::Impl), reading runs and experiments back
// from rows, and time conversions. state_store.cc opens, migrates and holds
// experiments; state_store_runs.cc runs and their transitions;
// state_store_artifacts.cc artifacts and metrics; state_store_targets.cc
// compute targets; state_store_labels.cc what changes about a run after
// submit; state_store_models.cc registered models; state_store_claims.cc
// which uid has proved it holds which blob.
//
// Internal to storage/state/: include it only from the StateStore's own .cc
// files.
//
// Thread-safety: every Impl method expects `mu` held by the public
// StateStore method that called it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "google/protobuf/timestamp.pb.h"
#include "storage/state/sqlite.h"
#include "storage/state/state_schema.h"
#include "storage/state/state_store.h"

namespace amld::storage {

inline int64_t ToNanos(absl::Time t) { return absl::ToUnixNanos(t); }
google::protobuf::Timestamp TimestampFromNanos(int64_t ns);
int64_t NanosFromTimestamp(const google::protobuf::Timestamp& ts);

// OK when `name` is 1 to 128 letters, digits, '-', '_' and '.'; otherwise
// INVALID_ARGUMENT naming `what` ("experiment", "compute target").
absl::Status ValidateName(absl::string_view what, const std::string& name);

// OK for a relative path without empty, "." or ".." parts (artifacts,
// model files); INVALID_ARGUMENT saying what to change otherwise.
absl::Status ValidateArtifactPath(const std::string& path);

// The columns Impl::RunFromRow reads, in its order.
inline constexpr char kRunColumns[] =
    "id, config, status, created_ns, exit_code, exit_signal, error, placement, submitter_uid, "
    "parent_run_id, assigned_gpus";

struct StateStore::Impl {
  SqliteDb db;
  absl::Mutex mu;

  // -- Opening and migrating (state_store.cc) --------------------------------
  // Reads the file's header before changing anything, so that a foreign or
  // newer file is refused untouched. Returns the schema version.
  absl::StatusOr<int64_t> CheckFile();
  absl::Status CheckIntegrity();  // PRAGMA quick_check
  absl::Status Configure();
  // Applies every migration past `version`, each in its own transaction, so
  // an interrupted upgrade resumes from the last completed step.
  absl::Status Migrate(int64_t version);
  absl::Status ApplyMigration(const SchemaMigration& m);

  // -- Experiments (state_store.cc) ------------------------------------------
  absl::StatusOr<amld::v1::Experiment> LoadExperiment(const std::string& name);
  static std::string ExperimentQuery(absl::string_view where);
  absl::StatusOr<std::vector<amld::v1::Experiment>> CollectExperiments(Stmt& stmt);
  // Inside a write transaction.
  absl::Status EnsureExperiment(const std::string& name, int64_t now_ns);

  // -- Runs (state_store_runs.cc) --------------------------------------------
  absl::StatusOr<bool> RunExists(const std::string& id);
  // NOT_FOUND when no run has that id.
  absl::Status RequireRun(const std::string& id);
  // Builds a Run (without history) from a row of kRunColumns.
  absl::StatusOr<amld::v1::Run> RunFromRow(Stmt& row);
  absl::Status LoadHistory(amld::v1::Run* run);
  // Fills Run.tags, properties and display_name from config and run_labels
  // (state_store_labels.cc).
  absl::Status LoadLabels(amld::v1::Run* run);
  // Runs a query over kRunColumns and returns every run with its history.
  absl::StatusOr<std::vector<amld::v1::Run>> CollectRuns(Stmt& stmt);
  absl::StatusOr<amld::v1::Run> LoadRun(const std::string& id);
  // Inside a write transaction.
  absl::Status AddTransition(const std::string& run_id, RunStatus status, int64_t time_ns,
                             const std::string& reason);
  absl::StatusOr<amld::v1::Run> InsertRunLocked(const NewRun& run);
  absl::StatusOr<amld::v1::Run> TransitionLocked(const std::string& run_id, RunStatus to,
                                                 const TransitionDetails& details, int64_t now_ns);
};

}  // namespace amld::storage
