#include "client/run_files.h"

#include <functional>
#include <memory>

#include <fcntl.h>
#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <unistd.h>

#include <sys/stat.h>

#include <chrono>
#include <optional>
#include <random>
#include <system_error>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "amld/v1/models.grpc.pb.h"
#include "amld/v1/runs.grpc.pb.h"
#include "client/grpc_status.h"
#include "base/file_names.h"
#include "base/file_util.h"
#include "base/status_macros.h"
#include "storage/digest.h"

namespace amld::client {

amld::v1::DownloadFileRequest RunFileRequest(const std::string& run_id, const std::string& path,
                                             int64_t offset) {
  amld::v1::DownloadFileRequest req;
  req.set_run_id(run_id);
  // A name that is not UTF-8 cannot go in a proto3 string.
  if (amld::base::IsValidUtf8(path)) {
    req.set_path(path);
  } else {
    req.set_path_bytes(path);
  }
  req.set_offset(offset);
  return req;
}

absl::StatusOr<std::vector<amld::v1::RunFile>> ListRunFiles(const Connection& conn,
                                                            const std::string& run_id,
                                                            const std::string& prefix) {
  auto stub = amld::v1::Runs::NewStub(conn.channel);
  grpc::ClientContext ctx;
  amld::v1::ListFilesRequest req;
  req.set_run_id(run_id);
  if (amld::base::IsValidUtf8(prefix)) {
    req.set_prefix(prefix);
  } else {
    req.set_prefix_bytes(prefix);
  }
  amld::v1::ListFilesResponse resp;
  grpc::Status st = stub->ListFiles(&ctx, req, &resp);
  if (!st.ok()) return FromGrpcStatus(st, "list the files of run " + run_id, conn.socket_path);
  return std::vector<amld::v1::RunFile>(resp.files().begin(), resp.files().end());
}

const std::string& RunFilePath(const amld::v1::RunFile& f) {
  return f.path_bytes().empty() ? f.path() : f.path_bytes();
}

absl::StatusOr<std::string> TypedRunFilePath(const Connection& conn, const std::string& run_id,
                                             const std::string& typed) {
  if (typed.find('\\') == std::string::npos) return typed;
  std::optional<std::string> raw = amld::base::UnescapeName(typed);
  if (!raw.has_value() || *raw == typed) return typed;
  // The common prefix of both readings bounds the listing.
  size_t common = 0;
  while (common < raw->size() && (*raw)[common] == typed[common]) ++common;
  AMLD_ASSIGN_OR_RETURN(std::vector<amld::v1::RunFile> files,
                        ListRunFiles(conn, run_id, typed.substr(0, common)));
  bool has_raw = false;
  for (const auto& f : files) {
    if (RunFilePath(f) == typed) return typed;
    has_raw = has_raw || RunFilePath(f) == *raw;
  }
  return has_raw ? *raw : typed;
}

absl::StatusOr<std::filesystem::path> SafeJoin(const std::filesystem::path& dir,
                                               const std::string& rel_path) {
  if (rel_path.empty() || rel_path.front() == '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("amld listed a file path that is not relative: \"",
                     amld::base::EscapeName(rel_path), "\""));
  }
  std::filesystem::path out = dir;
  for (absl::string_view part : absl::StrSplit(rel_path, '/', absl::SkipEmpty())) {
    if (part == "." || part == "..") {
      return absl::InvalidArgumentError(
          absl::StrCat("amld listed a file path that leaves its folder: \"",
                       amld::base::EscapeName(rel_path), "\""));
    }
    out /= std::string(part);
  }
  return out;
}

namespace {

// Creates a new file from `templ`, its XXXXXX replaced by random letters
// (mkstemps would create it 0600; a download gets the mode of a plain create).
absl::StatusOr<amld::base::ScopedFd> CreateTemp(std::string* templ) {
  static constexpr char kChars[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  const size_t x = templ->rfind("XXXXXX");
  std::random_device random;
  for (int tries = 0;; ++tries) {
    for (size_t i = 0; i < 6; ++i) (*templ)[x + i] = kChars[random() % (sizeof(kChars) - 1)];
    int fd = ::open(templ->c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0) return amld::base::ScopedFd(fd);
    if (errno != EEXIST || tries >= 100) return amld::base::ErrnoStatus(errno, "create", *templ);
  }
}

bool IsTransient(grpc::StatusCode code) {
  return code == grpc::StatusCode::UNAVAILABLE || code == grpc::StatusCode::ABORTED ||
         code == grpc::StatusCode::INTERNAL || code == grpc::StatusCode::UNKNOWN;
}

}  // namespace

absl::Status CheckReplaceable(const std::filesystem::path& path, bool force) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return amld::base::ErrnoStatus(errno, "inspect", path);
  }
  if (S_ISREG(st.st_mode)) return absl::OkStatus();
  if (S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(
        path.string(), " is a folder; give a file path, or a folder ending in / to download into"));
  }
  if (force) return absl::OkStatus();
  const char* what = S_ISLNK(st.st_mode)   ? "a symbolic link"
                     : S_ISCHR(st.st_mode) ? "a character device"
                     : S_ISBLK(st.st_mode) ? "a block device"
                     : S_ISFIFO(st.st_mode) ? "a FIFO"
                                            : "a socket";
  return absl::FailedPreconditionError(absl::StrCat(
      path.string(), " is ", what,
      "; aml replaces only regular files: use -o - to write to stdout, or --force to replace ",
      S_ISLNK(st.st_mode) ? "the link itself" : "it", " with the downloaded file"));
}

std::filesystem::path DownloadTempTemplate(const std::filesystem::path& dest) {
  constexpr size_t kNameMax = 255;
  constexpr std::string_view kSuffix = ".XXXXXX.part";
  std::string name = dest.filename().string();
  const size_t room = kNameMax - 1 - kSuffix.size();  // 1: the leading '.'
  if (name.size() > room) {
    name.resize(room);
    // Cut at a character boundary, not inside a UTF-8 sequence.
    while (!name.empty() && (static_cast<unsigned char>(name.back()) & 0xC0) == 0x80) {
      name.pop_back();
    }
    if (!name.empty() && (static_cast<unsigned char>(name.back()) & 0x80) != 0) name.pop_back();
  }
  return dest.parent_path() / absl::StrCat(".", name, absl::string_view(kSuffix.data(), kSuffix.size()));
}

namespace {

// The digest ListFiles reports for exactly `path`.
absl::StatusOr<amld::v1::Digest> StoredDigest(const Connection& conn, const std::string& run_id,
                                              const std::string& path) {
  AMLD_ASSIGN_OR_RETURN(std::vector<amld::v1::RunFile> files, ListRunFiles(conn, run_id, path));
  for (const auto& f : files) {
    if (RunFilePath(f) == path) return f.digest();
  }
  return absl::NotFoundError(absl::StrCat("run ", run_id, " no longer lists ",
                                          amld::base::EscapeName(path),
                                          "; it changed while downloading: download it again"));
}

absl::Status Mismatch(const std::string& doing, const amld::v1::Digest& expected,
                      const amld::storage::Digest& got, bool already_written) {
  return absl::DataLossError(absl::StrCat(
      "cannot ", doing, ": the bytes received (", got.size, " bytes, sha256 ", got.hash.substr(0, 12),
      "…) do not match the stored file (", expected.size_bytes(), " bytes, sha256 ",
      expected.hash().substr(0, 12), "…); it changed while downloading or was corrupted",
      already_written ? " (the bytes were already written to the output)" : "",
      ": download it again"));
}

}  // namespace

// What DownloadRunFile and DownloadModelFile share: `open` starts the
// stream at an offset, `want` gives the digest to check against.
using OpenStream = std::function<std::unique_ptr<grpc::ClientReader<amld::v1::FileChunk>>(
    grpc::ClientContext*, int64_t offset)>;

static absl::StatusOr<int64_t> DownloadStream(const Connection& conn, const std::string& doing,
                                       const OpenStream& open,
                                       const std::function<absl::StatusOr<amld::v1::Digest>()>& want_digest,
                                       const DownloadDest& dest, Interrupt* interrupt) {
  const bool to_fd = dest.fd >= 0;
  amld::base::ScopedFd owned;
  std::filesystem::path part;
  if (!to_fd) {
    AMLD_RETURN_IF_ERROR(CheckReplaceable(dest.path, dest.force));
    std::error_code ec;
    if (dest.path.has_parent_path()) std::filesystem::create_directories(dest.path.parent_path(), ec);
    if (ec) {
      return absl::PermissionDeniedError(
          absl::StrCat("cannot create ", dest.path.parent_path().string(), ": ", ec.message()));
    }
    std::string templ = DownloadTempTemplate(dest.path).string();
    AMLD_ASSIGN_OR_RETURN(owned, CreateTemp(&templ));
    part = templ;
  }
  const int fd = to_fd ? dest.fd : owned.get();
  const std::filesystem::path& name_for_errors = to_fd ? dest.path : part;
  // Removes the temp file on every early return.
  auto cleanup = absl::MakeCleanup([&part] {
    if (!part.empty()) ::unlink(part.c_str());
  });
  amld::storage::Sha256 streamed;  // only for an fd: a temp file is re-read from disk

  int64_t written = 0;
  int64_t total = -1;
  for (int attempt = 0;; ++attempt) {
    grpc::ClientContext ctx;
    Interrupt::CallGuard guard(interrupt, &ctx);
    auto reader = open(&ctx, written);
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
      local = amld::base::WriteAll(fd, chunk.data(), name_for_errors);
      if (!local.ok()) {
        ctx.TryCancel();
        break;
      }
      if (to_fd) streamed.Update(chunk.data());
      written += static_cast<int64_t>(chunk.data().size());
    }
    grpc::Status st = reader->Finish();
    if (!local.ok()) return local;
    if (st.ok()) break;
    if (!IsTransient(st.error_code()) || attempt >= 4 ||
        (interrupt != nullptr && interrupt->triggered())) {
      return FromGrpcStatus(st, doing, conn.socket_path, /*mid_stream=*/attempt > 0);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100 << attempt));
  }
  if (total >= 0 && written != total) {
    return absl::DataLossError(
        absl::StrCat("cannot ", doing, ": got ", written, " of ", total, " bytes"));
  }
  // End to end: the bytes as written, against the object they came from.
  AMLD_ASSIGN_OR_RETURN(amld::v1::Digest want, want_digest());
  amld::storage::Digest got;
  if (to_fd) {
    got.size = written;
    got.hash = streamed.FinishHex();
  } else {
    if (::fsync(fd) != 0) return amld::base::ErrnoStatus(errno, "fsync", part);
    AMLD_ASSIGN_OR_RETURN(got, amld::storage::DigestOfFile(part));
  }
  if (got.hash != want.hash() || got.size != want.size_bytes()) {
    return Mismatch(doing, want, got, to_fd);
  }
  if (to_fd) return written;
  owned = amld::base::ScopedFd();
  // Checked again just before the rename: a rename replaces a link itself
  // and fails on a folder, so what appeared in between is never written
  // through; the check only keeps the promise about what is replaced.
  AMLD_RETURN_IF_ERROR(CheckReplaceable(dest.path, dest.force));
  if (::rename(part.c_str(), dest.path.c_str()) != 0) {
    return amld::base::ErrnoStatus(errno, absl::StrCat("move ", part.string(), " to"), dest.path);
  }
  part.clear();
  return written;
}

absl::StatusOr<int64_t> DownloadRunFile(const Connection& conn, const std::string& run_id,
                                        const std::string& path, const DownloadDest& dest,
                                        const amld::v1::Digest* expected, Interrupt* interrupt) {
  auto stub = amld::v1::Runs::NewStub(conn.channel);
  return DownloadStream(
      conn, absl::StrCat("download ", amld::base::EscapeName(path), " of run ", run_id),
      [&](grpc::ClientContext* ctx, int64_t offset) {
        return stub->DownloadFile(ctx, RunFileRequest(run_id, path, offset));
      },
      [&]() -> absl::StatusOr<amld::v1::Digest> {
        if (expected != nullptr) return *expected;
        return StoredDigest(conn, run_id, path);
      },
      dest, interrupt);
}

absl::StatusOr<int64_t> DownloadModelFile(const Connection& conn, const amld::v1::Model& model,
                                          const amld::v1::ModelFile& file,
                                          const DownloadDest& dest) {
  auto stub = amld::v1::Models::NewStub(conn.channel);
  return DownloadStream(
      conn, absl::StrCat("download ", file.path(), " of model ", model.name(), ":", model.version()),
      [&](grpc::ClientContext* ctx, int64_t offset) {
        amld::v1::DownloadModelFileRequest req;
        req.set_name(model.name());
        req.set_version(model.version());
        req.set_path(file.path());
        req.set_offset(offset);
        return stub->DownloadModelFile(ctx, req);
      },
      [&]() -> absl::StatusOr<amld::v1::Digest> { return file.digest(); }, dest, nullptr);
}

}  // namespace amld::client
