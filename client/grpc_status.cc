#include "client/grpc_status.h"

#include <grpcpp/support/status.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include <string>

#include "absl/strings/str_cat.h"

namespace amld::client {

absl::Status DaemonNotRunningError(const std::filesystem::path& socket) {
  // A daemon that runs but refused us (SO_PEERCRED: it serves its own user
  // only) looks like no daemon to gRPC; the socket's owner tells them apart.
  struct stat st;
  if (::stat(socket.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) && st.st_uid != ::geteuid()) {
    return absl::PermissionDeniedError(absl::StrCat(
        "the amld at ", socket.string(), " belongs to uid ", st.st_uid,
        " and serves only its owner (this is uid ", ::geteuid(),
        "); use your own daemon: `aml daemon start`, without AMLD_SOCKET/--socket naming theirs"));
  }
  if (::stat(socket.c_str(), &st) != 0 && errno == EACCES) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot reach the amld socket ", socket.string(),
                     ": its folder is another user's; use your own daemon: `aml daemon start`"));
  }
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
