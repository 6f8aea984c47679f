// The StateStore's runs: inserting, reading, listing by pages, and moving
// them through the table of legal transitions (run_status.h).
#include <algorithm>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "amld/v1/common.pb.h"
#include "base/status_macros.h"
#include "storage/state/state_store.h"
#include "storage/state/state_store_internal.h"

namespace amld::storage {

namespace {
// runs.exit_code of a run that reached FINALIZING without an exit code (the
// column is NOT NULL, so no migration is needed).
constexpr int64_t kNoExitCode = -1;
}  // namespace

namespace v1 = amld::v1;

namespace {

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

}  // namespace

// ---------------------------------------------------------------------------
// Reading and writing rows (StateStore::Impl).

absl::StatusOr<bool> StateStore::Impl::RunExists(const std::string& id) {
  AMLD_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare("SELECT 1 FROM runs WHERE id=?"));
  stmt.BindText(1, id);
  return stmt.Step();
}

absl::Status StateStore::Impl::RequireRun(const std::string& id) {
  AMLD_ASSIGN_OR_RETURN(bool exists, RunExists(id));
  if (!exists) return absl::NotFoundError(absl::StrCat("run ", id, " does not exist"));
  return absl::OkStatus();
}

// Builds a Run (without history) from a row of kRunColumns.
absl::StatusOr<amld::v1::Run> StateStore::Impl::RunFromRow(Stmt& row) {
  amld::v1::Run run;
  run.set_id(row.Text(0));
  if (!run.mutable_config()->ParseFromString(row.Blob(1))) {
    return absl::DataLossError(
        absl::StrCat("state database: the stored config of run ", run.id(), " does not parse"));
  }
  run.set_status(static_cast<RunStatus>(row.Int(2)));
  *run.mutable_created_time() = TimestampFromNanos(row.Int(3));
  // kNoExitCode: none is known (the supervisor was lost); exit codes are 0-255.
  if (row.Int(4) != kNoExitCode) run.set_exit_code(static_cast<int32_t>(row.Int(4)));
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

absl::Status StateStore::Impl::LoadHistory(amld::v1::Run* run) {
  AMLD_ASSIGN_OR_RETURN(
      Stmt stmt,
      db.Prepare(
          "SELECT status, time_ns, reason FROM run_transitions WHERE run_id=? ORDER BY seq"));
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
absl::StatusOr<std::vector<amld::v1::Run>> StateStore::Impl::CollectRuns(Stmt& stmt) {
  std::vector<amld::v1::Run> runs;
  for (;;) {
    AMLD_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    AMLD_ASSIGN_OR_RETURN(amld::v1::Run run, RunFromRow(stmt));
    runs.push_back(std::move(run));
  }
  // One small indexed query per run: in-process SQLite makes N+1 cheap,
  // and a page is at most 1000 runs.
  for (amld::v1::Run& run : runs) {
    AMLD_RETURN_IF_ERROR(LoadHistory(&run));
    AMLD_RETURN_IF_ERROR(LoadLabels(&run));
  }
  return runs;
}

absl::StatusOr<amld::v1::Run> StateStore::Impl::LoadRun(const std::string& id) {
  AMLD_ASSIGN_OR_RETURN(Stmt stmt,
                        db.Prepare(absl::StrCat("SELECT ", kRunColumns, " FROM runs WHERE id=?")));
  stmt.BindText(1, id);
  AMLD_ASSIGN_OR_RETURN(std::vector<amld::v1::Run> runs, CollectRuns(stmt));
  if (runs.empty()) return absl::NotFoundError(absl::StrCat("run ", id, " does not exist"));
  return std::move(runs.front());
}

absl::Status StateStore::Impl::AddTransition(const std::string& run_id, RunStatus status,
                                             int64_t time_ns, const std::string& reason) {
  AMLD_ASSIGN_OR_RETURN(
      Stmt stmt, db.Prepare("INSERT INTO run_transitions(run_id, seq, status, time_ns, reason) "
                            "SELECT ?1, COALESCE(MAX(seq), 0) + 1, ?2, ?3, ?4 FROM run_transitions "
                            "WHERE run_id=?1"));
  stmt.BindText(1, run_id).BindInt(2, status).BindInt(3, time_ns).BindText(4, reason);
  return stmt.Run();
}

absl::StatusOr<amld::v1::Run> StateStore::Impl::InsertRunLocked(const NewRun& run) {
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
      db.Prepare("INSERT INTO runs(id, experiment, config, snapshot_hash, snapshot_size, status, "
                 "created_ns, submitter_uid, parent_run_id, git_repository, git_commit) "
                 "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
  const amld::v1::RunConfig& config = run.config;
  stmt.BindText(1, run.id).BindText(2, config.experiment_name());
  stmt.BindBlob(3, config.SerializeAsString());
  if (config.snapshot_root().hash().empty()) {
    stmt.BindNull(4).BindNull(5);
  } else {
    stmt.BindText(4, config.snapshot_root().hash()).BindInt(5, config.snapshot_root().size_bytes());
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

absl::StatusOr<amld::v1::Run> StateStore::Impl::TransitionLocked(const std::string& run_id,
                                                                 RunStatus to,
                                                                 const TransitionDetails& details,
                                                                 int64_t now_ns) {
  AMLD_ASSIGN_OR_RETURN(Stmt current, db.Prepare("SELECT status FROM runs WHERE id=?"));
  current.BindText(1, run_id);
  AMLD_ASSIGN_OR_RETURN(bool found, current.Step());
  if (!found) return absl::NotFoundError(absl::StrCat("run ", run_id, " does not exist"));
  const auto from = static_cast<RunStatus>(current.Int(0));
  if (!IsLegalTransition(from, to)) {
    return absl::FailedPreconditionError(absl::StrCat("run ", run_id, " is ", StatusName(from),
                                                      "; it cannot become ", StatusName(to)));
  }
  AMLD_ASSIGN_OR_RETURN(
      Stmt update, db.Prepare("UPDATE runs SET status=?, exit_code=COALESCE(?, exit_code), "
                              "exit_signal=COALESCE(?, exit_signal), error=COALESCE(?, error), "
                              "placement=COALESCE(?, placement), "
                              "assigned_gpus=COALESCE(?, assigned_gpus), "
                              "handle=COALESCE(?, handle) WHERE id=?"));
  std::optional<std::string> gpus;
  if (details.assigned_gpus) gpus = absl::StrJoin(*details.assigned_gpus, ",");
  // FINALIZING records how the process ended; without an exit code (the
  // supervisor was lost) the column holds kNoExitCode, read back as unset.
  std::optional<int64_t> exit_code = details.exit_code;
  if (to == amld::v1::RunStatus::FINALIZING && !exit_code && !details.exit_signal) {
    exit_code = kNoExitCode;
  }
  update.BindInt(1, to)
      .BindOptionalInt(2, exit_code)
      .BindOptionalInt(3, details.exit_signal)
      .BindOptionalText(4, details.error)
      .BindOptionalText(5, details.placement)
      .BindOptionalText(6, gpus)
      .BindOptionalText(7, details.handle)
      .BindText(8, run_id);
  AMLD_RETURN_IF_ERROR(update.Run());
  AMLD_RETURN_IF_ERROR(AddTransition(run_id, to, now_ns, details.reason));
  return LoadRun(run_id);
}

// ---------------------------------------------------------------------------
// The public methods.

absl::StatusOr<amld::v1::Run> StateStore::InsertRun(const NewRun& run) {
  if (run.id.empty()) return absl::InvalidArgumentError("run id must not be empty");
  AMLD_RETURN_IF_ERROR(ValidateExperimentName(run.config.experiment_name()));
  if (!run.config.snapshot_root().hash().empty()) {
    AMLD_RETURN_IF_ERROR(ValidateDigest(FromProto(run.config.snapshot_root())));
  }
  absl::MutexLock lock(&impl_->mu);
  return impl_->db.InWriteTransaction([&] { return impl_->InsertRunLocked(run); });
}

absl::StatusOr<amld::v1::Run> StateStore::GetRun(const std::string& id) {
  absl::MutexLock lock(&impl_->mu);
  return impl_->LoadRun(id);
}

absl::StatusOr<std::vector<std::string>> StateStore::FindRunIds(const std::string& fragment,
                                                                int limit) {
  absl::MutexLock lock(&impl_->mu);
  // Compared as blobs: substr and length count bytes, not characters.
  AMLD_ASSIGN_OR_RETURN(
      Stmt stmt,
      impl_->db.Prepare("SELECT id FROM runs WHERE substr(CAST(id AS BLOB), 1, length(?1)) = ?1 "
                        "OR substr(CAST(id AS BLOB), -length(?1)) = ?1 "
                        "ORDER BY created_ns DESC, id DESC LIMIT ?2"));
  stmt.BindBlob(1, fragment);
  stmt.BindInt(2, limit);
  std::vector<std::string> ids;
  while (true) {
    AMLD_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    ids.push_back(stmt.Text(0));
  }
  return ids;
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
  AMLD_ASSIGN_OR_RETURN(Stmt stmt, impl_->db.Prepare(sql));
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
      impl_->db.Prepare(absl::StrCat("SELECT ", kRunColumns, " FROM runs WHERE status IN (",
                                     Placeholders(distinct.size()), ") ORDER BY created_ns, id")));
  for (size_t i = 0; i < distinct.size(); ++i) stmt.BindInt(static_cast<int>(i) + 1, distinct[i]);
  return impl_->CollectRuns(stmt);
}

absl::StatusOr<absl::flat_hash_map<RunStatus, int64_t>> StateStore::CountByStatus() {
  absl::MutexLock lock(&impl_->mu);
  AMLD_ASSIGN_OR_RETURN(Stmt stmt,
                        impl_->db.Prepare("SELECT status, COUNT(*) FROM runs GROUP BY status"));
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
  return impl_->db.InWriteTransaction(
      [&] { return impl_->TransitionLocked(run_id, to, details, ToNanos(now)); });
}

absl::Status StateStore::SetRunHandle(const std::string& run_id, const std::string& handle) {
  absl::MutexLock lock(&impl_->mu);
  return impl_->db.InWriteTransaction([&]() -> absl::Status {
    AMLD_ASSIGN_OR_RETURN(Stmt stmt, impl_->db.Prepare("UPDATE runs SET handle=? WHERE id=?"));
    stmt.BindText(1, handle).BindText(2, run_id);
    AMLD_RETURN_IF_ERROR(stmt.Run());
    if (impl_->db.Changes() == 0) {
      return absl::NotFoundError(absl::StrCat("run ", run_id, " does not exist"));
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<v1::Run> StateStore::SetRunPlacement(const std::string& run_id,
                                                    const std::string& placement) {
  absl::MutexLock lock(&impl_->mu);
  absl::Status updated = impl_->db.InWriteTransaction([&]() -> absl::Status {
    AMLD_ASSIGN_OR_RETURN(Stmt stmt, impl_->db.Prepare("SELECT status FROM runs WHERE id=?"));
    stmt.BindText(1, run_id);
    AMLD_ASSIGN_OR_RETURN(bool found, stmt.Step());
    if (!found) return absl::NotFoundError(absl::StrCat("run ", run_id, " does not exist"));
    const RunStatus status = static_cast<RunStatus>(stmt.Int(0));
    if (IsTerminal(status)) {
      return absl::FailedPreconditionError(
          absl::StrCat("run ", run_id, " is ", StatusName(status), "; its placement is final"));
    }
    AMLD_ASSIGN_OR_RETURN(Stmt update, impl_->db.Prepare("UPDATE runs SET placement=? WHERE id=?"));
    update.BindText(1, placement).BindText(2, run_id);
    return update.Run();
  });
  AMLD_RETURN_IF_ERROR(updated);
  return impl_->LoadRun(run_id);
}

int64_t StateStore::write_transactions() const { return impl_->db.commits(); }

absl::StatusOr<std::string> StateStore::GetRunHandle(const std::string& run_id) {
  absl::MutexLock lock(&impl_->mu);
  AMLD_ASSIGN_OR_RETURN(Stmt stmt, impl_->db.Prepare("SELECT handle FROM runs WHERE id=?"));
  stmt.BindText(1, run_id);
  AMLD_ASSIGN_OR_RETURN(bool found, stmt.Step());
  if (!found) return absl::NotFoundError(absl::StrCat("run ", run_id, " does not exist"));
  return stmt.Text(0);
}

absl::Status StateStore::DeleteRun(const std::string& run_id) {
  absl::MutexLock lock(&impl_->mu);
  return impl_->db.InWriteTransaction([&]() -> absl::Status {
    AMLD_ASSIGN_OR_RETURN(Stmt run, impl_->db.Prepare("SELECT status FROM runs WHERE id=?"));
    run.BindText(1, run_id);
    AMLD_ASSIGN_OR_RETURN(bool found, run.Step());
    if (!found) return absl::NotFoundError(absl::StrCat("run ", run_id, " does not exist"));
    const auto status = static_cast<RunStatus>(run.Int(0));
    if (!IsTerminal(status)) {
      return absl::FailedPreconditionError(
          absl::StrCat("run ", run_id, " is ", StatusName(status),
                       ": only ended runs are deleted; cancel it first (aml run cancel ", run_id,
                       ")"));
    }
    AMLD_ASSIGN_OR_RETURN(Stmt children,
                          impl_->db.Prepare("SELECT id FROM runs WHERE parent_run_id=? LIMIT 1"));
    children.BindText(1, run_id);
    AMLD_ASSIGN_OR_RETURN(bool has_children, children.Step());
    if (has_children) {
      return absl::FailedPreconditionError(absl::StrCat(
          "run ", run_id, " is the parent of runs (e.g. ", children.Text(0), "): delete them first"));
    }
    // A model the run registered stays (its record still names the run; its
    // files are garbage-collection roots of their own), unlinked from the row.
    for (const char* sql : {"DELETE FROM metrics WHERE run_id=?", "DELETE FROM artifacts WHERE run_id=?",
                            "DELETE FROM run_labels WHERE run_id=?",
                            "UPDATE models SET run_id=NULL WHERE run_id=?",
                            "DELETE FROM run_transitions WHERE run_id=?", "DELETE FROM runs WHERE id=?"}) {
      AMLD_ASSIGN_OR_RETURN(Stmt del, impl_->db.Prepare(sql));
      del.BindText(1, run_id);
      AMLD_RETURN_IF_ERROR(del.Run());
    }
    return absl::OkStatus();
  });
}

}  // namespace amld::storage
