// The StateStore's compute targets. The store checks what it needs to keep
// its records whole (a valid unique name, exactly one kind, "local" never
// stored); what a kind's settings mean is checked by that kind's executor
// (daemon/executors/{ssh,slurm}/*_target.h) before a target reaches here.
#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "storage/run_status.h"
#include "storage/state/state_store.h"
#include "storage/state/state_store_internal.h"

namespace amld::storage {

namespace v1 = amld::v1;

namespace {

v1::ComputeTarget LocalTarget() {
  v1::ComputeTarget target;
  target.set_name(kLocalTargetName);
  target.mutable_local();
  return target;
}

}  // namespace

absl::Status InvalidComputeTarget(const std::string& name, absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("compute target \"", absl::CHexEscape(name), "\": ", what));
}

absl::Status ValidateComputeTarget(const v1::ComputeTarget& target) {
  const std::string& name = target.name();
  AMLD_RETURN_IF_ERROR(ValidateName("compute target", name));
  switch (target.kind_case()) {
    case v1::ComputeTarget::kSsh:
    case v1::ComputeTarget::kSlurm:
      return absl::OkStatus();
    case v1::ComputeTarget::kLocal:
      return InvalidComputeTarget(
          name, "the local kind is built in (the target \"local\"); choose ssh or slurm");
    default:
      return InvalidComputeTarget(name, "say what kind of target it is: ssh or slurm");
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
  return impl_->db.InWriteTransaction([&]() -> absl::StatusOr<v1::ComputeTarget> {
    AMLD_ASSIGN_OR_RETURN(Stmt exists,
                          impl_->db.Prepare("SELECT 1 FROM compute_targets WHERE name=?"));
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
        impl_->db.Prepare("INSERT INTO compute_targets(name, target, created_ns) VALUES(?, ?, ?)"));
    insert.BindText(1, stored.name()).BindBlob(2, stored.SerializeAsString()).BindInt(3, now_ns);
    AMLD_RETURN_IF_ERROR(insert.Run());
    return stored;
  });
}

absl::StatusOr<v1::ComputeTarget> StateStore::GetComputeTarget(const std::string& name) {
  if (name == kLocalTargetName) return LocalTarget();
  absl::MutexLock lock(&impl_->mu);
  AMLD_ASSIGN_OR_RETURN(Stmt stmt,
                        impl_->db.Prepare("SELECT target FROM compute_targets WHERE name=?"));
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
  AMLD_ASSIGN_OR_RETURN(
      Stmt stmt, impl_->db.Prepare("SELECT name, target FROM compute_targets ORDER BY name"));
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
    return absl::FailedPreconditionError(
        "compute target \"local\" is built in; it cannot be deleted");
  }
  absl::MutexLock lock(&impl_->mu);
  return impl_->db.InWriteTransaction([&]() -> absl::Status {
    // Unfinished runs are few (queued and running ones); their configs are
    // read rather than keeping a copy of the target name in an indexed column.
    AMLD_ASSIGN_OR_RETURN(
        Stmt runs, impl_->db.Prepare(absl::StrCat("SELECT id, config FROM runs WHERE status IN (",
                                                  absl::StrJoin(UnfinishedStatuses(), ", "),
                                                  ") ORDER BY created_ns, id")));
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
    AMLD_ASSIGN_OR_RETURN(Stmt del, impl_->db.Prepare("DELETE FROM compute_targets WHERE name=?"));
    del.BindText(1, name);
    AMLD_RETURN_IF_ERROR(del.Run());
    if (impl_->db.Changes() == 0) {
      return absl::NotFoundError(
          absl::StrCat("compute target \"", absl::CHexEscape(name), "\" does not exist"));
    }
    return absl::OkStatus();
  });
}

}  // namespace amld::storage
