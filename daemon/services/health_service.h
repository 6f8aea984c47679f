// grpc.health.v1.Health, the standard health service (proto/grpc/health/v1),
// for clients nobody here wrote (IDE plugins, grpcurl, load balancers'
// probes). The daemon reports on itself as a whole, service "": SERVING
// while it serves, NOT_SERVING once it is stopping. Any other name is
// NOT_FOUND in Check and SERVICE_UNKNOWN in Watch, as gRPC's own
// implementation answers names nobody registered.
//
// Thread-safety: thread-safe.
#pragma once

#include <memory>

namespace grpc {
class Service;
}

namespace amld::daemon {

class HealthService {
 public:
  virtual ~HealthService() = default;
  // To register with the server; owned by this object.
  virtual grpc::Service* service() = 0;
  // NOT_SERVING from now on; every open Watch is told, then ends.
  virtual void Shutdown() = 0;
};

std::unique_ptr<HealthService> NewHealthService();

}  // namespace amld::daemon
