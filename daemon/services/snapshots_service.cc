// Snapshots service: watched source roots (daemon/watch/watched_roots.h) over gRPC.
// Each handler checks the request's shape and hands it to WatchedRoots; the
// codes are the ones proto/amld/v1/snapshots.proto documents.
#include "amld/v1/snapshots.grpc.pb.h"
#include "daemon/services/grpc_status.h"
#include "daemon/services/services.h"
#include "daemon/watch/watched_roots.h"

namespace amld::daemon {
namespace {

namespace pb = amld::v1;

class SnapshotsService final : public pb::Snapshots::Service {
 public:
  explicit SnapshotsService(WatchedRoots* roots) : roots_(roots) {}

  grpc::Status WatchRoot(grpc::ServerContext*, const pb::WatchRootRequest* request,
                         pb::WatchedRoot* response) override {
    absl::StatusOr<pb::WatchedRoot> root = roots_->Watch(request->path());
    if (!root.ok()) return ToGrpcStatus(root.status());
    *response = *std::move(root);
    return grpc::Status::OK;
  }

  grpc::Status UnwatchRoot(grpc::ServerContext*, const pb::UnwatchRootRequest* request,
                           pb::UnwatchRootResponse* response) override {
    absl::StatusOr<pb::WatchedRoot> root = roots_->Unwatch(request->path());
    if (!root.ok()) return ToGrpcStatus(root.status());
    *response->mutable_root() = *std::move(root);
    return grpc::Status::OK;
  }

  grpc::Status ListWatchedRoots(grpc::ServerContext*, const pb::ListWatchedRootsRequest*,
                                pb::ListWatchedRootsResponse* response) override {
    for (pb::WatchedRoot& root : roots_->List()) *response->add_roots() = std::move(root);
    return grpc::Status::OK;
  }

  grpc::Status GetWatchedSnapshot(grpc::ServerContext*,
                                  const pb::GetWatchedSnapshotRequest* request,
                                  pb::GetWatchedSnapshotResponse* response) override {
    absl::StatusOr<pb::GetWatchedSnapshotResponse> snap = roots_->Sync(request->path());
    if (!snap.ok()) return ToGrpcStatus(snap.status());
    *response = *std::move(snap);
    return grpc::Status::OK;
  }

 private:
  WatchedRoots* roots_;
};

}  // namespace

std::unique_ptr<grpc::Service> NewSnapshotsService(WatchedRoots* roots) {
  return std::make_unique<SnapshotsService>(roots);
}

}  // namespace amld::daemon
