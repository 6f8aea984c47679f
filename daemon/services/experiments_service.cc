// Experiments service: named groups of runs.
#include "absl/strings/str_cat.h"
#include "amld/v1/experiments.grpc.pb.h"
#include "daemon/services/grpc_status.h"
#include "daemon/services/services.h"

namespace amld::daemon {
namespace {

namespace pb = amld::v1;

class ExperimentsService final : public pb::Experiments::Service {
 public:
  explicit ExperimentsService(const ServiceDeps& deps) : deps_(deps) {}

  grpc::Status CreateExperiment(grpc::ServerContext*, const pb::CreateExperimentRequest* request,
                                pb::Experiment* response) override {
    absl::Status valid = amld::storage::ValidateExperimentName(request->name());
    if (!valid.ok()) return ToGrpcStatus(valid);
    return Reply(deps_.store->CreateExperiment(request->name(), deps_.clock->Now()), response);
  }

  grpc::Status GetExperiment(grpc::ServerContext*, const pb::GetExperimentRequest* request,
                             pb::Experiment* response) override {
    return Reply(deps_.store->GetExperiment(request->name()), response);
  }

  grpc::Status ListExperiments(grpc::ServerContext*, const pb::ListExperimentsRequest*,
                               pb::ListExperimentsResponse* response) override {
    absl::StatusOr<std::vector<pb::Experiment>> all = deps_.store->ListExperiments();
    if (!all.ok()) return ToGrpcStatus(all.status());
    for (pb::Experiment& e : *all) *response->add_experiments() = std::move(e);
    return grpc::Status::OK;
  }

 private:
  static grpc::Status Reply(absl::StatusOr<pb::Experiment> result, pb::Experiment* response) {
    if (!result.ok()) return ToGrpcStatus(result.status());
    *response = std::move(*result);
    return grpc::Status::OK;
  }

  ServiceDeps deps_;
};

}  // namespace

std::unique_ptr<grpc::Service> NewExperimentsService(const ServiceDeps& deps) {
  return std::make_unique<ExperimentsService>(deps);
}

}  // namespace amld::daemon
