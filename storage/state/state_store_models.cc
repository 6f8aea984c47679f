// The StateStore's registered models (table models, schema version 5): each
// version a serialized amld.v1.Model whose files are CAS digests. The store
// keeps the records whole (names, paths, digests, the producing run); the
// models service finds the files.
#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "storage/state/state_store.h"
#include "storage/state/state_store_internal.h"

namespace amld::storage {

namespace v1 = amld::v1;

absl::Status ValidateModelName(const std::string& name) {
  auto ok_char = [](char c) { return absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.'; };
  if (name.empty() || name.size() > 255 || !absl::ascii_isalnum(name.front()) ||
      !std::all_of(name.begin(), name.end(), ok_char)) {
    return absl::InvalidArgumentError(
        absl::StrCat("model name \"", absl::CHexEscape(name),
                     "\" is not valid: use 1 to 255 letters, digits, '-', '_' or '.', starting "
                     "with a letter or digit"));
  }
  return absl::OkStatus();
}

namespace {

absl::StatusOr<v1::Model> ParseModel(Stmt& stmt, int col) {
  v1::Model model;
  if (!model.ParseFromString(stmt.Blob(col))) {
    return absl::DataLossError("state database: a stored model does not parse");
  }
  return model;
}

absl::StatusOr<std::vector<v1::Model>> CollectModels(Stmt& stmt) {
  std::vector<v1::Model> models;
  for (;;) {
    AMLD_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) return models;
    AMLD_ASSIGN_OR_RETURN(v1::Model model, ParseModel(stmt, 0));
    models.push_back(std::move(model));
  }
}

}  // namespace

absl::StatusOr<v1::Model> StateStore::RegisterModel(const v1::Model& model,
                                                    const std::string& origin, absl::Time now) {
  AMLD_RETURN_IF_ERROR(ValidateModelName(model.name()));
  std::set<std::string> paths;
  for (const v1::ModelFile& f : model.files()) {
    AMLD_RETURN_IF_ERROR(ValidateArtifactPath(f.path()));
    AMLD_RETURN_IF_ERROR(ValidateDigest(FromProto(f.digest())));
    if (!paths.insert(f.path()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("model ", model.name(), ": the file ", f.path(), " is given twice"));
    }
  }
  const int64_t now_ns = ToNanos(now);
  absl::MutexLock lock(&impl_->mu);
  return impl_->db.InWriteTransaction([&]() -> absl::StatusOr<v1::Model> {
    if (!origin.empty()) {
      AMLD_ASSIGN_OR_RETURN(Stmt seen,
                            impl_->db.Prepare("SELECT model FROM models WHERE origin=?"));
      seen.BindText(1, origin);
      AMLD_ASSIGN_OR_RETURN(bool row, seen.Step());
      if (row) return ParseModel(seen, 0);
    }
    if (!model.run_id().empty()) AMLD_RETURN_IF_ERROR(impl_->RequireRun(model.run_id()));
    AMLD_ASSIGN_OR_RETURN(
        Stmt next, impl_->db.Prepare("SELECT COALESCE(MAX(version), 0) + 1 FROM models WHERE name=?"));
    next.BindText(1, model.name());
    AMLD_RETURN_IF_ERROR(next.Step().status());
    v1::Model stored = model;
    stored.set_version(next.Int(0));
    *stored.mutable_created_time() = TimestampFromNanos(now_ns);
    std::sort(stored.mutable_files()->begin(), stored.mutable_files()->end(),
              [](const auto& a, const auto& b) { return a.path() < b.path(); });
    AMLD_ASSIGN_OR_RETURN(
        Stmt insert, impl_->db.Prepare("INSERT INTO models(name, version, model, run_id, origin, "
                                       "created_ns) VALUES(?, ?, ?, ?, ?, ?)"));
    insert.BindText(1, stored.name())
        .BindInt(2, stored.version())
        .BindBlob(3, stored.SerializeAsString())
        .BindOptionalText(4, stored.run_id().empty() ? std::nullopt
                                                     : std::optional<std::string>(stored.run_id()))
        .BindOptionalText(5, origin.empty() ? std::nullopt : std::optional<std::string>(origin))
        .BindInt(6, now_ns);
    AMLD_RETURN_IF_ERROR(insert.Run());
    return stored;
  });
}

absl::StatusOr<v1::Model> StateStore::RegisterModelFromRun(v1::Model model,
                                                           const std::string& run_id,
                                                           const std::string& run_path,
                                                           const std::string& origin,
                                                           absl::Time now) {
  std::string path = run_path;
  while (absl::StartsWith(path, "./")) path.erase(0, 2);
  while (absl::EndsWith(path, "/")) path.pop_back();
  if (path.empty() || path == ".") path = "outputs";
  AMLD_RETURN_IF_ERROR(ValidateArtifactPath(path));
  AMLD_ASSIGN_OR_RETURN(std::vector<Artifact> artifacts, ListArtifacts(run_id, path));
  model.clear_files();
  model.set_run_id(run_id);
  model.set_source_path(path);
  std::vector<std::string> nearby;
  for (const Artifact& a : artifacts) {
    v1::ModelFile file;
    if (a.path == path) {
      file.set_path(std::string(path.substr(path.rfind('/') + 1)));
      model.set_single_file(true);
    } else if (absl::StartsWith(a.path, path + "/")) {
      file.set_path(a.path.substr(path.size() + 1));
    } else {
      nearby.push_back(a.path);  // same prefix, another name ("outputs/model.pkl.bak")
      continue;
    }
    ToProto(a.digest, file.mutable_digest());
    *model.add_files() = std::move(file);
  }
  if (model.single_file() && model.files_size() > 1) {
    return absl::FailedPreconditionError(absl::StrCat(
        "run ", run_id, ": ", path, " is both a file and a folder of artifacts; name one file "
        "under it"));
  }
  if (model.files_size() == 0) {
    AMLD_ASSIGN_OR_RETURN(std::vector<Artifact> all, ListArtifacts(run_id));
    std::vector<std::string> names;
    for (const Artifact& a : all) {
      if (names.size() == 10) break;
      if (!absl::StartsWith(a.path, "system_logs/") && !absl::StartsWith(a.path, "user_logs/")) {
        names.push_back(a.path);
      }
    }
    return absl::NotFoundError(absl::StrCat(
        "run ", run_id, " has no file at or under \"", absl::CHexEscape(path), "\"",
        names.empty() ? std::string(" (it has no files in outputs/ or logs/)")
                      : absl::StrCat("; its files include: ", absl::StrJoin(names, ", ")),
        ". Give model_path as the run stored it, e.g. \"outputs/model.pkl\""));
  }
  return RegisterModel(model, origin, now);
}

absl::StatusOr<v1::Model> StateStore::GetModel(const std::string& name, int64_t version) {
  absl::MutexLock lock(&impl_->mu);
  AMLD_ASSIGN_OR_RETURN(
      Stmt stmt, impl_->db.Prepare(version > 0 ? "SELECT model FROM models WHERE name=? AND version=?"
                                               : "SELECT model FROM models WHERE name=? "
                                                 "ORDER BY version DESC LIMIT 1"));
  stmt.BindText(1, name);
  if (version > 0) stmt.BindInt(2, version);
  AMLD_ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) {
    return absl::NotFoundError(
        version > 0 ? absl::StrCat("model ", name, " has no version ", version,
                                   "; `aml model list ", name, "` shows its versions")
                    : absl::StrCat("no model is registered as \"", absl::CHexEscape(name),
                                   "\"; `aml model list` shows the registered models"));
  }
  return ParseModel(stmt, 0);
}

absl::StatusOr<std::vector<v1::Model>> StateStore::ListModels(const std::string& name,
                                                              bool latest_only,
                                                              const std::string& run_id) {
  absl::MutexLock lock(&impl_->mu);
  std::string sql = "SELECT model FROM models m WHERE (?1 = '' OR name = ?1) AND "
                    "(?2 = '' OR run_id = ?2)";
  if (latest_only) {
    sql += " AND version = (SELECT MAX(version) FROM models n WHERE n.name = m.name)";
  }
  sql += " ORDER BY name, version DESC";
  AMLD_ASSIGN_OR_RETURN(Stmt stmt, impl_->db.Prepare(sql));
  stmt.BindText(1, name).BindText(2, run_id);
  return CollectModels(stmt);
}

}  // namespace amld::storage
