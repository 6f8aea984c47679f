#include "client/watched_snapshot.h"

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include "amld/v1/snapshots.grpc.pb.h"
#include "client/grpc_status.h"

namespace amld::client {

absl::StatusOr<WatchedSnapshotAnswer> AskWatchedSnapshot(const Connection& conn,
                                                         const std::filesystem::path& dir) {
  auto stub = amld::v1::Snapshots::NewStub(conn.channel);
  grpc::ClientContext ctx;
  amld::v1::GetWatchedSnapshotRequest req;
  req.set_path(dir.string());
  amld::v1::GetWatchedSnapshotResponse resp;
  const grpc::Status st = stub->GetWatchedSnapshot(&ctx, req, &resp);
  WatchedSnapshotAnswer answer;
  switch (st.error_code()) {
    case grpc::StatusCode::OK:
      answer.snapshot = std::move(resp);
      return answer;
    case grpc::StatusCode::NOT_FOUND:      // not a watched root
    case grpc::StatusCode::UNIMPLEMENTED:  // a daemon without watched roots
      return answer;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
    case grpc::StatusCode::UNAVAILABLE:
      return FromGrpcStatus(st, "take the watched snapshot of " + dir.string(), conn.socket_path);
    default:
      answer.fallback_reason = st.error_message();
      return answer;
  }
}

}  // namespace amld::client
