// The StateStore: opening and migrating the file, experiments, and the
// digests runs refer to. The other tables' methods are in
// state_store_{runs,artifacts,targets}.cc.
#include "storage/state/state_store.h"

#include <algorithm>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "amld/v1/common.pb.h"
#include "base/status_macros.h"
#include "storage/state/state_schema.h"
#include "storage/state/state_store_internal.h"

namespace amld::storage {

absl::Status ValidateName(absl::string_view what, const std::string& name) {
  if (name.empty() || name.size() > 128) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " name must be 1 to 128 characters, got ", name.size()));
  }
  // The first character is a letter or digit (Azure ML's rule too): names
  // starting with '.' or '-' address amld's own folders beside run folders
  // (runs/.spare*, daemon/runs/run_folder_pool.h) or read as options.
  if (const char c = name[0]; !absl::ascii_isalnum(static_cast<unsigned char>(c))) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " name \"", absl::CHexEscape(name),
                     "\" must start with a letter or digit"));
  }
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.';
    if (!ok) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " name \"", absl::CHexEscape(name),
                       "\" may contain only letters, digits, '-', '_' and '.'"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateExperimentName(const std::string& name) {
  return ValidateName("experiment", name);
}

// ---------------------------------------------------------------------------
// Time as stored: nanoseconds since the Unix epoch.

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

// ---------------------------------------------------------------------------
// Opening and migrating.

// Reads the file's header before changing anything, so that a foreign or
// newer file is refused untouched. Returns the schema version.
absl::StatusOr<int64_t> StateStore::Impl::CheckFile() {
  // The first statement to read the file: a file that is not a database
  // fails here.
  absl::StatusOr<int64_t> version = db.QueryInt("PRAGMA user_version");
  if (version.status().code() == absl::StatusCode::kFailedPrecondition) {
    return absl::FailedPreconditionError(absl::StrCat(
        db.path().string(), " is not an amld state database (", version.status().message(),
        "); move it away or point amld at another data dir"));
  }
  if (!version.ok()) return version.status();
  const int latest = LatestSchemaVersion();
  if (*version > latest) {
    return absl::FailedPreconditionError(
        absl::StrCat("state database ", db.path().string(), " has schema version ", *version,
                     ", newer than version ", latest,
                     ", the latest this amld knows; upgrade amld to a version that wrote it"));
  }
  AMLD_ASSIGN_OR_RETURN(int64_t app_id, db.QueryInt("PRAGMA application_id"));
  bool foreign = app_id != 0 && app_id != kStateApplicationId;
  if (!foreign && *version == 0) {
    // A fresh amld file is empty; an unmarked file with tables is someone else's.
    AMLD_ASSIGN_OR_RETURN(int64_t tables, db.QueryInt("SELECT COUNT(*) FROM sqlite_master"));
    foreign = tables > 0;
  }
  if (foreign) {
    return absl::FailedPreconditionError(
        absl::StrCat(db.path().string(),
                     " is an SQLite database of another program, not an amld state "
                     "database; move it away or point amld at another data dir"));
  }
  return version;
}

// A damaged page is found at start, not at the next write that touches it
// (maybe during a run's end). quick_check reads every page once: O(size).
absl::Status StateStore::Impl::CheckIntegrity() {
  AMLD_ASSIGN_OR_RETURN(std::string result, db.QueryText("PRAGMA quick_check(5)"));
  if (result == "ok") return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "state database ", db.path().string(), " is damaged (PRAGMA quick_check: ", result,
      "); stop amld and restore it from a backup, or recover what it holds with: sqlite3 ",
      db.path().string(), " .recover | sqlite3 recovered.db"));
}

absl::Status StateStore::Impl::Configure() {
  AMLD_ASSIGN_OR_RETURN(std::string mode, db.QueryText("PRAGMA journal_mode=WAL"));
  if (mode != "wal") {
    return absl::FailedPreconditionError(absl::StrCat(
        "state database ", db.path().string(), " cannot use WAL mode (journal mode is ", mode,
        "); keep the data dir on a local filesystem"));
  }
  // In WAL mode NORMAL syncs at checkpoints, not at every commit: a commit
  // survives the daemon being killed at any moment (the WAL is in the OS's
  // page cache), though the last commits may be lost if the machine itself
  // loses power. The database is never corrupted either way.
  AMLD_RETURN_IF_ERROR(db.Exec("PRAGMA synchronous=NORMAL"));
  AMLD_RETURN_IF_ERROR(db.Exec("PRAGMA foreign_keys=ON"));
  AMLD_ASSIGN_OR_RETURN(int64_t fk, db.QueryInt("PRAGMA foreign_keys"));
  if (fk != 1) {
    return absl::InternalError("state database: SQLite refused to enable foreign keys");
  }
  return absl::OkStatus();
}

// Applies every migration past `version`, each in its own transaction, so
// an interrupted upgrade resumes from the last completed step.
absl::Status StateStore::Impl::Migrate(int64_t version) {
  for (const SchemaMigration& m : SchemaMigrations()) {
    if (m.version <= version) continue;
    absl::Status status = db.InWriteTransaction([&]() { return ApplyMigration(m); });
    if (!status.ok()) {
      return absl::Status(
          status.code(),
          absl::StrCat("migrating state database ", db.path().string(), " to schema version ",
                       m.version, " (", m.summary, "): ", status.message()));
    }
  }
  return absl::OkStatus();
}

absl::Status StateStore::Impl::ApplyMigration(const SchemaMigration& m) {
  // Read again under the write lock: another process may have migrated
  // the file since we looked.
  AMLD_ASSIGN_OR_RETURN(int64_t version, db.QueryInt("PRAGMA user_version"));
  if (version >= m.version) return absl::OkStatus();
  if (version != m.version - 1) {
    return absl::InternalError(
        absl::StrCat("schema version is ", version, ", expected ", m.version - 1));
  }
  AMLD_RETURN_IF_ERROR(db.Exec(m.sql));
  if (m.version == 1) {
    AMLD_RETURN_IF_ERROR(db.Exec(absl::StrCat("PRAGMA application_id=", kStateApplicationId)));
  }
  return db.Exec(absl::StrCat("PRAGMA user_version=", m.version));
}

StateStore::StateStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
StateStore::~StateStore() = default;

int StateStore::LatestSchemaVersion() { return SchemaMigrations().back().version; }

absl::StatusOr<std::unique_ptr<StateStore>> StateStore::Open(const std::filesystem::path& path) {
  // SQLite reads a 0-byte file as a new, empty database: every run would be
  // forgotten without a word. amld only ever creates the file through SQLite,
  // which writes its header before Open returns.
  std::error_code ec;
  if (std::filesystem::is_regular_file(path, ec) && std::filesystem::file_size(path, ec) == 0 &&
      !ec) {
    return absl::FailedPreconditionError(absl::StrCat(
        "state database ", path.string(),
        " is empty (0 bytes): its content was lost (a truncated copy, a full disk?); restore it "
        "from a backup, or remove it (and any ", path.filename().string(),
        "-wal) to start with no runs"));
  }
  auto impl = std::make_unique<Impl>();
  AMLD_RETURN_IF_ERROR(impl->db.Open(path));
  // The daemon is the file's only user (one daemon per data dir: amld.lock),
  // so it holds the file's lock for as long as it is open. Set before the
  // first read: in WAL mode SQLite then keeps the WAL index in the heap and
  // never locks the -shm file, which otherwise costs two fcntl calls around
  // every read and more around every write (~70 per trivial run, a third of
  // the daemon's system calls for it). Durability is unchanged; another
  // process opening the file while amld runs gets "database is locked".
  AMLD_RETURN_IF_ERROR(impl->db.Exec("PRAGMA locking_mode=EXCLUSIVE"));
  absl::StatusOr<int64_t> version = impl->CheckFile();
  absl::Status status = version.status();
  if (status.ok()) status = impl->CheckIntegrity();
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
  AMLD_ASSIGN_OR_RETURN(int64_t version, impl_->db.QueryInt("PRAGMA user_version"));
  return static_cast<int>(version);
}

// ---------------------------------------------------------------------------
// Experiments.

absl::StatusOr<amld::v1::Experiment> StateStore::Impl::LoadExperiment(const std::string& name) {
  AMLD_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(ExperimentQuery("WHERE e.name=?")));
  stmt.BindText(1, name);
  AMLD_ASSIGN_OR_RETURN(std::vector<amld::v1::Experiment> found, CollectExperiments(stmt));
  if (found.empty()) {
    return absl::NotFoundError(absl::StrCat("experiment ", name, " does not exist"));
  }
  return std::move(found.front());
}

std::string StateStore::Impl::ExperimentQuery(absl::string_view where) {
  return absl::StrCat(
      "SELECT e.name, e.created_ns, "
      "(SELECT COUNT(*) FROM runs r WHERE r.experiment=e.name), "
      "(SELECT MAX(created_ns) FROM runs r WHERE r.experiment=e.name) "
      "FROM experiments e ",
      where, " ORDER BY e.name");
}

absl::StatusOr<std::vector<amld::v1::Experiment>> StateStore::Impl::CollectExperiments(Stmt& stmt) {
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

absl::Status StateStore::Impl::EnsureExperiment(const std::string& name, int64_t now_ns) {
  AMLD_ASSIGN_OR_RETURN(
      Stmt stmt, db.Prepare("INSERT OR IGNORE INTO experiments(name, created_ns) VALUES(?, ?)"));
  stmt.BindText(1, name).BindInt(2, now_ns);
  return stmt.Run();
}

absl::StatusOr<amld::v1::Experiment> StateStore::CreateExperiment(const std::string& name,
                                                                  absl::Time now) {
  AMLD_RETURN_IF_ERROR(ValidateExperimentName(name));
  absl::MutexLock lock(&impl_->mu);
  return impl_->db.InWriteTransaction([&]() -> absl::StatusOr<amld::v1::Experiment> {
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
  AMLD_ASSIGN_OR_RETURN(Stmt stmt, impl_->db.Prepare(Impl::ExperimentQuery("")));
  return impl_->CollectExperiments(stmt);
}

// ---------------------------------------------------------------------------
// What runs refer to, for garbage collection.

absl::StatusOr<StateStore::References> StateStore::ReferencedDigests() {
  absl::MutexLock lock(&impl_->mu);
  References refs;
  for (auto [sql, out] :
       {std::pair{"SELECT DISTINCT snapshot_hash, snapshot_size FROM runs "
                  "WHERE snapshot_hash IS NOT NULL ORDER BY 1, 2",
                  &refs.snapshot_roots},
        std::pair{"SELECT DISTINCT hash, size FROM artifacts ORDER BY 1, 2", &refs.artifacts}}) {
    AMLD_ASSIGN_OR_RETURN(Stmt stmt, impl_->db.Prepare(sql));
    for (;;) {
      AMLD_ASSIGN_OR_RETURN(bool row, stmt.Step());
      if (!row) break;
      out->push_back(Digest{stmt.Text(0), stmt.Int(1)});
    }
  }
  // Registered models keep their files whatever becomes of the run.
  AMLD_ASSIGN_OR_RETURN(Stmt models, impl_->db.Prepare("SELECT model FROM models"));
  for (;;) {
    AMLD_ASSIGN_OR_RETURN(bool row, models.Step());
    if (!row) break;
    amld::v1::Model model;
    if (!model.ParseFromString(models.Blob(0))) {
      return absl::DataLossError("state database: a stored model does not parse");
    }
    for (const auto& f : model.files()) {
      refs.artifacts.push_back(FromProto(f.digest()));
    }
  }
  std::sort(refs.artifacts.begin(), refs.artifacts.end());
  refs.artifacts.erase(std::unique(refs.artifacts.begin(), refs.artifacts.end()),
                       refs.artifacts.end());
  return refs;
}

}  // namespace amld::storage
