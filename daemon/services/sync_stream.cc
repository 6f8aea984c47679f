#include "daemon/services/sync_stream.h"

#include <grpcpp/server_context.h>

namespace amld::daemon {

grpc::Status AwaitForStream(absl::Mutex& mu, const absl::Condition& ready,
                            grpc::ServerContext* context, const std::atomic<bool>* stopping) {
  while (!mu.AwaitWithTimeout(ready, kCancelCheckInterval)) {
    if (context->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "canceled");
    if (stopping != nullptr && stopping->load()) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          "amld is stopping; a follower resumes once it is back");
    }
  }
  return grpc::Status::OK;
}

grpc::Status ClientWentAway() {
  return grpc::Status(grpc::StatusCode::CANCELLED, "the client went away");
}

}  // namespace amld::daemon
