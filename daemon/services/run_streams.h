// The two long-lived server streams of amld.v1.Runs: WaitRun (a run's state,
// then every change until it is terminal) and StreamLogs (a log's bytes from
// an offset, and with follow its growth until the run ends).
//
// Both hold a thread of the server's pool while open (sync_stream.h says why).
#pragma once

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "daemon/services/services.h"

namespace grpc {
class ServerContext;
class Status;
template <class W>
class ServerWriter;
}  // namespace grpc

namespace amld::v1 {
class LogChunk;
class Run;
class StreamLogsRequest;
class WaitRunResponse;
}  // namespace amld::v1

namespace amld::daemon {

// INVALID_ARGUMENT for a negative offset into a log or file.
absl::Status CheckStreamOffset(int64_t offset);

// WaitRun of the run `run_id` (already resolved and allowed); `redact`
// removes what the caller may not see (AccessPolicy).
grpc::Status ServeWaitRun(const ServiceDeps& deps, const std::string& run_id,
                          const std::function<void(amld::v1::Run*)>& redact,
                          grpc::ServerContext* context,
                          grpc::ServerWriter<amld::v1::WaitRunResponse>* writer);

// StreamLogs of `request` (its run_id already resolved and allowed).
grpc::Status ServeLogStream(const ServiceDeps& deps, const amld::v1::StreamLogsRequest& request,
                            grpc::ServerContext* context,
                            grpc::ServerWriter<amld::v1::LogChunk>* writer);

}  // namespace amld::daemon
