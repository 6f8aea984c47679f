#include "storage/state/state_schema.h"

namespace amld::storage {
namespace {

// Version 1: the first shipped schema. tests/data/state-v1.sql repeats it
// verbatim (state_store_test checks that the two agree).
//
// Conventions: times are int64 nanoseconds since the Unix epoch; statuses
// are amld.v1.RunStatus.Value numbers; a run's config is its serialized
// amld.v1.RunConfig, with the fields that are filtered or sorted on copied
// into indexed columns. A metric is a number (REAL) or a text; since SQLite
// stores a NaN REAL as NULL, a row with both NULL is the number NaN.
constexpr char kV1Sql[] = R"sql(
CREATE TABLE experiments (
  name TEXT PRIMARY KEY,
  created_ns INTEGER NOT NULL
) STRICT;

CREATE TABLE runs (
  id TEXT PRIMARY KEY,
  experiment TEXT NOT NULL REFERENCES experiments(name),
  config BLOB NOT NULL,
  snapshot_hash TEXT,
  snapshot_size INTEGER,
  status INTEGER NOT NULL,
  created_ns INTEGER NOT NULL,
  exit_code INTEGER NOT NULL DEFAULT 0,
  exit_signal INTEGER NOT NULL DEFAULT 0,
  error TEXT NOT NULL DEFAULT '',
  placement TEXT NOT NULL DEFAULT '',
  submitter_uid INTEGER NOT NULL,
  parent_run_id TEXT REFERENCES runs(id),
  git_repository TEXT NOT NULL DEFAULT '',
  git_commit TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX runs_by_created ON runs(created_ns, id);
CREATE INDEX runs_by_experiment ON runs(experiment, created_ns, id);
CREATE INDEX runs_by_status ON runs(status, created_ns, id);

CREATE TABLE run_transitions (
  run_id TEXT NOT NULL REFERENCES runs(id),
  seq INTEGER NOT NULL,
  status INTEGER NOT NULL,
  time_ns INTEGER NOT NULL,
  reason TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (run_id, seq)
) WITHOUT ROWID, STRICT;

CREATE TABLE artifacts (
  run_id TEXT NOT NULL REFERENCES runs(id),
  path TEXT NOT NULL,
  hash TEXT NOT NULL,
  size INTEGER NOT NULL,
  PRIMARY KEY (run_id, path)
) WITHOUT ROWID, STRICT;

CREATE TABLE metrics (
  run_id TEXT NOT NULL REFERENCES runs(id),
  name TEXT NOT NULL,
  step INTEGER NOT NULL,
  time_ns INTEGER NOT NULL,
  number REAL,
  text TEXT,
  CHECK (number IS NULL OR text IS NULL)
) STRICT;
)sql";

// Version 2: what re-adopting runs after a restart and reading metrics of
// long runs need. The executor's handle of a run (pids, host, job id) gets a
// column; metrics, read per run and name, get an index (v1 scanned the whole
// table); the submitter and parent filters of ListRuns get theirs.
constexpr char kV2Sql[] = R"sql(
ALTER TABLE runs ADD COLUMN handle TEXT NOT NULL DEFAULT '';
CREATE INDEX metrics_by_run ON metrics(run_id, name, step, time_ns);
CREATE INDEX runs_by_submitter ON runs(submitter_uid, created_ns, id);
CREATE INDEX runs_by_parent ON runs(parent_run_id, created_ns, id);
)sql";

// Version 3: the GPUs the scheduler gave a run (comma-separated ids, "" for
// none), recorded when it leaves the queue, so a run re-adopted after a
// restart keeps its GPUs and no other run is given them.
constexpr char kV3Sql[] = R"sql(
ALTER TABLE runs ADD COLUMN assigned_gpus TEXT NOT NULL DEFAULT '';
)sql";

// Version 4: compute targets (proto amld.v1.ComputeTarget) as rows. A
// target is its serialized ComputeTarget (name and created_time included);
// the name and time are copied into columns for lookup and listing. The
// built-in "local" target is not stored: it always exists.
constexpr char kV4Sql[] = R"sql(
CREATE TABLE compute_targets (
  name TEXT PRIMARY KEY,
  target BLOB NOT NULL,
  created_ns INTEGER NOT NULL
) STRICT;
)sql";

// Version 5: what changes about a run after submit, and registered models.
// run_labels holds a run's tag changes (kind 1; a NULL value removes a tag
// given at submit), its properties (kind 2, add-only), a new display name
// (kind 3, key '') and a failure its script asked for with run.fail() (kind
// 4, key '': applied when the run ends). A model version is its serialized
// amld.v1.Model; `origin` ("<run id>:<line>") makes a registration a run's
// metrics file asked for happen once however often the file is read.
constexpr char kV5Sql[] = R"sql(
CREATE TABLE run_labels (
  run_id TEXT NOT NULL REFERENCES runs(id),
  kind INTEGER NOT NULL,
  key TEXT NOT NULL,
  value TEXT,
  PRIMARY KEY (run_id, kind, key)
) WITHOUT ROWID, STRICT;

CREATE TABLE models (
  name TEXT NOT NULL,
  version INTEGER NOT NULL,
  model BLOB NOT NULL,
  run_id TEXT REFERENCES runs(id),
  origin TEXT UNIQUE,
  created_ns INTEGER NOT NULL,
  PRIMARY KEY (name, version)
) STRICT;
CREATE INDEX models_by_run ON models(run_id);
)sql";

// Version 6: what get_metrics() needs to give values back as azureml does:
// the Python type the SDK logged (amld.v1.Metric.ValueType: int, bool, None)
// and, for a column of a table (log_row, log_table), the table's name.
constexpr char kV6Sql[] = R"sql(
ALTER TABLE metrics ADD COLUMN value_type INTEGER NOT NULL DEFAULT 0;
ALTER TABLE metrics ADD COLUMN table_name TEXT NOT NULL DEFAULT '';
)sql";

// Version 7: where a metric value came from. '' is the run's metrics.jsonl
// (and clients' calls); otherwise the file it was read from (a TensorBoard
// events file under logs/) and the end offset of its record, so a restarted
// daemon resumes each file where the last one stopped.
constexpr char kV7Sql[] = R"sql(
ALTER TABLE metrics ADD COLUMN source TEXT NOT NULL DEFAULT '';
ALTER TABLE metrics ADD COLUMN source_offset INTEGER NOT NULL DEFAULT 0;
)sql";

// Version 8: proof of content (system mode): which uid has sent the daemon
// the bytes of which blob (an upload checked against its digest), so that
// knowing a digest alone never lets a user read or reuse another's content.
constexpr char kV8Sql[] = R"sql(
CREATE TABLE blob_claims (
  uid INTEGER NOT NULL,
  hash TEXT NOT NULL,
  PRIMARY KEY (uid, hash)
) STRICT, WITHOUT ROWID;
)sql";

constexpr SchemaMigration kMigrations[] = {
    {1, "initial tables: experiments, runs, run_transitions, artifacts, metrics", kV1Sql},
    {2, "run handle column; metrics, submitter and parent indexes", kV2Sql},
    {3, "assigned GPUs column", kV3Sql},
    {4, "compute targets table", kV4Sql},
    {5, "run labels (tags, properties, display name, requested failure); models", kV5Sql},
    {6, "metric value types and table names", kV6Sql},
    {7, "metric sources (TensorBoard event files) and their offsets", kV7Sql},
    {8, "blob claims per uid", kV8Sql},
};

}  // namespace

std::span<const SchemaMigration> SchemaMigrations() { return kMigrations; }

}  // namespace amld::storage
