#include "daemon/services/access.h"

#include <grp.h>
#include <unistd.h>

#include <vector>

#include <grpcpp/server_context.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/user_names.h"
#include "base/viewer_metadata.h"
#include "daemon/executors/run_as.h"
#include "daemon/services/services.h"

namespace amld::daemon {

absl::StatusOr<AccessPolicy> AccessPolicy::Create(const AccessOptions& options) {
  std::optional<gid_t> gid;
  if (!options.admin_group.empty()) {
    std::vector<char> buf(16384);
    group g;
    group* found = nullptr;
    int err;
    while ((err = ::getgrnam_r(options.admin_group.c_str(), &g, buf.data(), buf.size(), &found)) ==
           ERANGE) {
      buf.resize(buf.size() * 2);
    }
    if (found == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat(
          "admin_group \"", options.admin_group,
          "\" (amld.yaml) is no group on this machine; create it (groupadd ", options.admin_group,
          ") or remove the setting"));
    }
    gid = found->gr_gid;
  }
  return AccessPolicy(options, gid);
}

bool AccessPolicy::IsAdmin(uid_t caller) const {
  if (!options_.system_mode || caller == 0) return true;
  if (!admin_gid_) return false;
  absl::StatusOr<RunAs> account = LookupAccount(caller);
  return account.ok() && InGroup(*account, *admin_gid_);
}

std::string AccessPolicy::Who() const {
  return options_.admin_group.empty() ? "root"
                                      : absl::StrCat("root or members of ", options_.admin_group);
}

absl::Status AccessPolicy::CheckRunOwner(uid_t caller, const amld::v1::Run& run,
                                         std::string_view action) const {
  if (run.submitter_uid() == caller || IsAdmin(caller)) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat(
      "run ", run.id(), " belongs to ", base::DescribeUser(run.submitter_uid()), "; only its submitter or ",
      Who(), " may ", std::string(action), " it"));
}

absl::Status AccessPolicy::CheckModelReader(uid_t caller, const amld::v1::Model& model,
                                            std::optional<uid_t> run_owner) const {
  if (model.registered_by_uid() == caller || run_owner == caller || IsAdmin(caller)) {
    return absl::OkStatus();
  }
  // A model registered by its run (run.register_model) has the run's
  // submitter as its owner; one registered through the API, its caller.
  const uid_t owner = run_owner.value_or(model.registered_by_uid());
  return absl::PermissionDeniedError(absl::StrCat(
      "model ", model.name(), " version ", model.version(), " belongs to ", base::DescribeUser(owner),
      "; only whoever registered it, the submitter of its run, or ", Who(),
      " may download its files"));
}

absl::Status AccessPolicy::CheckManageTargets(uid_t caller, std::string_view action) const {
  if (options_.users_manage_targets) return absl::OkStatus();
  return CheckAdmin(caller, action);
}

absl::Status AccessPolicy::CheckAdmin(uid_t caller, std::string_view action) const {
  if (IsAdmin(caller)) return absl::OkStatus();
  return absl::PermissionDeniedError(
      absl::StrCat("on this shared (system-mode) daemon only ", Who(), " may ", std::string(action),
                   "; you are ", base::DescribeUser(caller)));
}

void AccessPolicy::RedactForCaller(uid_t caller, bool caller_is_admin,
                                   amld::v1::Run* run) const {
  if (!options_.system_mode || run->submitter_uid() == caller || caller_is_admin) return;
  run->mutable_config()->clear_snapshot_root();
  run->mutable_config()->mutable_environment()->clear_environment_variables();
}

uid_t PeerUid(const ServiceDeps& deps, const std::string& peer) {
  return deps.uid_of_peer ? deps.uid_of_peer(peer).value_or(::geteuid()) : ::geteuid();
}

uid_t CallerUid(const ServiceDeps& deps, const grpc::ServerContextBase& context) {
  const std::string peer = context.peer();
  if (deps.uid_of_peer) {
    if (std::optional<uid_t> uid = deps.uid_of_peer(peer)) return *uid;
  }
  // Not a connection the listener accepted: the in-process channel.
  const auto& metadata = context.client_metadata();
  auto viewer = metadata.find(base::kViewerUidMetadata);
  uid_t uid = 0;
  if (viewer != metadata.end() &&
      absl::SimpleAtoi(absl::string_view(viewer->second.data(), viewer->second.size()), &uid)) {
    return uid;
  }
  return ::geteuid();
}

}  // namespace amld::daemon
