#include "storage/state/sqlite.h"

#include <sqlite3.h>

#include <utility>

#include "absl/strings/str_cat.h"

namespace amld::storage {

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

void StmtFinalizer::operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }

// ---------------------------------------------------------------------------
// Stmt.

static_assert(SQLITE_OK == 0, "Stmt::bind_rc_ starts as SQLITE_OK");

Stmt::Stmt(sqlite3* db, CachedStmt* cached) : db_(db), stmt_(cached->stmt.get()), cached_(cached) {
  cached_->in_use = true;
}

Stmt::Stmt(sqlite3* db, StmtPtr owned) : db_(db), stmt_(owned.get()), owned_(std::move(owned)) {}

Stmt::Stmt(Stmt&& o) noexcept
    : db_(o.db_),
      stmt_(std::exchange(o.stmt_, nullptr)),
      cached_(std::exchange(o.cached_, nullptr)),
      owned_(std::move(o.owned_)),
      bind_rc_(o.bind_rc_) {}

Stmt::~Stmt() {
  if (stmt_ == nullptr) return;
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  if (cached_ != nullptr) cached_->in_use = false;
}

Stmt& Stmt::BindInt(int i, int64_t v) { return Check(sqlite3_bind_int64(stmt_, i, v)); }
Stmt& Stmt::BindDouble(int i, double v) { return Check(sqlite3_bind_double(stmt_, i, v)); }
Stmt& Stmt::BindNull(int i) { return Check(sqlite3_bind_null(stmt_, i)); }
Stmt& Stmt::BindText(int i, absl::string_view v) {
  return Check(sqlite3_bind_text64(stmt_, i, v.data(), v.size(), SQLITE_TRANSIENT, SQLITE_UTF8));
}
Stmt& Stmt::BindBlob(int i, absl::string_view v) {
  return Check(sqlite3_bind_blob64(stmt_, i, v.data(), v.size(), SQLITE_TRANSIENT));
}

absl::StatusOr<bool> Stmt::Step() {
  if (bind_rc_ != SQLITE_OK) return SqliteStatus(db_, bind_rc_, "binding a parameter");
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return SqliteStatus(db_, rc, sqlite3_sql(stmt_));
}

bool Stmt::IsNull(int col) { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
int64_t Stmt::Int(int col) { return sqlite3_column_int64(stmt_, col); }
double Stmt::Double(int col) { return sqlite3_column_double(stmt_, col); }
std::string Stmt::Text(int col) {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
  return p == nullptr ? std::string() : std::string(p, sqlite3_column_bytes(stmt_, col));
}
std::string Stmt::Blob(int col) {
  const auto* p = static_cast<const char*>(sqlite3_column_blob(stmt_, col));
  return p == nullptr ? std::string() : std::string(p, sqlite3_column_bytes(stmt_, col));
}

Stmt& Stmt::Check(int rc) {
  if (rc != SQLITE_OK && bind_rc_ == SQLITE_OK) bind_rc_ = rc;
  return *this;
}

// ---------------------------------------------------------------------------
// SqliteDb.

SqliteDb::~SqliteDb() {
  cache_.clear();  // statements must be finalized before the connection closes
  if (db_ != nullptr) sqlite3_close(db_);
}

absl::Status SqliteDb::Open(const std::filesystem::path& path) {
  path_ = path;
  // NOMUTEX: the owner serializes every call on its own mutex.
  int rc =
      sqlite3_open_v2(path.c_str(), &db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    absl::Status status = SqliteStatus(db_, rc, absl::StrCat("opening ", path.string()));
    if ((rc & 0xff) != SQLITE_CANTOPEN) return status;
    return absl::Status(status.code(), absl::StrCat(status.message(),
                                                    " (does its folder exist, and may amld "
                                                    "write there?)"));
  }
  sqlite3_extended_result_codes(db_, 1);
  sqlite3_busy_timeout(db_, 5000);
  return absl::OkStatus();
}

absl::StatusOr<Stmt> SqliteDb::Prepare(const std::string& sql) {
  auto it = cache_.find(sql);
  if (it != cache_.end() && !it->second->in_use) return Stmt(db_, it->second.get());
  sqlite3_stmt* raw = nullptr;
  // A nested use of a statement already lent out gets a one-off copy.
  unsigned flags = it == cache_.end() ? SQLITE_PREPARE_PERSISTENT : 0;
  int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()), flags, &raw, nullptr);
  if (rc != SQLITE_OK) return SqliteStatus(db_, rc, absl::StrCat("preparing ", sql));
  StmtPtr stmt(raw);
  if (it != cache_.end()) return Stmt(db_, std::move(stmt));
  auto cached = std::make_unique<CachedStmt>();
  cached->stmt = std::move(stmt);
  CachedStmt* ptr = cached.get();
  cache_.emplace(sql, std::move(cached));
  return Stmt(db_, ptr);
}

absl::Status SqliteDb::Exec(const std::string& sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
  if (rc == SQLITE_OK) return absl::OkStatus();
  std::string msg = err != nullptr ? err : sqlite3_errstr(rc);
  sqlite3_free(err);
  absl::Status status = SqliteStatus(nullptr, rc, "");
  return absl::Status(status.code(), absl::StrCat("state database ", path_.string(), ": ", msg));
}

absl::StatusOr<int64_t> SqliteDb::QueryInt(const std::string& sql) {
  AMLD_ASSIGN_OR_RETURN(Stmt stmt, Prepare(sql));
  AMLD_ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) return absl::InternalError(absl::StrCat("state database: no result for ", sql));
  return stmt.Int(0);
}

absl::StatusOr<std::string> SqliteDb::QueryText(const std::string& sql) {
  AMLD_ASSIGN_OR_RETURN(Stmt stmt, Prepare(sql));
  AMLD_ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) return absl::InternalError(absl::StrCat("state database: no result for ", sql));
  return stmt.Text(0);
}

int64_t SqliteDb::Changes() { return sqlite3_changes(db_); }

}  // namespace amld::storage
