// The one place where absl::Status becomes grpc::Status (their code numbers
// are the same by design; the message is kept as is).
//
// Thread-safety: free function, thread-safe.
#pragma once

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace amld::daemon {

grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace amld::daemon
