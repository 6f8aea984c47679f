// Snapshots service: watched source roots (daemon/watch/watched_roots.h) over gRPC.
// Each handler checks the request's shape and hands it to WatchedRoots; the
// codes are the ones proto/amld/v1/snapshots.proto documents.
#include <sys/socket.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "amld/v1/snapshots.grpc.pb.h"
#include "daemon/services/content_proof.h"
#include "daemon/services/grpc_status.h"
#include "daemon/services/services.h"
#include "daemon/watch/local_ingest.h"
#include "daemon/watch/watched_roots.h"

namespace amld::daemon {
namespace {

namespace pb = amld::v1;

class SnapshotsService final : public pb::Snapshots::Service {
 public:
  SnapshotsService(WatchedRoots* roots, const ServiceDeps& deps)
      : roots_(roots), deps_(deps), ingest_(deps.cas, IngestOptions(*roots, deps)) {}

  grpc::Status IngestLocalFolder(grpc::ServerContext* context,
                                 const pb::IngestLocalFolderRequest* request,
                                 pb::IngestLocalFolderResponse* response) override {
    if (!roots_->options().local_ingest) {
      return ToGrpcStatus(absl::FailedPreconditionError(
          "local ingest is turned off in amld.yaml (local_ingest: false); the client uploads"));
    }
    std::optional<PeerProcess> peer = PeerOf(context->peer());
    if (!peer) {
      return ToGrpcStatus(absl::FailedPreconditionError(
          "amld cannot tell which process is calling; the client uploads instead"));
    }
    absl::StatusOr<pb::IngestLocalFolderResponse> done = ingest_.Ingest(*peer, *request);
    if (!done.ok()) return ToGrpcStatus(done.status());
    // Read with the caller's own rights: their proof of this content on a
    // shared daemon (content_proof.h), as an upload would be.
    if (absl::Status proof = RecordSnapshotProof(
            deps_, peer->uid, amld::storage::FromProto(done->snapshot_root()));
        !proof.ok()) {
      return ToGrpcStatus(proof);
    }
    *response = *std::move(done);
    return grpc::Status::OK;
  }

  grpc::Status WatchRoot(grpc::ServerContext* context, const pb::WatchRootRequest* request,
                         pb::WatchedRoot* response) override {
    // System mode: the root is the caller's, read with their rights.
    std::optional<RootOwner> owner;
    if (deps_.access.system_mode()) {
      std::optional<PeerProcess> peer = PeerOf(context->peer());
      if (!peer) {
        return ToGrpcStatus(absl::FailedPreconditionError(
            "amld cannot tell who is calling, so it cannot read the folder with your rights"));
      }
      owner = RootOwner{peer->uid, peer->gid};
    }
    absl::StatusOr<pb::WatchedRoot> root = roots_->Watch(request->path(), owner);
    if (!root.ok()) return ToGrpcStatus(root.status());
    *response = *std::move(root);
    return grpc::Status::OK;
  }

  grpc::Status UnwatchRoot(grpc::ServerContext* context, const pb::UnwatchRootRequest* request,
                           pb::UnwatchRootResponse* response) override {
    absl::StatusOr<pb::WatchedRoot> root = roots_->Unwatch(request->path(), OnlyOwn(context));
    if (!root.ok()) return ToGrpcStatus(root.status());
    *response->mutable_root() = *std::move(root);
    return grpc::Status::OK;
  }

  grpc::Status ListWatchedRoots(grpc::ServerContext* context, const pb::ListWatchedRootsRequest*,
                                pb::ListWatchedRootsResponse* response) override {
    const std::optional<uid_t> only = OnlyOwn(context);
    for (pb::WatchedRoot& root : roots_->List()) {
      if (!only || root.owner_uid() == *only) *response->add_roots() = std::move(root);
    }
    return grpc::Status::OK;
  }

  grpc::Status GetWatchedSnapshot(grpc::ServerContext* context,
                                  const pb::GetWatchedSnapshotRequest* request,
                                  pb::GetWatchedSnapshotResponse* response) override {
    // The client walks the folder itself after any refusal (with its own
    // rights: a user never snapshots what they cannot read).
    const uid_t caller = CallerUid(deps_, *context);
    absl::StatusOr<pb::GetWatchedSnapshotResponse> snap =
        roots_->Sync(request->path(), OnlyOwn(context));
    if (!snap.ok()) return ToGrpcStatus(snap.status());
    // Read with the owner's rights (only they get here, or an admin): their
    // proof of the content, as for a local ingest (content_proof.h).
    if (absl::Status proof =
            RecordSnapshotProof(deps_, caller, amld::storage::FromProto(snap->snapshot_root()));
        !proof.ok()) {
      return ToGrpcStatus(proof);
    }
    *response = *std::move(snap);
    return grpc::Status::OK;
  }

 private:
  // Whose roots the caller may act on: in system mode a user other than
  // root and the admin group only their own (access.h); nullopt: all.
  std::optional<uid_t> OnlyOwn(grpc::ServerContext* context) const {
    const uid_t caller = CallerUid(deps_, *context);
    if (!deps_.access.system_mode() || deps_.access.IsAdmin(caller)) return std::nullopt;
    return caller;
  }

  static LocalIngestOptions IngestOptions(WatchedRoots& roots, const ServiceDeps& deps) {
    LocalIngestOptions o;
    if (!deps.facts.data_dir.empty()) o.cache_dir = deps.facts.data_dir / "ingest-cache";
    o.max_snapshot_bytes = roots.options().max_snapshot_bytes;
    o.max_snapshot_files = roots.options().max_snapshot_files;
    o.threads = roots.options().hash_threads;
    WatchedRoots* watched = &roots;
    o.on_repeated = [watched](const std::filesystem::path& path) {
      return watched->WatchAutomatically(path);
    };
    return o;
  }

  // The connection's process as the kernel gave it (peer is "fd:N", the
  // accepted socket: daemon/socket_listener.h); the uid must agree with the
  // one recorded at accept.
  std::optional<PeerProcess> PeerOf(const std::string& peer) const {
    int fd = 0;
    if (!absl::StartsWith(peer, "fd:") || !absl::SimpleAtoi(peer.substr(3), &fd)) {
      return std::nullopt;
    }
    struct ucred cred = {};
    socklen_t len = sizeof(cred);
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return std::nullopt;
    if (cred.uid != PeerUid(deps_, peer)) return std::nullopt;
    return PeerProcess{cred.pid, cred.uid, cred.gid};
  }

  WatchedRoots* roots_;
  ServiceDeps deps_;
  LocalIngest ingest_;
};

}  // namespace

std::unique_ptr<grpc::Service> NewSnapshotsService(WatchedRoots* roots,
                                                   const ServiceDeps& deps) {
  return std::make_unique<SnapshotsService>(roots, deps);
}

}  // namespace amld::daemon
