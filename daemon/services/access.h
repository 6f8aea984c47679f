// Who may do what on a daemon several users share (`amld --system`).
//
// The caller is the uid the kernel gave for the connection (SO_PEERCRED,
// daemon/socket_listener.h); nothing a client sends about who it is counts.
// In user mode only the daemon's own user can connect, and every check here
// passes. In system mode:
//   - everyone may list runs and see their status (as with squeue), but the
//     runs of others come without what would let one read their content:
//     the snapshot digest and the environment variables (RedactForCaller);
//   - only a run's submitter, root, or a member of amld.yaml's admin_group
//     may cancel it or read its logs, files and metrics (CheckRunOwner);
//     a refusal is PERMISSION_DENIED naming the run's owner;
//   - a registered model's metadata is everyone's to list and get, but its
//     files are content: they are downloaded only by whoever registered
//     it, the submitter of the run it was registered from, root and the
//     admin group (CheckModelReader); registering one needs the files'
//     proof (content_proof.h) or ownership of the run it comes from;
//   - compute targets are created and deleted by root and the admin group
//     only, unless amld.yaml sets users_manage_targets: true;
//   - a watched source root is its owner's (the caller who watched it,
//     whose rights every read of it takes: daemon/watch/watched_roots.h);
//     others may not use, list or unwatch it, root and the admin group may.
//
// Thread-safety: immutable after Create; thread-safe.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "amld/v1/models.pb.h"
#include "amld/v1/runs.pb.h"

namespace amld::daemon {

struct AccessOptions {
  bool system_mode = false;
  // A group whose members may act on every run and manage targets; "" none.
  std::string admin_group;
  bool users_manage_targets = false;
};

class AccessPolicy {
 public:
  // FAILED_PRECONDITION when admin_group names no group on this machine.
  static absl::StatusOr<AccessPolicy> Create(const AccessOptions& options);
  // User mode: everything is allowed.
  AccessPolicy() = default;

  bool system_mode() const { return options_.system_mode; }
  // Root, or a member of the admin group; in user mode, everyone.
  bool IsAdmin(uid_t caller) const;
  // OK when `caller` may `action` ("cancel", "read the logs of") `run`.
  absl::Status CheckRunOwner(uid_t caller, const amld::v1::Run& run,
                             std::string_view action) const;
  // OK when `caller` may read the files of `model`: they registered it, or
  // submitted `run_owner` (the submitter of the model's run, when it came
  // from one), or are an admin. PERMISSION_DENIED naming the owner.
  absl::Status CheckModelReader(uid_t caller, const amld::v1::Model& model,
                                std::optional<uid_t> run_owner) const;
  // OK when `caller` may create or delete compute targets.
  absl::Status CheckManageTargets(uid_t caller, std::string_view action) const;
  // OK when `caller` may `action` (admins only in system mode).
  absl::Status CheckAdmin(uid_t caller, std::string_view action) const;
  // Removes from `run` what only its owner may see (see the file comment);
  // `caller_is_admin` is IsAdmin(caller), asked once per call.
  void RedactForCaller(uid_t caller, bool caller_is_admin, amld::v1::Run* run) const;

 private:
  explicit AccessPolicy(AccessOptions options, std::optional<gid_t> admin_gid)
      : options_(std::move(options)), admin_gid_(admin_gid) {}
  std::string Who() const;

  AccessOptions options_;
  std::optional<gid_t> admin_gid_;
};

}  // namespace amld::daemon
