// ContentStore's uploads (see "Resumable uploads and concurrency" in
// storage/cas.h): the partial file uploads/<hash>-<size>[-<owner>], resumed by
// whoever holds its flock, and the private file in tmp/ of an upload that
// found it busy.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "base/file_util.h"
#include "base/status_macros.h"
#include "storage/cas.h"
#include "storage/cas_internal.h"

namespace amld::storage {

namespace fs = std::filesystem;

namespace {

using internal::HashPrefix;
using internal::InstallObject;
using internal::PendingFor;
using internal::PendingSyncs;
using internal::StillNamedBy;
using internal::UniqueTempPath;
using internal::UploadsDir;

// An owner names a file: short, and nothing that could climb out.
absl::Status ValidateOwner(std::string_view owner) {
  const bool ok = owner.size() <= 32 && std::all_of(owner.begin(), owner.end(), [](char c) {
                    return absl::ascii_isalnum(c) || c == '_';
                  });
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "an upload's owner must be at most 32 letters, digits or '_', not \"",
      absl::CHexEscape(std::string(owner)), "\""));
}

fs::path PartialUploadPath(const fs::path& root, const Digest& d, std::string_view owner) {
  return UploadsDir(root) /
         (owner.empty() ? absl::StrCat(d.hash, "-", d.size)
                        : absl::StrCat(d.hash, "-", d.size, "-", std::string(owner)));
}

absl::Status PwriteAll(int fd, std::string_view data, int64_t offset, const fs::path& path) {
  while (!data.empty()) {
    ssize_t n = ::pwrite(fd, data.data(), data.size(), offset);
    if (n < 0) {
      if (errno == EINTR) continue;
      return base::ErrnoStatus(errno, "write", path);
    }
    data.remove_prefix(static_cast<size_t>(n));
    offset += n;
  }
  return absl::OkStatus();
}

// One upload, writing either the shared partial file uploads/<hash>-<size>
// (resumable; we hold its flock) or a private file in tmp/ (locked too, so
// GC leaves it alone; removed when the upload is dropped).
class FileBlobUpload final : public BlobUpload {
 public:
  enum class Kind { kResumable, kPrivate };

  static std::unique_ptr<BlobUpload> AlreadyStored(const fs::path& root, const Digest& d) {
    auto upload = std::unique_ptr<FileBlobUpload>(
        new FileBlobUpload(root, d, base::ScopedFd(), fs::path(), Kind::kPrivate, d.size, nullptr));
    upload->state_ = State::kStored;
    return upload;
  }

  // `pending`: where to list the object at Commit for a later sync; null to
  // fsync it there (Durability::kImmediate).
  FileBlobUpload(fs::path root, Digest d, base::ScopedFd fd, fs::path path, Kind kind,
                 int64_t committed, std::unique_ptr<Sha256> hasher,
                 std::shared_ptr<PendingSyncs> pending = nullptr)
      : pending_(std::move(pending)),
        root_(std::move(root)),
        digest_(std::move(d)),
        fd_(std::move(fd)),
        path_(std::move(path)),
        kind_(kind),
        committed_(committed),
        hasher_(std::move(hasher)) {}

  ~FileBlobUpload() override {
    if (state_ == State::kOpen && kind_ == Kind::kPrivate) ::unlink(path_.c_str());
  }

  int64_t committed_size() const override { return committed_; }

  absl::Status Append(int64_t offset, std::string_view data) override {
    if (state_ == State::kDiscarded) return DiscardedError();
    if (offset == 0 && committed_ > 0 && state_ == State::kOpen) {
      // Offset 0 starts anew (the Cas proto's rule): what an abandoned
      // upload left behind must not block a client that starts over.
      if (::ftruncate(fd_.get(), 0) != 0) return base::ErrnoStatus(errno, "truncate", path_);
      hasher_ = std::make_unique<Sha256>();
      committed_ = 0;
    }
    if (offset != committed_) {
      return absl::InvalidArgumentError(absl::StrCat("upload of ", digest_.ToString(),
                                                     " must continue at byte ", committed_,
                                                     ", not at ", offset));
    }
    if (static_cast<int64_t>(data.size()) > digest_.size - committed_) {
      return absl::InvalidArgumentError(
          absl::StrCat("upload of ", digest_.ToString(), " would exceed the blob's ", digest_.size,
                       " bytes: ", committed_, " held plus ", data.size(), " sent"));
    }
    if (data.empty()) return absl::OkStatus();
    absl::Status written = PwriteAll(fd_.get(), data, committed_, path_);
    if (!written.ok()) {
      // Cut a partly written chunk off so the file matches the running hash.
      (void)::ftruncate(fd_.get(), committed_);
      return written;
    }
    hasher_->Update(data);
    committed_ += static_cast<int64_t>(data.size());
    return absl::OkStatus();
  }

  absl::Status Commit() override {
    if (state_ == State::kStored) return absl::OkStatus();
    if (state_ == State::kDiscarded) return DiscardedError();
    if (committed_ < digest_.size) {
      return Discard(absl::InvalidArgumentError(absl::StrCat(
          "upload of ", digest_.ToString(), " is incomplete: ", committed_, " of ", digest_.size,
          " bytes received; the partial data was discarded, upload it again")));
    }
    std::string actual = hasher_->FinishHex();
    if (actual != digest_.hash) {
      return Discard(absl::InvalidArgumentError(absl::StrCat(
          "uploaded content does not match its digest: expected ", digest_.ToString(), ", got ",
          Digest{actual, committed_}.ToString(), "; the partial data was discarded")));
    }
    // After a failed fsync the data's fate is unknown, so any failure here
    // discards rather than letting a retry commit unchecked bytes.
    absl::Status installed = InstallObject(root_, fd_.get(), path_, digest_, pending_.get());
    if (!installed.ok()) return Discard(installed);
    state_ = State::kStored;
    fd_ = base::ScopedFd();  // releases the lock
    return absl::OkStatus();
  }

 private:
  enum class State { kOpen, kStored, kDiscarded };

  absl::Status Discard(absl::Status why) {
    ::unlink(path_.c_str());  // still ours: we hold its lock
    fd_ = base::ScopedFd();
    state_ = State::kDiscarded;
    committed_ = 0;
    return why;
  }

  absl::Status DiscardedError() const {
    return absl::FailedPreconditionError(
        absl::StrCat("the upload of ", digest_.ToString(),
                     " was discarded after a failed commit; begin a new upload"));
  }

  std::shared_ptr<PendingSyncs> pending_;
  fs::path root_;
  Digest digest_;
  base::ScopedFd fd_;
  fs::path path_;
  Kind kind_;
  int64_t committed_;
  std::unique_ptr<Sha256> hasher_;
  State state_ = State::kOpen;
};

enum class LockOutcome { kLocked, kBusy, kGone };

struct LockedFile {
  LockOutcome outcome;
  base::ScopedFd fd;
};

// Opens (creating it if needed) and exclusively locks the partial file.
absl::StatusOr<LockedFile> LockPartialFile(const fs::path& path) {
  base::ScopedFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd.valid()) return base::ErrnoStatus(errno, "open", path);
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) return LockedFile{LockOutcome::kBusy, base::ScopedFd()};
    return base::ErrnoStatus(errno, "lock", path);
  }
  if (!StillNamedBy(fd.get(), path)) return LockedFile{LockOutcome::kGone, base::ScopedFd()};
  return LockedFile{LockOutcome::kLocked, std::move(fd)};
}

// Continues the partial file held in `fd` (locked), re-hashing what it holds.
absl::StatusOr<std::unique_ptr<BlobUpload>> ResumeUpload(const fs::path& root, const Digest& d,
                                                         base::ScopedFd fd, const fs::path& path,
                                                         std::shared_ptr<PendingSyncs> pending) {
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return base::ErrnoStatus(errno, "stat", path);
  int64_t held = st.st_size;
  auto hasher = std::make_unique<Sha256>();
  if (held > d.size) {
    held = 0;  // cannot be a prefix of this blob
  } else {
    AMLD_ASSIGN_OR_RETURN(held, HashPrefix(fd.get(), held, path, *hasher));
  }
  if (held != st.st_size && ::ftruncate(fd.get(), held) != 0) {
    return base::ErrnoStatus(errno, "truncate", path);
  }
  return std::unique_ptr<BlobUpload>(new FileBlobUpload(root, d, std::move(fd), path,
                                                        FileBlobUpload::Kind::kResumable, held,
                                                        std::move(hasher), std::move(pending)));
}

absl::StatusOr<std::unique_ptr<BlobUpload>> BeginPrivateUpload(
    const fs::path& root, const Digest& d, std::shared_ptr<PendingSyncs> pending) {
  fs::path path = UniqueTempPath(root, "upload");
  base::ScopedFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!fd.valid()) return base::ErrnoStatus(errno, "create", path);
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    absl::Status st = base::ErrnoStatus(errno, "lock", path);
    ::unlink(path.c_str());
    return st;
  }
  return std::unique_ptr<BlobUpload>(
      new FileBlobUpload(root, d, std::move(fd), path, FileBlobUpload::Kind::kPrivate, 0,
                         std::make_unique<Sha256>(), std::move(pending)));
}

}  // namespace

absl::StatusOr<std::unique_ptr<BlobUpload>> ContentStore::BeginUpload(const Digest& d,
                                                                      Durability durability,
                                                                      std::string_view owner) {
  AMLD_RETURN_IF_ERROR(ValidateDigest(d));
  AMLD_RETURN_IF_ERROR(ValidateOwner(owner));
  std::shared_ptr<PendingSyncs> pending = PendingFor(durability, pending_);
  fs::path path = PartialUploadPath(root_, d, owner);
  // Retried only while concurrent commits keep moving the partial file away.
  for (int attempt = 0; attempt < 8; ++attempt) {
    if (Contains(d)) return FileBlobUpload::AlreadyStored(root_, d);
    AMLD_ASSIGN_OR_RETURN(LockedFile partial, LockPartialFile(path));
    switch (partial.outcome) {
      case LockOutcome::kLocked:
        return ResumeUpload(root_, d, std::move(partial.fd), path, pending);
      case LockOutcome::kBusy:
        return BeginPrivateUpload(root_, d, pending);
      case LockOutcome::kGone:
        break;
    }
  }
  return BeginPrivateUpload(root_, d, pending);
}

int64_t ContentStore::UploadedSize(const Digest& d, std::string_view owner) const {
  if (!ValidateDigest(d).ok() || !ValidateOwner(owner).ok()) return 0;
  if (Contains(d)) return d.size;
  struct stat st;
  if (::stat(PartialUploadPath(root_, d, owner).c_str(), &st) != 0 || st.st_size > d.size) {
    return 0;
  }
  return st.st_size;
}

}  // namespace amld::storage
