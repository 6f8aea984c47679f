#include "daemon/services/health_service.h"

#include "absl/synchronization/mutex.h"
#include "daemon/services/sync_stream.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace amld::daemon {
namespace {

namespace pb = grpc::health::v1;
using ServingStatus = pb::HealthCheckResponse::ServingStatus;

class HealthServiceImpl final : public HealthService, public pb::Health::Service {
 public:
  grpc::Service* service() override { return this; }

  void Shutdown() override {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }

  grpc::Status Check(grpc::ServerContext*, const pb::HealthCheckRequest* request,
                     pb::HealthCheckResponse* response) override {
    if (!request->service().empty()) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND,
                          "amld reports its health as a whole: ask for service \"\"");
    }
    absl::MutexLock lock(&mu_);
    response->set_status(StatusOf(request->service()));
    return grpc::Status::OK;
  }

  grpc::Status Watch(grpc::ServerContext* context, const pb::HealthCheckRequest* request,
                     grpc::ServerWriter<pb::HealthCheckResponse>* writer) override {
    // Only stopping changes what this daemon reports: the status now, the
    // status once stopping (if it differs), then the end of the stream.
    pb::HealthCheckResponse sent;
    pb::HealthCheckResponse last;
    {
      absl::MutexLock lock(&mu_);
      sent.set_status(StatusOf(request->service()));
    }
    if (!writer->Write(sent)) return ClientWentAway();
    {
      absl::MutexLock lock(&mu_);
      // Shutdown() sets stopping_ under mu_, which wakes this at once.
      grpc::Status waited = AwaitForStream(mu_, absl::Condition(&stopping_), context, nullptr);
      if (!waited.ok()) return waited;
      last.set_status(StatusOf(request->service()));
    }
    if (last.status() != sent.status() && !writer->Write(last)) return ClientWentAway();
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the daemon is stopping");
  }

 private:
  ServingStatus StatusOf(const std::string& service) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!service.empty()) return pb::HealthCheckResponse::SERVICE_UNKNOWN;
    return stopping_ ? pb::HealthCheckResponse::NOT_SERVING : pb::HealthCheckResponse::SERVING;
  }

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

std::unique_ptr<HealthService> NewHealthService() { return std::make_unique<HealthServiceImpl>(); }

}  // namespace amld::daemon
