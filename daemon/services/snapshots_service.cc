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
  SnapshotsService(WatchedRoots* roots, const ServiceDeps& deps) : roots_(roots), deps_(deps) {}

  grpc::Status WatchRoot(grpc::ServerContext* context, const pb::WatchRootRequest* request,
                         pb::WatchedRoot* response) override {
    if (grpc::Status s = AdminOnly(context, "watch source folders"); !s.ok()) return s;
    absl::StatusOr<pb::WatchedRoot> root = roots_->Watch(request->path());
    if (!root.ok()) return ToGrpcStatus(root.status());
    *response = *std::move(root);
    return grpc::Status::OK;
  }

  grpc::Status UnwatchRoot(grpc::ServerContext* context, const pb::UnwatchRootRequest* request,
                           pb::UnwatchRootResponse* response) override {
    if (grpc::Status s = AdminOnly(context, "unwatch source folders"); !s.ok()) return s;
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

  grpc::Status GetWatchedSnapshot(grpc::ServerContext* context,
                                  const pb::GetWatchedSnapshotRequest* request,
                                  pb::GetWatchedSnapshotResponse* response) override {
    // The client walks the folder itself after any refusal (with its own
    // rights: a user never snapshots what they cannot read).
    if (grpc::Status s = AdminOnly(context, "use watched source folders"); !s.ok()) return s;
    absl::StatusOr<pb::GetWatchedSnapshotResponse> snap = roots_->Sync(request->path());
    if (!snap.ok()) return ToGrpcStatus(snap.status());
    *response = *std::move(snap);
    return grpc::Status::OK;
  }

 private:
  // A system-mode daemon reads watched folders with root's rights, so only
  // root and the admin group may use them (access.h).
  grpc::Status AdminOnly(grpc::ServerContext* context, std::string_view action) const {
    return ToGrpcStatus(deps_.access.CheckAdmin(CallerUid(deps_, context->peer()), action));
  }

  WatchedRoots* roots_;
  ServiceDeps deps_;
};

}  // namespace

std::unique_ptr<grpc::Service> NewSnapshotsService(WatchedRoots* roots,
                                                   const ServiceDeps& deps) {
  return std::make_unique<SnapshotsService>(roots, deps);
}

}  // namespace amld::daemon
