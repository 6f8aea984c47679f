#include "client/run_files.h"

#include <fcntl.h>
#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <unistd.h>

#include <chrono>
#include <system_error>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "amld/v1/runs.grpc.pb.h"
#include "client/grpc_status.h"
#include "base/file_util.h"

namespace amld::client {

absl::StatusOr<std::vector<amld::v1::RunFile>> ListRunFiles(const Connection& conn,
                                                            const std::string& run_id,
                                                            const std::string& prefix) {
  auto stub = amld::v1::Runs::NewStub(conn.channel);
  grpc::ClientContext ctx;
  amld::v1::ListFilesRequest req;
  req.set_run_id(run_id);
  req.set_prefix(prefix);
  amld::v1::ListFilesResponse resp;
  grpc::Status st = stub->ListFiles(&ctx, req, &resp);
  if (!st.ok()) return FromGrpcStatus(st, "list the files of run " + run_id, conn.socket_path);
  return std::vector<amld::v1::RunFile>(resp.files().begin(), resp.files().end());
}

absl::StatusOr<std::filesystem::path> SafeJoin(const std::filesystem::path& dir,
                                               const std::string& rel_path) {
  if (rel_path.empty() || rel_path.front() == '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("amld listed a file path that is not relative: \"", rel_path, "\""));
  }
  std::filesystem::path out = dir;
  for (absl::string_view part : absl::StrSplit(rel_path, '/', absl::SkipEmpty())) {
    if (part == "." || part == "..") {
      return absl::InvalidArgumentError(
          absl::StrCat("amld listed a file path that leaves its folder: \"", rel_path, "\""));
    }
    out /= std::string(part);
  }
  return out;
}

namespace {

bool IsTransient(grpc::StatusCode code) {
  return code == grpc::StatusCode::UNAVAILABLE || code == grpc::StatusCode::ABORTED ||
         code == grpc::StatusCode::INTERNAL || code == grpc::StatusCode::UNKNOWN;
}

}  // namespace

absl::StatusOr<int64_t> DownloadRunFile(const Connection& conn, const std::string& run_id,
                                        const std::string& path, const std::filesystem::path& dest,
                                        Interrupt* interrupt) {
  const std::string doing = absl::StrCat("download ", path, " of run ", run_id);
  std::error_code ec;
  if (dest.has_parent_path()) std::filesystem::create_directories(dest.parent_path(), ec);
  if (ec) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot create ", dest.parent_path().string(), ": ", ec.message()));
  }
  const std::filesystem::path part = dest.string() + ".part";
  amld::base::ScopedFd fd(::open(part.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd.valid()) return amld::base::ErrnoStatus(errno, "create", part);

  auto stub = amld::v1::Runs::NewStub(conn.channel);
  int64_t written = 0;
  int64_t total = -1;
  for (int attempt = 0;; ++attempt) {
    grpc::ClientContext ctx;
    Interrupt::CallGuard guard(interrupt, &ctx);
    amld::v1::DownloadFileRequest req;
    req.set_run_id(run_id);
    req.set_path(path);
    req.set_offset(written);
    auto reader = stub->DownloadFile(&ctx, req);
    amld::v1::FileChunk chunk;
    absl::Status local;
    bool first_chunk = true;
    while (reader->Read(&chunk)) {
      if (first_chunk) total = chunk.total_size();
      first_chunk = false;
      if (chunk.offset() != written) {
        local = absl::DataLossError(absl::StrCat("amld sent bytes at offset ", chunk.offset(),
                                                 " while ", written, " were expected"));
        ctx.TryCancel();
        break;
      }
      local = amld::base::WriteAll(fd.get(), chunk.data(), part);
      if (!local.ok()) {
        ctx.TryCancel();
        break;
      }
      written += static_cast<int64_t>(chunk.data().size());
    }
    grpc::Status st = reader->Finish();
    if (!local.ok()) {
      ::unlink(part.c_str());
      return local;
    }
    if (st.ok()) break;
    if (!IsTransient(st.error_code()) || attempt >= 4 ||
        (interrupt != nullptr && interrupt->triggered())) {
      ::unlink(part.c_str());
      return FromGrpcStatus(st, doing, conn.socket_path, /*mid_stream=*/attempt > 0);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100 << attempt));
  }
  if (total >= 0 && written != total) {
    ::unlink(part.c_str());
    return absl::DataLossError(
        absl::StrCat("cannot ", doing, ": got ", written, " of ", total, " bytes"));
  }
  if (::fsync(fd.get()) != 0) return amld::base::ErrnoStatus(errno, "fsync", part);
  fd = amld::base::ScopedFd();
  std::filesystem::rename(part, dest, ec);
  if (ec) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot move ", part.string(), " to ", dest.string(), ": ", ec.message()));
  }
  return written;
}

}  // namespace amld::client
