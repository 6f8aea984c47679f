#include "client/grpc_status.h"

#include <grpcpp/support/status.h>

#include <string>

#include "absl/strings/str_cat.h"

namespace amld::client {

absl::Status DaemonNotRunningError(const std::filesystem::path& socket) {
  return absl::UnavailableError(absl::StrCat("amld is not running at ", socket.string(),
                                             ": start it with `aml daemon start`"));
}

absl::Status FromGrpcStatus(const grpc::Status& status, std::string_view doing,
                            const std::filesystem::path& socket, bool mid_stream) {
  if (status.ok()) return absl::OkStatus();
  const auto code = static_cast<absl::StatusCode>(status.error_code());
  if (code == absl::StatusCode::kUnavailable) {
    if (!mid_stream) return DaemonNotRunningError(socket);
    return absl::UnavailableError(absl::StrCat("lost connection to amld at ", socket.string(),
                                               " while trying to ", std::string(doing),
                                               ": check it with `aml daemon status`"));
  }
  if (code == absl::StatusCode::kDeadlineExceeded) {
    return absl::DeadlineExceededError(
        absl::StrCat("amld at ", socket.string(), " did not answer in time while trying to ",
                     std::string(doing), ": check it with `aml daemon status`"));
  }
  std::string message = status.error_message();
  if (message.empty()) message = "the daemon gave no reason";
  return absl::Status(code, absl::StrCat("cannot ", std::string(doing), ": ", message, " (",
                                         std::string(StatusCodeName(code)), ")"));
}

std::string_view StatusCodeName(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return "OK";
    case absl::StatusCode::kCancelled:
      return "CANCELLED";
    case absl::StatusCode::kUnknown:
      return "UNKNOWN";
    case absl::StatusCode::kInvalidArgument:
      return "INVALID_ARGUMENT";
    case absl::StatusCode::kDeadlineExceeded:
      return "DEADLINE_EXCEEDED";
    case absl::StatusCode::kNotFound:
      return "NOT_FOUND";
    case absl::StatusCode::kAlreadyExists:
      return "ALREADY_EXISTS";
    case absl::StatusCode::kPermissionDenied:
      return "PERMISSION_DENIED";
    case absl::StatusCode::kResourceExhausted:
      return "RESOURCE_EXHAUSTED";
    case absl::StatusCode::kFailedPrecondition:
      return "FAILED_PRECONDITION";
    case absl::StatusCode::kAborted:
      return "ABORTED";
    case absl::StatusCode::kOutOfRange:
      return "OUT_OF_RANGE";
    case absl::StatusCode::kUnimplemented:
      return "UNIMPLEMENTED";
    case absl::StatusCode::kInternal:
      return "INTERNAL";
    case absl::StatusCode::kUnavailable:
      return "UNAVAILABLE";
    case absl::StatusCode::kDataLoss:
      return "DATA_LOSS";
    case absl::StatusCode::kUnauthenticated:
      return "UNAUTHENTICATED";
    default:
      return "UNKNOWN";
  }
}

}  // namespace amld::client
