#include "storage/state/state_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "amld/v1/common.pb.h"
#include "storage/state/state_schema.h"
#include "base/status_macros.h"

namespace amld::storage {

namespace v1 = amld::v1;

// ---------------------------------------------------------------------------
// Statuses: the one table of legal changes.

bool IsTerminal(RunStatus s) {
  return s == v1::RunStatus::COMPLETED || s == v1::RunStatus::FAILED ||
         s == v1::RunStatus::CANCELED;
}

bool IsLegalTransition(RunStatus from, RunStatus to) {
  switch (from) {
    case v1::RunStatus::QUEUED:
    case v1::RunStatus::PREPARING:
    case v1::RunStatus::STARTING: {
      // Each may advance one step; a cancel before the process runs needs
      // nothing killed, so it may also go straight to CANCELED.
      RunStatus next = from == v1::RunStatus::QUEUED      ? v1::RunStatus::PREPARING
                       : from == v1::RunStatus::PREPARING ? v1::RunStatus::STARTING
                                                          : v1::RunStatus::RUNNING;
      return to == next || to == v1::RunStatus::CANCEL_REQUESTED || to == v1::RunStatus::CANCELED ||
             to == v1::RunStatus::FAILED;
    }
    case v1::RunStatus::RUNNING:
      // A running process ends through FINALIZING (its outputs are stored)
      // or FAILED (e.g. the daemon lost it); CANCELED needs a cancel asked.
      return to == v1::RunStatus::FINALIZING || to == v1::RunStatus::CANCEL_REQUESTED ||
             to == v1::RunStatus::FAILED;
    case v1::RunStatus::CANCEL_REQUESTED:
      return to == v1::RunStatus::FINALIZING || to == v1::RunStatus::CANCELED ||
             to == v1::RunStatus::FAILED;
    case v1::RunStatus::FINALIZING:
      return to == v1::RunStatus::COMPLETED || to == v1::RunStatus::FAILED ||
             to == v1::RunStatus::CANCELED;
    default:
      // Terminal statuses, UNKNOWN and values this build does not know.
      return false;
  }
}

std::string StatusName(RunStatus s) {
  if (amld::v1::RunStatus_Value_IsValid(s)) return amld::v1::RunStatus_Value_Name(s);
  return absl::StrCat("STATUS(", static_cast<int>(s), ")");
}

absl::Status ValidateExperimentName(const std::string& name) {
  if (name.empty() || name.size() > 128) {
    return absl::InvalidArgumentError(
        absl::StrCat("experiment name must be 1 to 128 characters, got ", name.size()));
  }
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.';
    if (!ok) {
      return absl::InvalidArgumentError(
          absl::StrCat("experiment name \"", absl::CHexEscape(name),
                       "\" may contain only letters, digits, '-', '_' and '.'"));
    }
  }
  return absl::OkStatus();
}

namespace {

// ---------------------------------------------------------------------------
// Small conversions.

int64_t ToNanos(absl::Time t) { return absl::ToUnixNanos(t); }

google::protobuf::Timestamp TimestampFromNanos(int64_t ns) {
  int64_t seconds = ns / 1'000'000'000;
  int64_t nanos = ns % 1'000'000'000;
  if (nanos < 0) {  // floor division, so nanos is always in [0, 1e9)
    seconds -= 1;
    nanos += 1'000'000'000;
  }
  google::protobuf::Timestamp ts;
  ts.set_seconds(seconds);
  ts.set_nanos(static_cast<int32_t>(nanos));
  return ts;
}

int64_t NanosFromTimestamp(const google::protobuf::Timestamp& ts) {
  return ToNanos(absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos()));
}

// Artifact paths come from files under a run's folders; refusing anything
// that could name a file outside the run keeps every later consumer (the
// download RPC, materialization) safe by construction.
absl::Status ValidateArtifactPath(const std::string& path) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("artifact path \"", absl::CHexEscape(path), "\" ", why,
                     "; use a relative path like \"outputs/model.json\""));
  };
  if (path.empty()) return bad("is empty");
  if (path.size() > 4096) return bad("is longer than 4096 bytes");
  if (path.front() == '/') return bad("is absolute");
  if (path.find('\0') != std::string::npos) return bad("contains a NUL byte");
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    if (part.empty() || part == "." || part == "..") {
      return bad("has an empty, \".\" or \"..\" component");
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateStatusFilter(const std::vector<RunStatus>& statuses) {
  for (RunStatus s : statuses) {
    if (s == v1::RunStatus::UNKNOWN || !amld::v1::RunStatus_Value_IsValid(s)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "status filter ", StatusName(s), " is not a run status; use QUEUED, RUNNING, ..."));
    }
  }
  return absl::OkStatus();
}

// Sorted, without duplicates, so equal filters share one cached statement.
std::vector<int> DistinctStatuses(const std::vector<RunStatus>& statuses) {
  std::set<int> distinct(statuses.begin(), statuses.end());
  return {distinct.begin(), distinct.end()};
}

std::string Placeholders(size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) absl::StrAppend(&out, i ? ",?" : "?");
  return out;
}

// Page tokens: web-safe base64 of "r1:<created_ns>:<id>", the keyset
// position after the last run of the previous page. The version prefix lets
// a later format refuse old tokens cleanly.
constexpr absl::string_view kPageTokenPrefix = "r1:";

struct PagePosition {
  int64_t created_ns;
  std::string id;
};

std::string EncodePageToken(int64_t created_ns, const std::string& id) {
  return absl::WebSafeBase64Escape(absl::StrCat(kPageTokenPrefix, created_ns, ":", id));
}

absl::StatusOr<PagePosition> DecodePageToken(const std::string& token) {
  auto invalid = [] {
    return absl::InvalidArgumentError(
        "page token is not one this daemon issued; list again from the first page (empty token)");
  };
  std::string raw;
  if (!absl::WebSafeBase64Unescape(token, &raw)) return invalid();
  if (!absl::StartsWith(raw, kPageTokenPrefix)) return invalid();
  absl::string_view rest = absl::string_view(raw).substr(kPageTokenPrefix.size());
  size_t colon = rest.find(':');
  if (colon == absl::string_view::npos || colon + 1 == rest.size()) return invalid();
  PagePosition pos;
  if (!absl::SimpleAtoi(rest.substr(0, colon), &pos.created_ns)) return invalid();
  pos.id = std::string(rest.substr(colon + 1));
  return pos;
}

// ---------------------------------------------------------------------------
// SQLite plumbing.

absl::Status SqliteStatus(sqlite3* db, int rc, absl::string_view what) {
  std::string msg = absl::StrCat("state database: ", what, ": ",
                                 db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::UnavailableError(absl::StrCat(
          msg, " (another process holds the database; is a second amld using this data dir?)"));
    case SQLITE_FULL:
      return absl::ResourceExhaustedError(msg);
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH:
      return absl::PermissionDeniedError(msg);
    case SQLITE_CORRUPT:
      return absl::DataLossError(msg);
    case SQLITE_NOTADB:
    case SQLITE_CANTOPEN:
      return absl::FailedPreconditionError(msg);
    case SQLITE_CONSTRAINT:
      if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE) {
        return absl::AlreadyExistsError(msg);
      }
      return absl::FailedPreconditionError(msg);
    default:
      return absl::InternalError(msg);
  }
}

struct StmtFinalizer {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using StmtPtr = std::unique_ptr<sqlite3_stmt, StmtFinalizer>;

// A cached prepared statement, lent out to one user at a time.
struct CachedStmt {
  StmtPtr stmt;
  bool in_use = false;
};

// One use of a prepared statement. Resets it and clears its bindings when it
// goes away, so the cached statement is clean for the next user; a bind
// error is remembered and returned by the next Step().
class Stmt {
 public:
  Stmt(sqlite3* db, CachedStmt* cached) : db_(db), stmt_(cached->stmt.get()), cached_(cached) {
    cached_->in_use = true;
  }
  Stmt(sqlite3* db, StmtPtr owned) : db_(db), stmt_(owned.get()), owned_(std::move(owned)) {}
  Stmt(Stmt&& o) noexcept
      : db_(o.db_),
        stmt_(std::exchange(o.stmt_, nullptr)),
        cached_(std::exchange(o.cached_, nullptr)),
        owned_(std::move(o.owned_)),
        bind_rc_(o.bind_rc_) {}
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  Stmt& operator=(Stmt&&) = delete;
  ~Stmt() {
    if (stmt_ == nullptr) return;
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
    if (cached_ != nullptr) cached_->in_use = false;
  }

  Stmt& BindInt(int i, int64_t v) { return Check(sqlite3_bind_int64(stmt_, i, v)); }
  Stmt& BindDouble(int i, double v) { return Check(sqlite3_bind_double(stmt_, i, v)); }
  Stmt& BindNull(int i) { return Check(sqlite3_bind_null(stmt_, i)); }
  Stmt& BindText(int i, absl::string_view v) {
    return Check(sqlite3_bind_text64(stmt_, i, v.data(), v.size(), SQLITE_TRANSIENT, SQLITE_UTF8));
  }
  Stmt& BindBlob(int i, absl::string_view v) {
    return Check(sqlite3_bind_blob64(stmt_, i, v.data(), v.size(), SQLITE_TRANSIENT));
  }
  template <typename T>
  Stmt& BindOptionalInt(int i, const std::optional<T>& v) {
    return v ? BindInt(i, *v) : BindNull(i);
  }
  Stmt& BindOptionalText(int i, const std::optional<std::string>& v) {
    return v ? BindText(i, *v) : BindNull(i);
  }

  // True when a row is ready, false when done.
  absl::StatusOr<bool> Step() {
    if (bind_rc_ != SQLITE_OK) return SqliteStatus(db_, bind_rc_, "binding a parameter");
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return SqliteStatus(db_, rc, sqlite3_sql(stmt_));
  }
  // Runs a statement that returns no rows.
  absl::Status Run() { return Step().status(); }

  bool IsNull(int col) { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  int64_t Int(int col) { return sqlite3_column_int64(stmt_, col); }
  double Double(int col) { return sqlite3_column_double(stmt_, col); }
  std::string Text(int col) {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
    return p == nullptr ? std::string() : std::string(p, sqlite3_column_bytes(stmt_, col));
  }
  std::string Blob(int col) {
    const auto* p = static_cast<const char*>(sqlite3_column_blob(stmt_, col));
    return p == nullptr ? std::string() : std::string(p, sqlite3_column_bytes(stmt_, col));
  }

 private:
  Stmt& Check(int rc) {
    if (rc != SQLITE_OK && bind_rc_ == SQLITE_OK) bind_rc_ = rc;
    return *this;
  }

  sqlite3* db_;
  sqlite3_stmt* stmt_;
  CachedStmt* cached_ = nullptr;
  StmtPtr owned_;
  int bind_rc_ = SQLITE_OK;
};

// The columns RunFromRow reads, in its order.
constexpr char kRunColumns[] =
    "id, config, status, created_ns, exit_code, exit_signal, error, placement, submitter_uid, "
    "parent_run_id, assigned_gpus";

}  // namespace

// ---------------------------------------------------------------------------
// The connection and everything that runs SQL. Every method expects `mu`
// held by the public StateStore method that called it.

struct StateStore::Impl {
  std::filesystem::path path;
  sqlite3* db = nullptr;
  absl::Mutex mu;
  absl::flat_hash_map<std::string, std::unique_ptr<CachedStmt>> cache;

  ~Impl() {
    cache.clear();  // statements must be finalized before the connection closes
    if (db != nullptr) sqlite3_close(db);
  }

  absl::StatusOr<Stmt> Prepare(const std::string& sql) {
    auto it = cache.find(sql);
    if (it != cache.end() && !it->second->in_use) return Stmt(db, it->second.get());
    sqlite3_stmt* raw = nullptr;
    // A nested use of a statement already lent out gets a one-off copy.
    unsigned flags = it == cache.end() ? SQLITE_PREPARE_PERSISTENT : 0;
    int rc = sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()), flags, &raw, nullptr);
    if (rc != SQLITE_OK) return SqliteStatus(db, rc, absl::StrCat("preparing ", sql));
    StmtPtr stmt(raw);
    if (it != cache.end()) return Stmt(db, std::move(stmt));
    auto cached = std::make_unique<CachedStmt>();
    cached->stmt = std::move(stmt);
    CachedStmt* ptr = cached.get();
    cache.emplace(sql, std::move(cached));
    return Stmt(db, ptr);
  }

  // Runs SQL text that may hold several statements and returns no rows.
  absl::Status Exec(const std::string& sql) {
    char* err = nullptr;
    int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
    if (rc == SQLITE_OK) return absl::OkStatus();
    std::string msg = err != nullptr ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    absl::Status status = SqliteStatus(nullptr, rc, "");
    return absl::Status(status.code(), absl::StrCat("state database ", path.string(), ": ", msg));
  }

  absl::StatusOr<int64_t> QueryInt(const std::string& sql) {
    AMLD_ASSIGN_OR_RETURN(Stmt stmt, Prepare(sql));
    AMLD_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) return absl::InternalError(absl::StrCat("state database: no result for ", sql));
    return stmt.Int(0);
  }

  absl::StatusOr<std::string> QueryText(const std::string& sql) {
    AMLD_ASSIGN_OR_RETURN(Stmt stmt, Prepare(sql));
    AMLD_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) return absl::InternalError(absl::StrCat("state database: no result for ", sql));
    return stmt.Text(0);
  }

  // Runs `body` inside BEGIN IMMEDIATE … COMMIT; rolls back when it (or the
  // commit) fails, so a failed write leaves nothing behind. IMMEDIATE takes
  // the write lock up front: a read-then-write body can never be refused
  // half-way with SQLITE_BUSY.
  template <typename Body>
  auto InWriteTransaction(Body&& body) -> decltype(body()) {
    AMLD_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
    auto result = body();
    absl::Status status = result.ok() ? Exec("COMMIT") : absl::OkStatus();
    if (!result.ok() || !status.ok()) {
      Exec("ROLLBACK").IgnoreError();  // fails harmlessly when SQLite already rolled back
      if (!status.ok()) return status;
    }
    return result;
  }

  // -- Opening and migrating -------------------------------------------------

  // Reads the file's header before changing anything, so that a foreign or
  // newer file is refused untouched. Returns the schema version.
  absl::StatusOr<int64_t> CheckFile() {
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, 5000);
    // The first statement to read the file: a file that is not a database
    // fails here.
    absl::StatusOr<int64_t> version = QueryInt("PRAGMA user_version");
    if (version.status().code() == absl::StatusCode::kFailedPrecondition) {
      return absl::FailedPreconditionError(absl::StrCat(
          path.string(), " is not an amld state database (", version.status().message(),
          "); move it away or point amld at another data dir"));
    }
    if (!version.ok()) return version.status();
    const int latest = LatestSchemaVersion();
    if (*version > latest) {
      return absl::FailedPreconditionError(
          absl::StrCat("state database ", path.string(), " has schema version ", *version,
                       ", newer than version ", latest,
                       ", the latest this amld knows; upgrade amld to a version that wrote it"));
    }
    AMLD_ASSIGN_OR_RETURN(int64_t app_id, QueryInt("PRAGMA application_id"));
    bool foreign = app_id != 0 && app_id != kStateApplicationId;
    if (!foreign && *version == 0) {
      // A fresh amld file is empty; an unmarked file with tables is someone else's.
      AMLD_ASSIGN_OR_RETURN(int64_t tables, QueryInt("SELECT COUNT(*) FROM sqlite_master"));
      foreign = tables > 0;
    }
    if (foreign) {
      return absl::FailedPreconditionError(
          absl::StrCat(path.string(),
                       " is an SQLite database of another program, not an amld state "
                       "database; move it away or point amld at another data dir"));
    }
    return version;
  }

  absl::Status Configure() {
    AMLD_ASSIGN_OR_RETURN(std::string mode, QueryText("PRAGMA journal_mode=WAL"));
    if (mode != "wal") {
      return absl::FailedPreconditionError(
          absl::StrCat("state database ", path.string(), " cannot use WAL mode (journal mode is ",
                       mode, "); keep the data dir on a local filesystem"));
    }
    // In WAL mode NORMAL syncs at checkpoints, not at every commit: a commit
    // survives the daemon being killed at any moment (the WAL is in the OS's
    // page cache), though the last commits may be lost if the machine itself
    // loses power. The database is never corrupted either way.
    AMLD_RETURN_IF_ERROR(Exec("PRAGMA synchronous=NORMAL"));
    AMLD_RETURN_IF_ERROR(Exec("PRAGMA foreign_keys=ON"));
    AMLD_ASSIGN_OR_RETURN(int64_t fk, QueryInt("PRAGMA foreign_keys"));
    if (fk != 1) {
      return absl::InternalError("state database: SQLite refused to enable foreign keys");
    }
    return absl::OkStatus();
  }

  // Applies every migration past `version`, each in its own transaction, so
  // an interrupted upgrade resumes from the last completed step.
  absl::Status Migrate(int64_t version) {
    for (const SchemaMigration& m : SchemaMigrations()) {
      if (m.version <= version) continue;
      absl::Status status = InWriteTransaction([&]() { return ApplyMigration(m); });
      if (!status.ok()) {
        return absl::Status(status.code(), absl::StrCat("migrating state database ", path.string(),
                                                        " to schema version ", m.version, " (",
                                                        m.summary, "): ", status.message()));
      }
    }
    return absl::OkStatus();
  }

  absl::Status ApplyMigration(const SchemaMigration& m) {
    // Read again under the write lock: another process may have migrated
    // the file since we looked.
    AMLD_ASSIGN_OR_RETURN(int64_t version, QueryInt("PRAGMA user_version"));
    if (version >= m.version) return absl::OkStatus();
    if (version != m.version - 1) {
      return absl::InternalError(
          absl::StrCat("schema version is ", version, ", expected ", m.version - 1));
    }
    AMLD_RETURN_IF_ERROR(Exec(m.sql));
    if (m.version == 1) {
      AMLD_RETURN_IF_ERROR(Exec(absl::StrCat("PRAGMA application_id=", kStateApplicationId)));
    }
    return Exec(absl::StrCat("PRAGMA user_version=", m.version));
  }

  // -- Reading ---------------------------------------------------------------

  absl::StatusOr<bool> RunExists(const std::string& id) {
    AMLD_ASSIGN_OR_RETURN(Stmt stmt, Prepare("SELECT 1 FROM runs WHERE id=?"));
    stmt.BindText(1, id);
    return stmt.Step();
  }

  absl::Status RequireRun(const std::string& id) {
    AMLD_ASSIGN_OR_RETURN(bool exists, RunExists(id));
    if (!exists) return absl::NotFoundError(absl::StrCat("run ", id, " does not exist"));
    return absl::OkStatus();
  }

  // Builds a Run (without history) from a row of kRunColumns.
  absl::StatusOr<amld::v1::Run> RunFromRow(Stmt& row) {
    amld::v1::Run run;
    run.set_id(row.Text(0));
    if (!run.mutable_config()->ParseFromString(row.Blob(1))) {
      return absl::DataLossError(
          absl::StrCat("state database: the stored config of run ", run.id(), " does not parse"));
    }
    run.set_status(static_cast<RunStatus>(row.Int(2)));
    *run.mutable_created_time() = TimestampFromNanos(row.Int(3));
    run.set_exit_code(static_cast<int32_t>(row.Int(4)));
    run.set_exit_signal(static_cast<int32_t>(row.Int(5)));
    run.set_error(row.Text(6));
    run.set_placement(row.Text(7));
    run.set_submitter_uid(static_cast<uint32_t>(row.Int(8)));
    run.set_parent_run_id(row.Text(9));  // NULL reads as ""
    const std::string gpus = row.Text(10);
    for (absl::string_view id : absl::StrSplit(gpus, ',', absl::SkipEmpty())) {
      int gpu = 0;
      if (!absl::SimpleAtoi(id, &gpu)) {
        return absl::DataLossError(absl::StrCat("state database: run ", run.id(),
                                                " has a malformed assigned_gpus \"", gpus, "\""));
      }
      run.add_assigned_gpus(gpu);
    }
    return run;
  }

  absl::Status LoadHistory(amld::v1::Run* run) {
    AMLD_ASSIGN_OR_RETURN(
        Stmt stmt,
        Prepare("SELECT status, time_ns, reason FROM run_transitions WHERE run_id=? ORDER BY seq"));
    stmt.BindText(1, run->id());
    for (;;) {
      AMLD_ASSIGN_OR_RETURN(bool row, stmt.Step());
      if (!row) return absl::OkStatus();
      amld::v1::StatusTransition* t = run->add_history();
      t->set_status(static_cast<RunStatus>(stmt.Int(0)));
      *t->mutable_time() = TimestampFromNanos(stmt.Int(1));
      t->set_reason(stmt.Text(2));
    }
  }

  // Runs a query over kRunColumns and returns every run with its history.
  absl::StatusOr<std::vector<amld::v1::Run>> CollectRuns(Stmt& stmt) {
    std::vector<amld::v1::Run> runs;
    for (;;) {
      AMLD_ASSIGN_OR_RETURN(bool row, stmt.Step());
      if (!row) break;
      AMLD_ASSIGN_OR_RETURN(amld::v1::Run run, RunFromRow(stmt));
      runs.push_back(std::move(run));
    }
    // One small indexed query per run: in-process SQLite makes N+1 cheap,
    // and a page is at most 1000 runs.
    for (amld::v1::Run& run : runs) AMLD_RETURN_IF_ERROR(LoadHistory(&run));
    return runs;
  }

  absl::StatusOr<amld::v1::Run> LoadRun(const std::string& id) {
    AMLD_ASSIGN_OR_RETURN(Stmt stmt,
                          Prepare(absl::StrCat("SELECT ", kRunColumns, " FROM runs WHERE id=?")));
    stmt.BindText(1, id);
    AMLD_ASSIGN_OR_RETURN(std::vector<amld::v1::Run> runs, CollectRuns(stmt));
    if (runs.empty()) return absl::NotFoundError(absl::StrCat("run ", id, " does not exist"));
    return std::move(runs.front());
  }

  absl::StatusOr<amld::v1::Experiment> LoadExperiment(const std::string& name) {
    AMLD_ASSIGN_OR_RETURN(Stmt stmt, Prepare(ExperimentQuery("WHERE e.name=?")));
    stmt.BindText(1, name);
    AMLD_ASSIGN_OR_RETURN(std::vector<amld::v1::Experiment> found, CollectExperiments(stmt));
    if (found.empty()) {
      return absl::NotFoundError(absl::StrCat("experiment ", name, " does not exist"));
    }
    return std::move(found.front());
  }

  static std::string ExperimentQuery(absl::string_view where) {
    return absl::StrCat(
        "SELECT e.name, e.created_ns, "
        "(SELECT COUNT(*) FROM runs r WHERE r.experiment=e.name), "
        "(SELECT MAX(created_ns) FROM runs r WHERE r.experiment=e.name) "
        "FROM experiments e ",
        where, " ORDER BY e.name");
  }

  absl::StatusOr<std::vector<amld::v1::Experiment>> CollectExperiments(Stmt& stmt) {
    std::vector<amld::v1::Experiment> out;
    for (;;) {
      AMLD_ASSIGN_OR_RETURN(bool row, stmt.Step());
      if (!row) return out;
      amld::v1::Experiment& e = out.emplace_back();
      e.set_name(stmt.Text(0));
      *e.mutable_created_time() = TimestampFromNanos(stmt.Int(1));
      e.set_run_count(stmt.Int(2));
      if (!stmt.IsNull(3)) *e.mutable_last_run_time() = TimestampFromNanos(stmt.Int(3));
    }
  }

  // -- Writing (inside a write transaction) ------------------------------------

  absl::Status EnsureExperiment(const std::string& name, int64_t now_ns) {
    AMLD_ASSIGN_OR_RETURN(
        Stmt stmt, Prepare("INSERT OR IGNORE INTO experiments(name, created_ns) VALUES(?, ?)"));
    stmt.BindText(1, name).BindInt(2, now_ns);
    return stmt.Run();
  }

  absl::Status AddTransition(const std::string& run_id, RunStatus status, int64_t time_ns,
                             const std::string& reason) {
    AMLD_ASSIGN_OR_RETURN(
        Stmt stmt, Prepare("INSERT INTO run_transitions(run_id, seq, status, time_ns, reason) "
                           "SELECT ?1, COALESCE(MAX(seq), 0) + 1, ?2, ?3, ?4 FROM run_transitions "
                           "WHERE run_id=?1"));
    stmt.BindText(1, run_id).BindInt(2, status).BindInt(3, time_ns).BindText(4, reason);
    return stmt.Run();
  }

  absl::StatusOr<amld::v1::Run> InsertRunLocked(const NewRun& run) {
    AMLD_ASSIGN_OR_RETURN(bool taken, RunExists(run.id));
    if (taken) return absl::AlreadyExistsError(absl::StrCat("run ", run.id, " already exists"));
    if (!run.parent_run_id.empty()) {
      AMLD_ASSIGN_OR_RETURN(bool parent, RunExists(run.parent_run_id));
      if (!parent) {
        return absl::NotFoundError(
            absl::StrCat("parent run ", run.parent_run_id, " of run ", run.id, " does not exist"));
      }
    }
    const int64_t now_ns = ToNanos(run.now);
    AMLD_RETURN_IF_ERROR(EnsureExperiment(run.config.experiment_name(), now_ns));
    AMLD_ASSIGN_OR_RETURN(
        Stmt stmt,
        Prepare("INSERT INTO runs(id, experiment, config, snapshot_hash, snapshot_size, status, "
                "created_ns, submitter_uid, parent_run_id, git_repository, git_commit) "
                "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
    const amld::v1::RunConfig& config = run.config;
    stmt.BindText(1, run.id).BindText(2, config.experiment_name());
    stmt.BindBlob(3, config.SerializeAsString());
    if (config.snapshot_root().hash().empty()) {
      stmt.BindNull(4).BindNull(5);
    } else {
      stmt.BindText(4, config.snapshot_root().hash())
          .BindInt(5, config.snapshot_root().size_bytes());
    }
    stmt.BindInt(6, v1::RunStatus::QUEUED).BindInt(7, now_ns).BindInt(8, run.submitter_uid);
    if (run.parent_run_id.empty()) {
      stmt.BindNull(9);
    } else {
      stmt.BindText(9, run.parent_run_id);
    }
    stmt.BindText(10, config.git().repository_uri()).BindText(11, config.git().commit());
    AMLD_RETURN_IF_ERROR(stmt.Run());
    AMLD_RETURN_IF_ERROR(AddTransition(run.id, v1::RunStatus::QUEUED, now_ns, ""));
    return LoadRun(run.id);
  }

  absl::StatusOr<amld::v1::Run> TransitionLocked(const std::string& run_id, RunStatus to,
                                                 const TransitionDetails& details, int64_t now_ns) {
    AMLD_ASSIGN_OR_RETURN(Stmt current, Prepare("SELECT status FROM runs WHERE id=?"));
    current.BindText(1, run_id);
    AMLD_ASSIGN_OR_RETURN(bool found, current.Step());
    if (!found) return absl::NotFoundError(absl::StrCat("run ", run_id, " does not exist"));
    const auto from = static_cast<RunStatus>(current.Int(0));
    if (!IsLegalTransition(from, to)) {
      return absl::FailedPreconditionError(absl::StrCat("run ", run_id, " is ", StatusName(from),
                                                        "; it cannot become ", StatusName(to)));
    }
    AMLD_ASSIGN_OR_RETURN(Stmt update,
                          Prepare("UPDATE runs SET status=?, exit_code=COALESCE(?, exit_code), "
                                  "exit_signal=COALESCE(?, exit_signal), error=COALESCE(?, error), "
                                  "placement=COALESCE(?, placement), "
                                  "assigned_gpus=COALESCE(?, assigned_gpus) WHERE id=?"));
    std::optional<std::string> gpus;
    if (details.assigned_gpus) gpus = absl::StrJoin(*details.assigned_gpus, ",");
    update.BindInt(1, to)
        .BindOptionalInt(2, details.exit_code)
        .BindOptionalInt(3, details.exit_signal)
        .BindOptionalText(4, details.error)
        .BindOptionalText(5, details.placement)
        .BindOptionalText(6, gpus)
        .BindText(7, run_id);
    AMLD_RETURN_IF_ERROR(update.Run());
    AMLD_RETURN_IF_ERROR(AddTransition(run_id, to, now_ns, details.reason));
    return LoadRun(run_id);
  }
};

// ---------------------------------------------------------------------------
// StateStore.

StateStore::StateStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
StateStore::~StateStore() = default;

int StateStore::LatestSchemaVersion() { return SchemaMigrations().back().version; }

absl::StatusOr<std::unique_ptr<StateStore>> StateStore::Open(const std::filesystem::path& path) {
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  // NOMUTEX: the store serializes every call on its own mutex.
  int rc =
      sqlite3_open_v2(path.c_str(), &impl->db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    absl::Status status = SqliteStatus(impl->db, rc, absl::StrCat("opening ", path.string()));
    if ((rc & 0xff) != SQLITE_CANTOPEN) return status;
    return absl::Status(status.code(), absl::StrCat(status.message(),
                                                    " (does its folder exist, and may amld "
                                                    "write there?)"));
  }
  absl::StatusOr<int64_t> version = impl->CheckFile();
  absl::Status status = version.status();
  if (status.ok()) status = impl->Configure();
  if (status.ok()) status = impl->Migrate(*version);
  if (!status.ok()) {
    if (absl::StrContains(status.message(), path.string())) return status;
    return absl::Status(status.code(),
                        absl::StrCat("opening ", path.string(), ": ", status.message()));
  }
  return std::unique_ptr<StateStore>(new StateStore(std::move(impl)));
}

absl::StatusOr<int> StateStore::SchemaVersion() {
  absl::MutexLock lock(&impl_->mu);
  AMLD_ASSIGN_OR_RETURN(int64_t version, impl_->QueryInt("PRAGMA user_version"));
  return static_cast<int>(version);
}

absl::StatusOr<amld::v1::Experiment> StateStore::CreateExperiment(const std::string& name,
                                                                  absl::Time now) {
  AMLD_RETURN_IF_ERROR(ValidateExperimentName(name));
  absl::MutexLock lock(&impl_->mu);
  return impl_->InWriteTransaction([&]() -> absl::StatusOr<amld::v1::Experiment> {
    AMLD_RETURN_IF_ERROR(impl_->EnsureExperiment(name, ToNanos(now)));
    return impl_->LoadExperiment(name);
  });
}

absl::StatusOr<amld::v1::Experiment> StateStore::GetExperiment(const std::string& name) {
  absl::MutexLock lock(&impl_->mu);
  return impl_->LoadExperiment(name);
}

absl::StatusOr<std::vector<amld::v1::Experiment>> StateStore::ListExperiments() {
  absl::MutexLock lock(&impl_->mu);
  AMLD_ASSIGN_OR_RETURN(Stmt stmt, impl_->Prepare(Impl::ExperimentQuery("")));
  return impl_->CollectExperiments(stmt);
}

absl::StatusOr<amld::v1::Run> StateStore::InsertRun(const NewRun& run) {
  if (run.id.empty()) return absl::InvalidArgumentError("run id must not be empty");
  AMLD_RETURN_IF_ERROR(ValidateExperimentName(run.config.experiment_name()));
  if (!run.config.snapshot_root().hash().empty()) {
    AMLD_RETURN_IF_ERROR(ValidateDigest(FromProto(run.config.snapshot_root())));
  }
  absl::MutexLock lock(&impl_->mu);
  return impl_->InWriteTransaction([&] { return impl_->InsertRunLocked(run); });
}

absl::StatusOr<amld::v1::Run> StateStore::GetRun(const std::string& id) {
  absl::MutexLock lock(&impl_->mu);
  return impl_->LoadRun(id);
}

absl::StatusOr<RunPage> StateStore::ListRuns(const RunFilter& filter) {
  AMLD_RETURN_IF_ERROR(ValidateStatusFilter(filter.statuses));
  std::optional<PagePosition> after;
  if (!filter.page_token.empty()) {
    AMLD_ASSIGN_OR_RETURN(after, DecodePageToken(filter.page_token));
  }
  const int page_size = filter.page_size <= 0 ? 50 : std::min(filter.page_size, 1000);
  const int limit = page_size + 1;  // one more tells whether a next page exists
  const std::vector<int> statuses = DistinctStatuses(filter.statuses);

  // Each filter adds a condition; the SQL text depends only on which are
  // set (and how many statuses), so the statement cache stays small.
  std::vector<std::string> where;
  if (!statuses.empty()) where.push_back("status=?");
  if (!filter.experiment_name.empty()) where.push_back("experiment=?");
  if (filter.submitter_uid) where.push_back("submitter_uid=?");
  if (!filter.parent_run_id.empty()) where.push_back("parent_run_id=?");
  if (after) where.push_back("(created_ns, id) < (?, ?)");
  const std::string one_status =
      absl::StrCat("SELECT ", kRunColumns, " FROM runs", where.empty() ? "" : " WHERE ",
                   absl::StrJoin(where, " AND "), " ORDER BY created_ns DESC, id DESC LIMIT ?");
  // Several statuses: one indexed, already ordered page per status, merged.
  // `status IN (...)` would sort every matching run, which for
  // COMPLETED+FAILED is nearly all of them, on every page.
  std::string sql = one_status;
  if (statuses.size() > 1) {
    std::vector<std::string> branches(statuses.size(),
                                      absl::StrCat("SELECT * FROM (", one_status, ")"));
    sql = absl::StrCat(absl::StrJoin(branches, " UNION ALL "),
                       " ORDER BY created_ns DESC, id DESC LIMIT ?");
  }

  absl::MutexLock lock(&impl_->mu);
  AMLD_ASSIGN_OR_RETURN(Stmt stmt, impl_->Prepare(sql));
  int i = 0;
  auto bind_branch = [&](std::optional<int> status) {
    if (status) stmt.BindInt(++i, *status);
    if (!filter.experiment_name.empty()) stmt.BindText(++i, filter.experiment_name);
    if (filter.submitter_uid) stmt.BindInt(++i, *filter.submitter_uid);
    if (!filter.parent_run_id.empty()) stmt.BindText(++i, filter.parent_run_id);
    if (after) {
      stmt.BindInt(++i, after->created_ns);
      stmt.BindText(++i, after->id);
    }
    stmt.BindInt(++i, limit);
  };
  if (statuses.empty()) bind_branch(std::nullopt);
  for (int status : statuses) bind_branch(status);
  if (statuses.size() > 1) stmt.BindInt(++i, limit);

  RunPage page;
  AMLD_ASSIGN_OR_RETURN(page.runs, impl_->CollectRuns(stmt));
  if (static_cast<int>(page.runs.size()) > page_size) {
    page.runs.pop_back();
    const amld::v1::Run& last = page.runs.back();
    page.next_page_token = EncodePageToken(NanosFromTimestamp(last.created_time()), last.id());
  }
  return page;
}

absl::StatusOr<std::vector<amld::v1::Run>> StateStore::RunsInStatus(
    const std::vector<RunStatus>& statuses) {
  AMLD_RETURN_IF_ERROR(ValidateStatusFilter(statuses));
  const std::vector<int> distinct = DistinctStatuses(statuses);
  if (distinct.empty()) return std::vector<amld::v1::Run>();
  absl::MutexLock lock(&impl_->mu);
  AMLD_ASSIGN_OR_RETURN(
      Stmt stmt,
      impl_->Prepare(absl::StrCat("SELECT ", kRunColumns, " FROM runs WHERE status IN (",
                                  Placeholders(distinct.size()), ") ORDER BY created_ns, id")));
  for (size_t i = 0; i < distinct.size(); ++i) stmt.BindInt(static_cast<int>(i) + 1, distinct[i]);
  return impl_->CollectRuns(stmt);
}

absl::StatusOr<absl::flat_hash_map<RunStatus, int64_t>> StateStore::CountByStatus() {
  absl::MutexLock lock(&impl_->mu);
  AMLD_ASSIGN_OR_RETURN(Stmt stmt,
                        impl_->Prepare("SELECT status, COUNT(*) FROM runs GROUP BY status"));
  absl::flat_hash_map<RunStatus, int64_t> counts;
  for (;;) {
    AMLD_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) return counts;
    counts[static_cast<RunStatus>(stmt.Int(0))] = stmt.Int(1);
  }
}

absl::StatusOr<amld::v1::Run> StateStore::Transition(const std::string& run_id, RunStatus to,
                                                     const TransitionDetails& details,
                                                     absl::Time now) {
  absl::MutexLock lock(&impl_->mu);
  return impl_->InWriteTransaction(
      [&] { return impl_->TransitionLocked(run_id, to, details, ToNanos(now)); });
}

absl::Status StateStore::SetRunHandle(const std::string& run_id, const std::string& handle) {
  absl::MutexLock lock(&impl_->mu);
  return impl_->InWriteTransaction([&]() -> absl::Status {
    AMLD_ASSIGN_OR_RETURN(Stmt stmt, impl_->Prepare("UPDATE runs SET handle=? WHERE id=?"));
    stmt.BindText(1, handle).BindText(2, run_id);
    AMLD_RETURN_IF_ERROR(stmt.Run());
    if (sqlite3_changes(impl_->db) == 0) {
      return absl::NotFoundError(absl::StrCat("run ", run_id, " does not exist"));
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<v1::Run> StateStore::SetRunPlacement(const std::string& run_id,
                                                    const std::string& placement) {
  absl::MutexLock lock(&impl_->mu);
  absl::Status updated = impl_->InWriteTransaction([&]() -> absl::Status {
    AMLD_ASSIGN_OR_RETURN(Stmt stmt, impl_->Prepare("SELECT status FROM runs WHERE id=?"));
    stmt.BindText(1, run_id);
    AMLD_ASSIGN_OR_RETURN(bool found, stmt.Step());
    if (!found) return absl::NotFoundError(absl::StrCat("run ", run_id, " does not exist"));
    const RunStatus status = static_cast<RunStatus>(stmt.Int(0));
    if (IsTerminal(status)) {
      return absl::FailedPreconditionError(
          absl::StrCat("run ", run_id, " is ", StatusName(status), "; its placement is final"));
    }
    AMLD_ASSIGN_OR_RETURN(Stmt update, impl_->Prepare("UPDATE runs SET placement=? WHERE id=?"));
    update.BindText(1, placement).BindText(2, run_id);
    return update.Run();
  });
  AMLD_RETURN_IF_ERROR(updated);
  return impl_->LoadRun(run_id);
}

absl::StatusOr<std::string> StateStore::GetRunHandle(const std::string& run_id) {
  absl::MutexLock lock(&impl_->mu);
  AMLD_ASSIGN_OR_RETURN(Stmt stmt, impl_->Prepare("SELECT handle FROM runs WHERE id=?"));
  stmt.BindText(1, run_id);
  AMLD_ASSIGN_OR_RETURN(bool found, stmt.Step());
  if (!found) return absl::NotFoundError(absl::StrCat("run ", run_id, " does not exist"));
  return stmt.Text(0);
}

absl::Status StateStore::PutArtifacts(const std::string& run_id,
                                      const std::vector<Artifact>& artifacts) {
  for (const Artifact& a : artifacts) {
    AMLD_RETURN_IF_ERROR(ValidateArtifactPath(a.path));
    AMLD_RETURN_IF_ERROR(ValidateDigest(a.digest));
  }
  absl::MutexLock lock(&impl_->mu);
  return impl_->InWriteTransaction([&]() -> absl::Status {
    AMLD_RETURN_IF_ERROR(impl_->RequireRun(run_id));
    for (const Artifact& a : artifacts) {
      AMLD_ASSIGN_OR_RETURN(
          Stmt stmt,
          impl_->Prepare("INSERT INTO artifacts(run_id, path, hash, size) VALUES(?, ?, ?, ?) "
                         "ON CONFLICT(run_id, path) DO UPDATE SET hash=excluded.hash, "
                         "size=excluded.size"));
      stmt.BindText(1, run_id)
          .BindText(2, a.path)
          .BindText(3, a.digest.hash)
          .BindInt(4, a.digest.size);
      AMLD_RETURN_IF_ERROR(stmt.Run());
    }
    return absl::OkStatus();
  });
}

absl::Status StateStore::RemoveArtifacts(const std::string& run_id,
                                         const std::vector<std::string>& paths) {
  absl::MutexLock lock(&impl_->mu);
  return impl_->InWriteTransaction([&]() -> absl::Status {
    AMLD_RETURN_IF_ERROR(impl_->RequireRun(run_id));
    for (const std::string& path : paths) {
      AMLD_ASSIGN_OR_RETURN(Stmt stmt,
                            impl_->Prepare("DELETE FROM artifacts WHERE run_id=? AND path=?"));
      stmt.BindText(1, run_id).BindText(2, path);
      AMLD_RETURN_IF_ERROR(stmt.Run());
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<Artifact>> StateStore::ListArtifacts(const std::string& run_id,
                                                                const std::string& prefix) {
  absl::MutexLock lock(&impl_->mu);
  AMLD_RETURN_IF_ERROR(impl_->RequireRun(run_id));
  // Paths sort bytewise, so those starting with `prefix` are the contiguous
  // range from `prefix` on; stop at the first that does not match.
  AMLD_ASSIGN_OR_RETURN(Stmt stmt, impl_->Prepare("SELECT path, hash, size FROM artifacts "
                                                  "WHERE run_id=? AND path>=? ORDER BY path"));
  stmt.BindText(1, run_id).BindText(2, prefix);
  std::vector<Artifact> out;
  for (;;) {
    AMLD_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) return out;
    std::string path = stmt.Text(0);
    if (!absl::StartsWith(path, prefix)) return out;
    out.push_back(Artifact{std::move(path), Digest{stmt.Text(1), stmt.Int(2)}});
  }
}

absl::StatusOr<Artifact> StateStore::GetArtifact(const std::string& run_id,
                                                 const std::string& path) {
  absl::MutexLock lock(&impl_->mu);
  AMLD_ASSIGN_OR_RETURN(
      Stmt stmt, impl_->Prepare("SELECT hash, size FROM artifacts WHERE run_id=? AND path=?"));
  stmt.BindText(1, run_id).BindText(2, path);
  AMLD_ASSIGN_OR_RETURN(bool found, stmt.Step());
  if (found) return Artifact{path, Digest{stmt.Text(0), stmt.Int(1)}};
  AMLD_RETURN_IF_ERROR(impl_->RequireRun(run_id));
  return absl::NotFoundError(absl::StrCat("run ", run_id, " has no file ", path));
}

absl::Status StateStore::AppendMetrics(const std::string& run_id,
                                       const std::vector<amld::v1::Metric>& metrics) {
  for (const amld::v1::Metric& m : metrics) {
    if (m.name().empty()) return absl::InvalidArgumentError("metric name must not be empty");
    if (m.value_case() == amld::v1::Metric::VALUE_NOT_SET) {
      return absl::InvalidArgumentError(
          absl::StrCat("metric ", m.name(), " has no value; set a number or a text"));
    }
    if (!m.has_time()) {
      return absl::InvalidArgumentError(absl::StrCat("metric ", m.name(), " has no time"));
    }
  }
  absl::MutexLock lock(&impl_->mu);
  return impl_->InWriteTransaction([&]() -> absl::Status {
    AMLD_RETURN_IF_ERROR(impl_->RequireRun(run_id));
    for (const amld::v1::Metric& m : metrics) {
      AMLD_ASSIGN_OR_RETURN(Stmt stmt, impl_->Prepare("INSERT INTO metrics(run_id, name, step, "
                                                      "time_ns, number, text) "
                                                      "VALUES(?, ?, ?, ?, ?, ?)"));
      stmt.BindText(1, run_id).BindText(2, m.name()).BindInt(3, m.step());
      stmt.BindInt(4, NanosFromTimestamp(m.time()));
      if (m.has_text()) {
        stmt.BindNull(5).BindText(6, m.text());
      } else if (std::isnan(m.number())) {
        stmt.BindNull(5).BindNull(6);  // the schema's spelling of NaN
      } else {
        stmt.BindDouble(5, m.number()).BindNull(6);
      }
      AMLD_RETURN_IF_ERROR(stmt.Run());
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<amld::v1::Metric>> StateStore::GetMetrics(
    const std::string& run_id, const std::vector<std::string>& names) {
  absl::MutexLock lock(&impl_->mu);
  AMLD_RETURN_IF_ERROR(impl_->RequireRun(run_id));
  // One indexed query per distinct name, in name order, keeps the result
  // ordered by name without SQL that varies with the number of names.
  std::set<std::string> wanted(names.begin(), names.end());
  std::vector<std::optional<std::string>> queries;
  if (wanted.empty()) queries.emplace_back();
  for (const std::string& n : wanted) queries.emplace_back(n);

  std::vector<amld::v1::Metric> out;
  for (const std::optional<std::string>& name : queries) {
    AMLD_ASSIGN_OR_RETURN(
        Stmt stmt, impl_->Prepare(absl::StrCat(
                       "SELECT name, step, time_ns, number, text FROM metrics WHERE run_id=?",
                       name ? " AND name=?" : "", " ORDER BY name, step, time_ns, rowid")));
    stmt.BindText(1, run_id);
    if (name) stmt.BindText(2, *name);
    for (;;) {
      AMLD_ASSIGN_OR_RETURN(bool row, stmt.Step());
      if (!row) break;
      amld::v1::Metric& m = out.emplace_back();
      m.set_name(stmt.Text(0));
      m.set_step(stmt.Int(1));
      *m.mutable_time() = TimestampFromNanos(stmt.Int(2));
      if (!stmt.IsNull(4)) {
        m.set_text(stmt.Text(4));
      } else if (stmt.IsNull(3)) {
        m.set_number(std::numeric_limits<double>::quiet_NaN());
      } else {
        m.set_number(stmt.Double(3));
      }
    }
  }
  return out;
}

absl::StatusOr<StateStore::References> StateStore::ReferencedDigests() {
  absl::MutexLock lock(&impl_->mu);
  References refs;
  for (auto [sql, out] : {std::pair{"SELECT DISTINCT snapshot_hash, snapshot_size FROM runs "
                                    "WHERE snapshot_hash IS NOT NULL ORDER BY 1, 2",
                                    &refs.snapshot_roots},
                          std::pair{"SELECT DISTINCT hash, size FROM artifacts ORDER BY 1, 2",
                                    &refs.artifacts}}) {
    AMLD_ASSIGN_OR_RETURN(Stmt stmt, impl_->Prepare(sql));
    for (;;) {
      AMLD_ASSIGN_OR_RETURN(bool row, stmt.Step());
      if (!row) break;
      out->push_back(Digest{stmt.Text(0), stmt.Int(1)});
    }
  }
  return refs;
}

// ---------------------------------------------------------------------------
// Compute targets.

namespace {

absl::Status BadTarget(const std::string& name, absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("compute target \"", absl::CHexEscape(name), "\": ", what));
}

// True when `s` has a byte that would split a word or a line in a shell or
// an ssh/sbatch argument: whitespace, control characters, DEL.
bool HasSpaceOrControl(const std::string& s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u <= ' ' || u == 0x7f;
  });
}

bool HasLineBreakOrNul(const std::string& s) {
  return s.find_first_of(std::string("\n\r\0", 3)) != std::string::npos;
}

absl::Status ValidateSshTarget(const std::string& name, const v1::SshTarget& ssh) {
  if (ssh.host().empty()) return BadTarget(name, "an ssh target needs a host (--host)");
  if (ssh.host().size() > 255 || HasSpaceOrControl(ssh.host()) || ssh.host().front() == '-' ||
      absl::StrContains(ssh.host(), "@")) {
    return BadTarget(name, absl::StrCat("host \"", absl::CHexEscape(ssh.host()),
                                        "\" is not a host name or address (no spaces, no leading "
                                        "'-', and give the login name as the user, not user@host)"));
  }
  if (ssh.port() < 0 || ssh.port() > 65535) {
    return BadTarget(name, absl::StrCat("port ", ssh.port(), " is outside 1..65535 (0: ssh's default)"));
  }
  if (HasSpaceOrControl(ssh.user()) || absl::StartsWith(ssh.user(), "-") ||
      absl::StrContains(ssh.user(), "@")) {
    return BadTarget(name, absl::StrCat("user \"", absl::CHexEscape(ssh.user()),
                                        "\" is not a login name"));
  }
  if (!ssh.identity_file().empty() &&
      (ssh.identity_file().front() != '/' || HasLineBreakOrNul(ssh.identity_file()))) {
    return BadTarget(name, absl::StrCat("identity file \"", absl::CHexEscape(ssh.identity_file()),
                                        "\" must be an absolute path on the daemon's machine"));
  }
  if (HasLineBreakOrNul(ssh.workdir())) {
    return BadTarget(name, "workdir must not contain line breaks or NUL");
  }
  return absl::OkStatus();
}

absl::Status ValidateSlurmTarget(const std::string& name, const v1::SlurmTarget& slurm) {
  if (slurm.workdir().empty() || slurm.workdir().front() != '/' ||
      HasLineBreakOrNul(slurm.workdir())) {
    return BadTarget(name,
                     "a slurm target needs --workdir: the absolute path of a folder that is the "
                     "same on this machine and on every node (a shared filesystem)");
  }
  for (const std::string* field : {&slurm.partition(), &slurm.account()}) {
    if (HasSpaceOrControl(*field) || absl::StartsWith(*field, "-")) {
      return BadTarget(name, absl::StrCat("partition or account \"", absl::CHexEscape(*field),
                                          "\" is not a Slurm name"));
    }
  }
  for (const std::string& arg : slurm.sbatch_args()) {
    if (arg.empty() || HasLineBreakOrNul(arg)) {
      return BadTarget(name, "sbatch arguments must be non-empty and free of line breaks");
    }
  }
  return absl::OkStatus();
}

// The run statuses in which a run still needs its target.
constexpr char kUnfinishedStatuses[] = "1, 2, 3, 4, 5, 9";
static_assert(v1::RunStatus::QUEUED == 1 && v1::RunStatus::PREPARING == 2 &&
              v1::RunStatus::STARTING == 3 && v1::RunStatus::RUNNING == 4 &&
              v1::RunStatus::FINALIZING == 5 && v1::RunStatus::CANCEL_REQUESTED == 9);

v1::ComputeTarget LocalTarget() {
  v1::ComputeTarget target;
  target.set_name(kLocalTargetName);
  target.mutable_local();
  return target;
}

}  // namespace

absl::Status ValidateComputeTarget(const v1::ComputeTarget& target) {
  const std::string& name = target.name();
  if (name.empty() || name.size() > 128) {
    return absl::InvalidArgumentError(
        absl::StrCat("compute target name must be 1 to 128 characters, got ", name.size()));
  }
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.';
    if (!ok) {
      return absl::InvalidArgumentError(
          absl::StrCat("compute target name \"", absl::CHexEscape(name),
                       "\" may contain only letters, digits, '-', '_' and '.'"));
    }
  }
  switch (target.kind_case()) {
    case v1::ComputeTarget::kSsh:
      return ValidateSshTarget(name, target.ssh());
    case v1::ComputeTarget::kSlurm:
      return ValidateSlurmTarget(name, target.slurm());
    case v1::ComputeTarget::kLocal:
      return BadTarget(name, "the local kind is built in (the target \"local\"); choose ssh or slurm");
    default:
      return BadTarget(name, "say what kind of target it is: ssh or slurm");
  }
}

absl::StatusOr<v1::ComputeTarget> StateStore::CreateComputeTarget(const v1::ComputeTarget& target,
                                                                  absl::Time now) {
  if (target.name() == kLocalTargetName) {
    return absl::AlreadyExistsError(
        "compute target \"local\" is built in; it cannot be redefined. Choose another name");
  }
  AMLD_RETURN_IF_ERROR(ValidateComputeTarget(target));
  v1::ComputeTarget stored = target;
  const int64_t now_ns = ToNanos(now);
  *stored.mutable_created_time() = TimestampFromNanos(now_ns);
  absl::MutexLock lock(&impl_->mu);
  return impl_->InWriteTransaction([&]() -> absl::StatusOr<v1::ComputeTarget> {
    AMLD_ASSIGN_OR_RETURN(Stmt exists, impl_->Prepare("SELECT 1 FROM compute_targets WHERE name=?"));
    exists.BindText(1, stored.name());
    AMLD_ASSIGN_OR_RETURN(bool taken, exists.Step());
    if (taken) {
      return absl::AlreadyExistsError(
          absl::StrCat("compute target \"", stored.name(),
                       "\" already exists; targets are never redefined: delete it first "
                       "(`aml compute delete ",
                       stored.name(), "`) or choose another name"));
    }
    AMLD_ASSIGN_OR_RETURN(
        Stmt insert,
        impl_->Prepare("INSERT INTO compute_targets(name, target, created_ns) VALUES(?, ?, ?)"));
    insert.BindText(1, stored.name()).BindBlob(2, stored.SerializeAsString()).BindInt(3, now_ns);
    AMLD_RETURN_IF_ERROR(insert.Run());
    return stored;
  });
}

absl::StatusOr<v1::ComputeTarget> StateStore::GetComputeTarget(const std::string& name) {
  if (name == kLocalTargetName) return LocalTarget();
  absl::MutexLock lock(&impl_->mu);
  AMLD_ASSIGN_OR_RETURN(Stmt stmt,
                        impl_->Prepare("SELECT target FROM compute_targets WHERE name=?"));
  stmt.BindText(1, name);
  AMLD_ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) {
    return absl::NotFoundError(absl::StrCat("compute target \"", absl::CHexEscape(name),
                                            "\" does not exist; `aml compute list` shows the "
                                            "targets, `aml compute create` defines one"));
  }
  v1::ComputeTarget target;
  if (!target.ParseFromString(stmt.Blob(0))) {
    return absl::DataLossError(
        absl::StrCat("state database: the stored compute target ", name, " does not parse"));
  }
  return target;
}

absl::StatusOr<std::vector<v1::ComputeTarget>> StateStore::ListComputeTargets() {
  std::vector<v1::ComputeTarget> targets = {LocalTarget()};
  absl::MutexLock lock(&impl_->mu);
  AMLD_ASSIGN_OR_RETURN(Stmt stmt,
                        impl_->Prepare("SELECT name, target FROM compute_targets ORDER BY name"));
  for (;;) {
    AMLD_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    v1::ComputeTarget& target = targets.emplace_back();
    if (!target.ParseFromString(stmt.Blob(1))) {
      return absl::DataLossError(absl::StrCat("state database: the stored compute target ",
                                              stmt.Text(0), " does not parse"));
    }
  }
  std::sort(targets.begin(), targets.end(),
            [](const auto& a, const auto& b) { return a.name() < b.name(); });
  return targets;
}

absl::Status StateStore::DeleteComputeTarget(const std::string& name) {
  if (name == kLocalTargetName) {
    return absl::FailedPreconditionError("compute target \"local\" is built in; it cannot be deleted");
  }
  absl::MutexLock lock(&impl_->mu);
  return impl_->InWriteTransaction([&]() -> absl::Status {
    // Unfinished runs are few (queued and running ones); their configs are
    // read rather than keeping a copy of the target name in an indexed column.
    AMLD_ASSIGN_OR_RETURN(
        Stmt runs, impl_->Prepare(absl::StrCat("SELECT id, config FROM runs WHERE status IN (",
                                               kUnfinishedStatuses, ") ORDER BY created_ns, id")));
    for (;;) {
      AMLD_ASSIGN_OR_RETURN(bool row, runs.Step());
      if (!row) break;
      v1::RunConfig config;
      if (config.ParseFromString(runs.Blob(1)) && config.compute_target() == name) {
        return absl::FailedPreconditionError(absl::StrCat(
            "compute target \"", name, "\" is in use by run ", runs.Text(0),
            ", which has not ended; cancel it or wait for it to end, then delete the target"));
      }
    }
    AMLD_ASSIGN_OR_RETURN(Stmt del, impl_->Prepare("DELETE FROM compute_targets WHERE name=?"));
    del.BindText(1, name);
    AMLD_RETURN_IF_ERROR(del.Run());
    if (sqlite3_changes(impl_->db) == 0) {
      return absl::NotFoundError(
          absl::StrCat("compute target \"", absl::CHexEscape(name), "\" does not exist"));
    }
    return absl::OkStatus();
  });
}

}  // namespace amld::storage
