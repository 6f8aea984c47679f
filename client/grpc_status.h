// Conversion of gRPC call outcomes into absl::Status, in one place, with
// messages a person can act on. A daemon that does not answer becomes the
// "amld is not running" message; other daemon errors keep their code and
// the daemon's own message, prefixed by what the client was doing.
//
// Thread-safety: free functions, thread-safe.
#pragma once

#include <filesystem>
#include <string_view>

#include "absl/status/status.h"

namespace grpc {
class Status;
}

namespace amld::client {

// The error for a socket where no daemon answers.
absl::Status DaemonNotRunningError(const std::filesystem::path& socket);

// `doing` says what the client tried, e.g. "download outputs/x of run R".
// UNAVAILABLE becomes DaemonNotRunningError(socket) (or "lost connection"
// when `mid_stream`); every other code is kept, with the daemon's message.
absl::Status FromGrpcStatus(const grpc::Status& status, std::string_view doing,
                            const std::filesystem::path& socket, bool mid_stream = false);

// The canonical upper-case name of a code, e.g. "INVALID_ARGUMENT".
std::string_view StatusCodeName(absl::StatusCode code);

}  // namespace amld::client
