#include "client/log_mirror.h"

#include <fcntl.h>
#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <sys/stat.h>
#include <unistd.h>

#include <system_error>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "amld/v1/runs.grpc.pb.h"
#include "base/file_names.h"
#include "base/file_util.h"
#include "base/status_macros.h"
#include "client/grpc_status.h"
#include "client/run_files.h"
#include "storage/digest.h"
#include "storage/run_status.h"

namespace amld::client {
namespace {

constexpr char kLogs[] = "logs/";

// Appends the stored file's bytes from `offset` on to the local file open
// as `fd` (which holds exactly `offset` bytes). Returns the bytes appended.
absl::StatusOr<int64_t> AppendFrom(const Connection& conn, const std::string& run_id,
                                   const std::string& path, int64_t offset, int fd,
                                   const std::filesystem::path& local, Interrupt* interrupt) {
  auto stub = amld::v1::Runs::NewStub(conn.channel);
  grpc::ClientContext ctx;
  Interrupt::CallGuard guard(interrupt, &ctx);
  auto reader = stub->DownloadFile(&ctx, RunFileRequest(run_id, path, offset));
  amld::v1::FileChunk chunk;
  int64_t written = 0;
  absl::Status local_error;
  while (reader->Read(&chunk)) {
    if (chunk.offset() != offset + written) {
      local_error = absl::DataLossError(absl::StrCat("amld sent bytes at offset ", chunk.offset(),
                                                     " while ", offset + written,
                                                     " were expected"));
      ctx.TryCancel();
      break;
    }
    local_error = amld::base::WriteAll(fd, chunk.data(), local);
    if (!local_error.ok()) {
      ctx.TryCancel();
      break;
    }
    written += static_cast<int64_t>(chunk.data().size());
  }
  grpc::Status st = reader->Finish();
  AMLD_RETURN_IF_ERROR(local_error);
  if (!st.ok()) {
    return FromGrpcStatus(st, absl::StrCat("download ", amld::base::EscapeName(path), " of run ",
                                           run_id),
                          conn.socket_path);
  }
  return written;
}

absl::StatusOr<amld::v1::Run> GetRunById(const Connection& conn, const std::string& run_id) {
  auto stub = amld::v1::Runs::NewStub(conn.channel);
  grpc::ClientContext ctx;
  amld::v1::GetRunRequest req;
  req.set_run_id(run_id);
  amld::v1::Run run;
  grpc::Status st = stub->GetRun(&ctx, req, &run);
  if (!st.ok()) return FromGrpcStatus(st, absl::StrCat("get run ", run_id), conn.socket_path);
  return run;
}

}  // namespace

LogMirror::LogMirror(const Connection* conn, std::vector<std::string> run_ids,
                     std::filesystem::path root)
    : conn_(conn), run_ids_(std::move(run_ids)), root_(std::move(root)) {}

std::filesystem::path LogMirror::RunFolder(const std::string& run_id) const {
  return root_ / run_id;
}

absl::StatusOr<int64_t> LogMirror::Fetch(const std::string& run_id,
                                         const amld::v1::RunFile& file,
                                         const std::filesystem::path& local,
                                         Interrupt* interrupt) {
  const std::string& path = RunFilePath(file);
  const int64_t want = file.digest().size_bytes();
  struct stat st;
  if (::lstat(local.c_str(), &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 &&
      st.st_size < want) {
    // It grew: append in place, then check the whole file.
    amld::base::ScopedFd fd(::open(local.c_str(), O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC));
    if (fd.valid()) {
      AMLD_ASSIGN_OR_RETURN(int64_t appended,
                            AppendFrom(*conn_, run_id, path, st.st_size, fd.get(), local,
                                       interrupt));
      fd = amld::base::ScopedFd();
      AMLD_ASSIGN_OR_RETURN(amld::storage::Digest got, amld::storage::DigestOfFile(local));
      if (got.hash == file.digest().hash() && got.size == want) return appended;
      // Not an append after all (the file was rewritten): fetch it whole.
    }
  }
  return DownloadRunFile(*conn_, run_id, path, DownloadDest{local}, &file.digest(), interrupt);
}

absl::StatusOr<LogMirror::Pass> LogMirror::Sync(Interrupt* interrupt) {
  Pass pass;
  pass.all_final = true;
  for (const std::string& run_id : run_ids_) {
    if (done_[run_id]) continue;
    // The status first: files listed after the run ended are all it has.
    AMLD_ASSIGN_OR_RETURN(amld::v1::Run run, GetRunById(*conn_, run_id));
    const bool final = amld::storage::IsTerminal(run.status());
    if (!final) pass.all_final = false;
    AMLD_ASSIGN_OR_RETURN(std::vector<amld::v1::RunFile> files,
                          ListRunFiles(*conn_, run_id, kLogs));
    const std::filesystem::path folder = RunFolder(run_id);
    std::error_code ec;
    std::filesystem::create_directories(folder, ec);
    if (ec) {
      return absl::PermissionDeniedError(
          absl::StrCat("cannot create ", folder.string(), ": ", ec.message()));
    }
    std::map<std::string, std::string>& fetched = fetched_[run_id];
    for (const amld::v1::RunFile& file : files) {
      const std::string& path = RunFilePath(file);
      if (!absl::StartsWith(path, kLogs)) continue;
      auto it = fetched.find(path);
      if (it != fetched.end() && it->second == file.digest().hash()) continue;
      AMLD_ASSIGN_OR_RETURN(std::filesystem::path local,
                            SafeJoin(folder, path.substr(sizeof(kLogs) - 1)));
      AMLD_ASSIGN_OR_RETURN(int64_t bytes, Fetch(run_id, file, local, interrupt));
      fetched[path] = file.digest().hash();
      ++pass.files_fetched;
      pass.bytes_fetched += bytes;
    }
    done_[run_id] = final;
  }
  return pass;
}

}  // namespace amld::client
