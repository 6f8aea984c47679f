// What changes about a run after submit: tags, add-only properties, the
// display name, and a failure its script asked for (table run_labels,
// schema version 5). Run.config keeps what was submitted; Run.tags,
// properties and display_name are the record now.
#include <optional>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "storage/state/state_store.h"
#include "storage/state/state_store_internal.h"

namespace amld::storage {

namespace {

// run_labels.kind.
enum LabelKind : int64_t { kTag = 1, kProperty = 2, kDisplayName = 3, kFailure = 4 };

absl::Status CheckKey(absl::string_view what, const std::string& key) {
  if (key.empty()) return absl::InvalidArgumentError(absl::StrCat("a ", what, " key is empty"));
  if (key.size() > 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " key \"", absl::CHexEscape(key.substr(0, 40)), "…\" is longer than 1024 bytes"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status StateStore::Impl::LoadLabels(amld::v1::Run* run) {
  auto& tags = *run->mutable_tags();
  tags.insert(run->config().tags().begin(), run->config().tags().end());
  run->set_display_name(run->config().display_name());
  AMLD_ASSIGN_OR_RETURN(Stmt stmt,
                        db.Prepare("SELECT kind, key, value FROM run_labels WHERE run_id=? "
                                   "AND kind IN (1, 2, 3) ORDER BY kind, key"));
  stmt.BindText(1, run->id());
  for (;;) {
    AMLD_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) return absl::OkStatus();
    switch (stmt.Int(0)) {
      case kTag:
        if (stmt.IsNull(2)) {
          tags.erase(stmt.Text(1));
        } else {
          tags[stmt.Text(1)] = stmt.Text(2);
        }
        break;
      case kProperty:
        (*run->mutable_properties())[stmt.Text(1)] = stmt.Text(2);
        break;
      case kDisplayName:
        run->set_display_name(stmt.Text(2));
        break;
    }
  }
}

absl::StatusOr<amld::v1::Run> StateStore::UpdateRunLabels(const std::string& run_id,
                                                          const RunLabelChanges& changes) {
  for (const auto& [key, value] : changes.set_tags) AMLD_RETURN_IF_ERROR(CheckKey("tag", key));
  for (const auto& [key, value] : changes.add_properties) {
    AMLD_RETURN_IF_ERROR(CheckKey("property", key));
  }
  absl::MutexLock lock(&impl_->mu);
  return impl_->db.InWriteTransaction([&]() -> absl::StatusOr<amld::v1::Run> {
    AMLD_RETURN_IF_ERROR(impl_->RequireRun(run_id));
    auto put = [&](int64_t kind, const std::string& key,
                   const std::optional<std::string>& value) -> absl::Status {
      AMLD_ASSIGN_OR_RETURN(
          Stmt stmt, impl_->db.Prepare("INSERT INTO run_labels(run_id, kind, key, value) "
                                       "VALUES(?, ?, ?, ?) ON CONFLICT(run_id, kind, key) "
                                       "DO UPDATE SET value=excluded.value"));
      stmt.BindText(1, run_id).BindInt(2, kind).BindText(3, key).BindOptionalText(4, value);
      return stmt.Run();
    };
    for (const auto& [key, value] : changes.set_tags) {
      AMLD_RETURN_IF_ERROR(put(kTag, key, value));
    }
    for (const std::string& key : changes.remove_tags) {
      AMLD_RETURN_IF_ERROR(put(kTag, key, std::nullopt));
    }
    for (const auto& [key, value] : changes.add_properties) {
      AMLD_ASSIGN_OR_RETURN(Stmt get, impl_->db.Prepare("SELECT value FROM run_labels WHERE "
                                                        "run_id=? AND kind=? AND key=?"));
      get.BindText(1, run_id).BindInt(2, kProperty).BindText(3, key);
      AMLD_ASSIGN_OR_RETURN(bool exists, get.Step());
      if (exists) {
        const std::string old = get.Text(0);
        if (old == value) continue;
        return absl::FailedPreconditionError(absl::StrCat(
            "run ", run_id, ": property \"", absl::CHexEscape(key), "\" is already \"",
            absl::CHexEscape(old), "\"; properties cannot change once set (use a tag for a "
            "value that changes, or a new property name)"));
      }
      AMLD_RETURN_IF_ERROR(put(kProperty, key, value));
    }
    if (changes.display_name) AMLD_RETURN_IF_ERROR(put(kDisplayName, "", *changes.display_name));
    if (changes.failure) AMLD_RETURN_IF_ERROR(put(kFailure, "", *changes.failure));
    return impl_->LoadRun(run_id);
  });
}

absl::StatusOr<std::optional<std::string>> StateStore::RequestedFailure(const std::string& run_id) {
  absl::MutexLock lock(&impl_->mu);
  AMLD_ASSIGN_OR_RETURN(Stmt stmt, impl_->db.Prepare("SELECT value FROM run_labels WHERE "
                                                     "run_id=? AND kind=? AND key=''"));
  stmt.BindText(1, run_id).BindInt(2, kFailure);
  AMLD_ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) return std::optional<std::string>();
  return std::optional<std::string>(stmt.Text(0));
}

}  // namespace amld::storage
