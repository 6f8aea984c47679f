// ComputeTargets service: defining, reading and removing compute targets
// (proto amld/v1/compute.proto). The targets live in the StateStore, which
// enforces its own rules (names, "local" built in, no deleting a target an
// unfinished run uses). Before a target is stored the service has its
// kind's executor check the settings (ExecutorRegistry::ValidateTarget) and
// adds the one check that needs this machine — an ssh target's identity
// file must be readable by the daemon; it retires a deleted target's
// executor.
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "amld/v1/compute.grpc.pb.h"
#include "daemon/executors/executor_registry.h"
#include "daemon/services/grpc_status.h"
#include "daemon/services/services.h"
#include "spdlog/spdlog.h"

namespace amld::daemon {
namespace {

namespace pb = amld::v1;

absl::Status CheckOnThisMachine(const pb::ComputeTarget& target) {
  if (!target.has_ssh() || target.ssh().identity_file().empty()) return absl::OkStatus();
  const std::string& key = target.ssh().identity_file();
  if (::access(key.c_str(), R_OK) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("identity file ", key, " cannot be read by the daemon (", std::strerror(errno),
                     "); give the absolute path of a private key on the daemon's machine"));
  }
  return absl::OkStatus();
}

class ComputeTargetsService final : public pb::ComputeTargets::Service {
 public:
  explicit ComputeTargetsService(const ServiceDeps& deps) : deps_(deps) {}

  grpc::Status CreateComputeTarget(grpc::ServerContext* context,
                                   const pb::CreateComputeTargetRequest* request,
                                   pb::ComputeTarget* response) override {
    if (absl::Status s = deps_.access.CheckManageTargets(CallerUid(deps_, *context),
                                                         "create compute targets");
        !s.ok()) {
      return ToGrpcStatus(s);
    }
    const pb::ComputeTarget& target = request->target();
    if (target.name() != amld::storage::kLocalTargetName) {
      // Without a registry (tests that run no targets) only the store's
      // rules apply.
      absl::Status valid = deps_.executors != nullptr
                               ? deps_.executors->ValidateTarget(target)
                               : amld::storage::ValidateComputeTarget(target);
      if (valid.ok()) valid = CheckOnThisMachine(target);
      if (!valid.ok()) return ToGrpcStatus(valid);
    }
    absl::StatusOr<pb::ComputeTarget> created =
        deps_.store->CreateComputeTarget(target, deps_.clock->Now());
    if (!created.ok()) return ToGrpcStatus(created.status());
    if (deps_.log != nullptr) {
      deps_.log->info("compute target {} created ({})", created->name(),
                      created->has_ssh() ? "ssh" : "slurm");
    }
    *response = std::move(*created);
    return grpc::Status::OK;
  }

  grpc::Status GetComputeTarget(grpc::ServerContext*, const pb::GetComputeTargetRequest* request,
                                pb::ComputeTarget* response) override {
    absl::StatusOr<pb::ComputeTarget> target = deps_.store->GetComputeTarget(request->name());
    if (!target.ok()) return ToGrpcStatus(target.status());
    *response = std::move(*target);
    return grpc::Status::OK;
  }

  grpc::Status ListComputeTargets(grpc::ServerContext*, const pb::ListComputeTargetsRequest*,
                                  pb::ListComputeTargetsResponse* response) override {
    absl::StatusOr<std::vector<pb::ComputeTarget>> all = deps_.store->ListComputeTargets();
    if (!all.ok()) return ToGrpcStatus(all.status());
    for (pb::ComputeTarget& t : *all) *response->add_targets() = std::move(t);
    return grpc::Status::OK;
  }

  grpc::Status DeleteComputeTarget(grpc::ServerContext* context,
                                   const pb::DeleteComputeTargetRequest* request,
                                   pb::DeleteComputeTargetResponse*) override {
    if (absl::Status s = deps_.access.CheckManageTargets(CallerUid(deps_, *context),
                                                         "delete compute targets");
        !s.ok()) {
      return ToGrpcStatus(s);
    }
    absl::Status deleted = deps_.store->DeleteComputeTarget(request->name());
    if (!deleted.ok()) return ToGrpcStatus(deleted);
    if (deps_.executors != nullptr) deps_.executors->Forget(request->name());
    if (deps_.log != nullptr) deps_.log->info("compute target {} deleted", request->name());
    return grpc::Status::OK;
  }

 private:
  ServiceDeps deps_;
};

}  // namespace

std::unique_ptr<grpc::Service> NewComputeTargetsService(const ServiceDeps& deps) {
  return std::make_unique<ComputeTargetsService>(deps);
}

}  // namespace amld::daemon
