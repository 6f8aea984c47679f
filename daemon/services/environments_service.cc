// Environments service: registered and curated environments, over the run
// manager's EnvironmentRegistry (daemon/envs/env_registry.h).
#include "amld/v1/environments.grpc.pb.h"
#include "daemon/envs/env_registry.h"
#include "daemon/services/grpc_status.h"
#include "daemon/services/services.h"

namespace amld::daemon {
namespace {

namespace pb = amld::v1;

class EnvironmentsService final : public pb::Environments::Service {
 public:
  explicit EnvironmentsService(const ServiceDeps& deps) : deps_(deps) {}

  grpc::Status RegisterEnvironment(grpc::ServerContext* context,
                                   const pb::RegisterEnvironmentRequest* request,
                                   pb::RegisteredEnvironment* response) override {
    if (absl::Status s = deps_.access.CheckManageTargets(CallerUid(deps_, context->peer()),
                                                         "register environments");
        !s.ok()) {
      return ToGrpcStatus(s);
    }
    if (registry() == nullptr) return Off();
    return Reply(registry()->Register(request->environment()), response);
  }

  grpc::Status GetEnvironment(grpc::ServerContext*, const pb::GetEnvironmentRequest* request,
                              pb::RegisteredEnvironment* response) override {
    if (registry() == nullptr) return Off();
    return Reply(registry()->Get(request->name(), request->version()), response);
  }

  grpc::Status ListEnvironments(grpc::ServerContext*, const pb::ListEnvironmentsRequest*,
                                pb::ListEnvironmentsResponse* response) override {
    if (registry() == nullptr) return Off();
    absl::StatusOr<std::vector<pb::RegisteredEnvironment>> all = registry()->List();
    if (!all.ok()) return ToGrpcStatus(all.status());
    for (pb::RegisteredEnvironment& e : *all) *response->add_environments() = std::move(e);
    return grpc::Status::OK;
  }

 private:
  EnvironmentRegistry* registry() const { return deps_.runs->environment_registry(); }
  static grpc::Status Off() {
    return ToGrpcStatus(absl::UnimplementedError(
        "this daemon keeps no environment registry (it has no data dir for environments)"));
  }
  static grpc::Status Reply(absl::StatusOr<pb::RegisteredEnvironment> result,
                            pb::RegisteredEnvironment* response) {
    if (!result.ok()) return ToGrpcStatus(result.status());
    *response = std::move(*result);
    return grpc::Status::OK;
  }

  ServiceDeps deps_;
};

}  // namespace

std::unique_ptr<grpc::Service> NewEnvironmentsService(const ServiceDeps& deps) {
  return std::make_unique<EnvironmentsService>(deps);
}

}  // namespace amld::daemon
