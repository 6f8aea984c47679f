// The state store's SQLite plumbing: one connection with a cache of
// prepared statements, a statement lent out for one use (Stmt, reset when it
// goes away), write transactions that commit explicitly and roll back on
// any error, and SQLite result codes mapped to absl::Status codes a caller
// can act on (BUSY → UNAVAILABLE, FULL → RESOURCE_EXHAUSTED, CORRUPT →
// DATA_LOSS, a taken key → ALREADY_EXISTS, ...).
//
// Internal to storage/state/; only the StateStore uses it. sqlite3.h stays
// out of this header, so nothing that includes it needs SQLite's headers.
//
// Thread-safety: not thread-safe. The connection is opened NOMUTEX; its
// owner (the StateStore) serializes every use on its own mutex.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "base/status_macros.h"

struct sqlite3;
struct sqlite3_stmt;

namespace amld::storage {

// A status for SQLite result code `rc` (extended codes included) while doing
// `what`, with SQLite's message for `db` (or for `rc` when `db` is null).
absl::Status SqliteStatus(sqlite3* db, int rc, absl::string_view what);

struct StmtFinalizer {
  void operator()(sqlite3_stmt* s) const;
};
using StmtPtr = std::unique_ptr<sqlite3_stmt, StmtFinalizer>;

// A cached prepared statement, lent out to one user at a time.
struct CachedStmt {
  StmtPtr stmt;
  bool in_use = false;
};

// One use of a prepared statement. Resets it and clears its bindings when it
// goes away, so the cached statement is clean for the next user; a bind
// error is remembered and returned by the next Step(). Parameters count
// from 1, result columns from 0, as in SQLite.
class Stmt {
 public:
  Stmt(sqlite3* db, CachedStmt* cached);
  Stmt(sqlite3* db, StmtPtr owned);
  Stmt(Stmt&& o) noexcept;
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  Stmt& operator=(Stmt&&) = delete;
  ~Stmt();

  Stmt& BindInt(int i, int64_t v);
  Stmt& BindDouble(int i, double v);
  Stmt& BindNull(int i);
  Stmt& BindText(int i, absl::string_view v);
  Stmt& BindBlob(int i, absl::string_view v);
  template <typename T>
  Stmt& BindOptionalInt(int i, const std::optional<T>& v) {
    return v ? BindInt(i, *v) : BindNull(i);
  }
  Stmt& BindOptionalText(int i, const std::optional<std::string>& v) {
    return v ? BindText(i, *v) : BindNull(i);
  }

  // True when a row is ready, false when done.
  absl::StatusOr<bool> Step();
  // Runs a statement that returns no rows.
  absl::Status Run() { return Step().status(); }

  bool IsNull(int col);
  int64_t Int(int col);
  double Double(int col);
  std::string Text(int col);  // NULL reads as ""
  std::string Blob(int col);

 private:
  Stmt& Check(int rc);

  sqlite3* db_;
  sqlite3_stmt* stmt_;
  CachedStmt* cached_ = nullptr;
  StmtPtr owned_;
  int bind_rc_ = 0;  // SQLITE_OK
};

// One connection to one database file.
class SqliteDb {
 public:
  SqliteDb() = default;
  SqliteDb(const SqliteDb&) = delete;
  SqliteDb& operator=(const SqliteDb&) = delete;
  // Finalizes the cached statements, then closes the connection.
  ~SqliteDb();

  // Opens (creating when missing) the file at `path` for reading and
  // writing, with extended result codes and a 5 s busy timeout. Call once.
  // A file SQLite cannot open is FAILED_PRECONDITION asking whether its
  // folder exists and may be written.
  absl::Status Open(const std::filesystem::path& path);
  const std::filesystem::path& path() const { return path_; }

  // The statement for `sql`, prepared once and cached by its text; a nested
  // use of a statement already lent out gets a one-off copy.
  absl::StatusOr<Stmt> Prepare(const std::string& sql);
  // Runs SQL text that may hold several statements and returns no rows.
  absl::Status Exec(const std::string& sql);
  // The first column of the first row; INTERNAL when there is no row.
  absl::StatusOr<int64_t> QueryInt(const std::string& sql);
  absl::StatusOr<std::string> QueryText(const std::string& sql);
  // Rows changed by the last INSERT, UPDATE or DELETE.
  int64_t Changes();
  // Write transactions committed by InWriteTransaction so far; readable
  // without the owner's lock.
  int64_t commits() const { return commits_.load(std::memory_order_relaxed); }

  // Runs `body` (returning absl::Status or absl::StatusOr) inside BEGIN
  // IMMEDIATE … COMMIT; rolls back when it (or the commit) fails, so a
  // failed write leaves nothing behind. IMMEDIATE takes the write lock up
  // front: a read-then-write body can never be refused half-way with
  // SQLITE_BUSY.
  template <typename Body>
  auto InWriteTransaction(Body&& body) -> decltype(body()) {
    AMLD_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
    auto result = body();
    absl::Status status = result.ok() ? Exec("COMMIT") : absl::OkStatus();
    if (result.ok() && status.ok()) commits_.fetch_add(1, std::memory_order_relaxed);
    if (!result.ok() || !status.ok()) {
      Exec("ROLLBACK").IgnoreError();  // fails harmlessly when SQLite already rolled back
      if (!status.ok()) return status;
    }
    return result;
  }

 private:
  std::filesystem::path path_;
  sqlite3* db_ = nullptr;
  absl::flat_hash_map<std::string, std::unique_ptr<CachedStmt>> cache_;
  std::atomic<int64_t> commits_{0};
};

}  // namespace amld::storage
