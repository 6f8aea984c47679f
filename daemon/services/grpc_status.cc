#include "daemon/services/grpc_status.h"

#include <string>

namespace amld::daemon {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  int code = static_cast<int>(status.code());
  // absl and gRPC share the canonical codes 0..16; anything else is a bug
  // worth surfacing as UNKNOWN rather than an invalid code on the wire.
  if (code < 0 || code > 16) code = grpc::StatusCode::UNKNOWN;
  return grpc::Status(static_cast<grpc::StatusCode>(code), std::string(status.message()));
}

}  // namespace amld::daemon
