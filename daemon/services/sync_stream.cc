#include "daemon/services/sync_stream.h"

#include <grpcpp/server_context.h>

namespace amld::daemon {

bool AwaitUnlessCancelled(absl::Mutex& mu, const absl::Condition& ready,
                          grpc::ServerContext* context) {
  while (!mu.AwaitWithTimeout(ready, kCancelCheckInterval)) {
    if (context->IsCancelled()) return false;
  }
  return true;
}

grpc::Status ClientWentAway() {
  return grpc::Status(grpc::StatusCode::CANCELLED, "the client went away");
}

}  // namespace amld::daemon
