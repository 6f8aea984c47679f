// The StateStore's artifacts (a run's files, by path, as CAS digests) and
// metrics (named values over steps and time).
#include <cmath>
#include <limits>
#include <optional>
#include <set>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/status_macros.h"
#include "storage/state/state_store.h"
#include "storage/state/state_store_internal.h"

namespace amld::storage {

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

absl::Status StateStore::PutArtifacts(const std::string& run_id,
                                      const std::vector<Artifact>& artifacts) {
  for (const Artifact& a : artifacts) {
    AMLD_RETURN_IF_ERROR(ValidateArtifactPath(a.path));
    AMLD_RETURN_IF_ERROR(ValidateDigest(a.digest));
  }
  absl::MutexLock lock(&impl_->mu);
  return impl_->db.InWriteTransaction([&]() -> absl::Status {
    AMLD_RETURN_IF_ERROR(impl_->RequireRun(run_id));
    for (const Artifact& a : artifacts) {
      AMLD_ASSIGN_OR_RETURN(
          Stmt stmt,
          impl_->db.Prepare("INSERT INTO artifacts(run_id, path, hash, size) VALUES(?, ?, ?, ?) "
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
  return impl_->db.InWriteTransaction([&]() -> absl::Status {
    AMLD_RETURN_IF_ERROR(impl_->RequireRun(run_id));
    for (const std::string& path : paths) {
      AMLD_ASSIGN_OR_RETURN(Stmt stmt,
                            impl_->db.Prepare("DELETE FROM artifacts WHERE run_id=? AND path=?"));
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
  AMLD_ASSIGN_OR_RETURN(Stmt stmt, impl_->db.Prepare("SELECT path, hash, size FROM artifacts "
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
      Stmt stmt, impl_->db.Prepare("SELECT hash, size FROM artifacts WHERE run_id=? AND path=?"));
  stmt.BindText(1, run_id).BindText(2, path);
  AMLD_ASSIGN_OR_RETURN(bool found, stmt.Step());
  if (found) return Artifact{path, Digest{stmt.Text(0), stmt.Int(1)}};
  AMLD_RETURN_IF_ERROR(impl_->RequireRun(run_id));
  return absl::NotFoundError(absl::StrCat("run ", run_id, " has no file ", path));
}

absl::Status StateStore::AppendMetrics(const std::string& run_id,
                                       const std::vector<amld::v1::Metric>& metrics,
                                       const std::string& source,
                                       const std::vector<int64_t>& source_offsets) {
  if (!source.empty() && source_offsets.size() != metrics.size()) {
    return absl::InvalidArgumentError(absl::StrCat("metrics from ", source, ": ",
                                                   metrics.size(), " values but ",
                                                   source_offsets.size(), " offsets"));
  }
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
  return impl_->db.InWriteTransaction([&]() -> absl::Status {
    AMLD_RETURN_IF_ERROR(impl_->RequireRun(run_id));
    for (size_t i = 0; i < metrics.size(); ++i) {
      const amld::v1::Metric& m = metrics[i];
      AMLD_ASSIGN_OR_RETURN(Stmt stmt, impl_->db.Prepare("INSERT INTO metrics(run_id, name, step, "
                                                         "time_ns, number, text, value_type, "
                                                         "table_name, source, source_offset) "
                                                         "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
      stmt.BindText(1, run_id).BindText(2, m.name()).BindInt(3, m.step());
      stmt.BindInt(4, NanosFromTimestamp(m.time()));
      if (m.has_text()) {
        stmt.BindNull(5).BindText(6, m.text());
      } else if (std::isnan(m.number())) {
        stmt.BindNull(5).BindNull(6);  // the schema's spelling of NaN
      } else {
        stmt.BindDouble(5, m.number()).BindNull(6);
      }
      stmt.BindInt(7, m.value_type()).BindText(8, m.table());
      stmt.BindText(9, source).BindInt(10, source.empty() ? 0 : source_offsets[i]);
      AMLD_RETURN_IF_ERROR(stmt.Run());
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<absl::flat_hash_map<std::string, StateStore::MetricSourceProgress>>
StateStore::GetMetricSources(const std::string& run_id) {
  absl::MutexLock lock(&impl_->mu);
  AMLD_RETURN_IF_ERROR(impl_->RequireRun(run_id));
  AMLD_ASSIGN_OR_RETURN(Stmt stmt,
                        impl_->db.Prepare("SELECT source, count(*), max(source_offset) FROM "
                                          "metrics WHERE run_id=? GROUP BY source"));
  stmt.BindText(1, run_id);
  absl::flat_hash_map<std::string, MetricSourceProgress> out;
  for (;;) {
    AMLD_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    out[stmt.Text(0)] = MetricSourceProgress{stmt.Int(1), stmt.Int(2)};
  }
  return out;
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
        Stmt stmt, impl_->db.Prepare(absl::StrCat(
                       "SELECT name, step, time_ns, number, text, value_type, table_name "
                       "FROM metrics WHERE run_id=?",
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
      if (amld::v1::Metric::ValueType_IsValid(stmt.Int(5))) {
        m.set_value_type(static_cast<amld::v1::Metric::ValueType>(stmt.Int(5)));
      }
      m.set_table(stmt.Text(6));
    }
  }
  return out;
}

}  // namespace amld::storage
