#include "client/watched_snapshot.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include "amld/v1/snapshots.grpc.pb.h"
#include "absl/strings/str_cat.h"
#include "base/file_util.h"
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
    case grpc::StatusCode::NOT_FOUND:          // not a watched root
    case grpc::StatusCode::UNIMPLEMENTED:      // a daemon without watched roots
    case grpc::StatusCode::PERMISSION_DENIED:  // a shared daemon's watches are admins' only
      return answer;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
    case grpc::StatusCode::UNAVAILABLE:
      return FromGrpcStatus(st, "take the watched snapshot of " + dir.string(), conn.socket_path);
    default:
      answer.fallback_reason = st.error_message();
      return answer;
  }
}

absl::StatusOr<LocalIngestAnswer> AskLocalIngest(const Connection& conn,
                                                 const std::filesystem::path& dir,
                                                 int64_t max_total_bytes, int64_t max_files) {
  LocalIngestAnswer answer;
  const char* off = std::getenv("AMLD_NO_LOCAL_INGEST");
  if (off != nullptr && *off != '\0' && std::strcmp(off, "0") != 0) return answer;
  // Held open until the call returns: the daemon opens it through /proc.
  base::ScopedFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  struct stat st;
  if (!fd.valid() || ::fstat(fd.get(), &st) != 0) {
    // The walk here reports what is wrong with the folder.
    answer.fallback_reason = absl::StrCat("cannot open it: ", std::strerror(errno));
    return answer;
  }
  auto stub = amld::v1::Snapshots::NewStub(conn.channel);
  grpc::ClientContext ctx;
  amld::v1::IngestLocalFolderRequest req;
  req.set_dir_fd(fd.get());
  req.set_max_total_bytes(max_total_bytes);
  req.set_max_files(max_files);
  req.set_dir_device(st.st_dev);
  req.set_dir_inode(st.st_ino);
  const char* no_watch = std::getenv("AMLD_NO_AUTO_WATCH");
  req.set_no_auto_watch(no_watch != nullptr && *no_watch != '\0' && std::strcmp(no_watch, "0") != 0);
  amld::v1::IngestLocalFolderResponse resp;
  const grpc::Status status = stub->IngestLocalFolder(&ctx, req, &resp);
  switch (status.error_code()) {
    case grpc::StatusCode::OK:
      answer.snapshot = std::move(resp);
      return answer;
    case grpc::StatusCode::UNIMPLEMENTED:  // an older daemon
      return answer;
    case grpc::StatusCode::FAILED_PRECONDITION:  // the daemon cannot take it this way
      answer.fallback_reason = status.error_message();
      return answer;
    default:
      return FromGrpcStatus(status, "snapshot " + dir.string(), conn.socket_path);
  }
}

}  // namespace amld::client
