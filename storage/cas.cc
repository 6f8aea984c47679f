#include "storage/cas.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <ctime>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "base/file_util.h"
#include "base/status_macros.h"

namespace amld::storage {

namespace fs = std::filesystem;

namespace internal {

// The objects stored with Durability::kDeferred and not yet synced.
class PendingSyncs {
 public:
  void Add(fs::path object) {
    absl::MutexLock lock(&mu_);
    if (objects_.size() >= kMaxListed) {
      // Past this many, the list is only memory: SyncAll will syncfs anyway.
      objects_.clear();
      overflowed_ = true;
    }
    objects_.push_back(std::move(object));
  }

  int64_t Count() const {
    absl::MutexLock lock(&mu_);
    return static_cast<int64_t>(objects_.size());
  }

  absl::Status SyncAll(const fs::path& root) {
    // One sync at a time: a caller whose objects another caller took must
    // not return before that caller's sync has finished.
    absl::MutexLock one_at_a_time(&sync_mu_);
    std::vector<fs::path> objects;
    bool overflowed;
    {
      absl::MutexLock lock(&mu_);
      objects.swap(objects_);
      overflowed = std::exchange(overflowed_, false);
    }
    if (objects.empty()) return absl::OkStatus();
    absl::Status synced =
        overflowed || objects.size() >= kSyncfsAtCount ? SyncFilesystem(root) : SyncEach(objects);
    if (synced.ok()) return synced;
    // After a failed fsync the kernel may call the pages clean: nothing says
    // what is on disk, so drop the objects and have them uploaded again.
    for (const fs::path& object : objects) ::unlink(object.c_str());
    return absl::Status(synced.code(),
                        absl::StrCat(synced.message(), "; the ", objects.size(),
                                     " blobs stored since the last sync were removed: upload "
                                     "them again (aml run submit does so)"));
  }

 private:
  // From this many objects on, one syncfs() beats an fsync per object (and
  // per folder); below it, fsyncs do not flush other programs' writes.
  static constexpr size_t kSyncfsAtCount = 64;
  // Objects listed at most; a longer run of unsynced writes (a watched root
  // edited for days without a submit) forgets them and syncs the filesystem.
  static constexpr size_t kMaxListed = 100000;

  static absl::Status SyncFilesystem(const fs::path& root) {
    base::ScopedFd fd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd.valid()) return base::ErrnoStatus(errno, "open", root);
    if (::syncfs(fd.get()) != 0) return base::ErrnoStatus(errno, "syncfs", root);
    return absl::OkStatus();
  }

  static absl::Status SyncEach(const std::vector<fs::path>& objects) {
    absl::flat_hash_set<std::string> folders;
    for (const fs::path& object : objects) {
      base::ScopedFd fd(::open(object.c_str(), O_RDONLY | O_CLOEXEC));
      // Gone already (GC, or removed by hand): nothing to sync; whoever needs
      // it finds it missing.
      if (!fd.valid() && errno == ENOENT) continue;
      if (!fd.valid()) return base::ErrnoStatus(errno, "open", object);
      if (::fsync(fd.get()) != 0) return base::ErrnoStatus(errno, "fsync", object);
      folders.insert(object.parent_path().string());
    }
    for (const std::string& folder : folders) AMLD_RETURN_IF_ERROR(base::SyncDirectory(folder));
    return absl::OkStatus();
  }

  absl::Mutex sync_mu_;
  mutable absl::Mutex mu_;
  std::vector<fs::path> objects_ ABSL_GUARDED_BY(mu_);
  bool overflowed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace internal

namespace {

using internal::PendingSyncs;

// Socket, pipe and disk copies need 64-128 KiB buffers to run at full speed.
constexpr size_t kCopyBufferSize = 128 * 1024;
constexpr mode_t kObjectMode = 0444;
// A tmp/ or uploads/ file untouched this long belongs to a dead writer.
constexpr int64_t kStaleAfterSeconds = 3600;
// FindMissing refreshes an object's mtime at most this often.
constexpr int64_t kRefreshAfterSeconds = 600;

fs::path ObjectsDir(const fs::path& root) { return root / "objects"; }
fs::path TmpDir(const fs::path& root) { return root / "tmp"; }
fs::path UploadsDir(const fs::path& root) { return root / "uploads"; }

fs::path ObjectPathIn(const fs::path& root, const Digest& d) {
  if (!ValidateDigest(d).ok()) return ObjectsDir(root) / "invalid";
  return ObjectsDir(root) / d.hash.substr(0, 2) / d.hash.substr(2);
}

fs::path PartialUploadPath(const fs::path& root, const Digest& d) {
  return UploadsDir(root) / absl::StrCat(d.hash, "-", d.size);
}

bool IsEmptyBlob(const Digest& d) { return d == Digest::Empty(); }

// The object file exists with the digest's size (content is not checked).
bool ObjectFileExists(const fs::path& root, const Digest& d) {
  struct stat st;
  return ::stat(ObjectPathIn(root, d).c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
         st.st_size == d.size;
}

// Unique among processes (pid) and calls (counter); O_EXCL guards the rest.
fs::path UniqueTempPath(const fs::path& root, std::string_view kind) {
  static std::atomic<uint64_t> counter{0};
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return TmpDir(root) / absl::StrCat(std::string(kind), "-", ::getpid(), "-", counter.fetch_add(1),
                                     "-", rng() % 1000000007);
}

bool SameFile(const struct stat& a, const struct stat& b) {
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

// Whether `path` still names the file open as `fd`: a concurrent commit or
// discard may have renamed or unlinked it between our open() and flock().
bool StillNamedBy(int fd, const fs::path& path) {
  struct stat by_fd, by_path;
  return ::fstat(fd, &by_fd) == 0 && ::stat(path.c_str(), &by_path) == 0 &&
         SameFile(by_fd, by_path);
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

// Feeds bytes [0, size) of `fd` to `hasher`; returns how many it could read
// (fewer than `size` when the file is shorter).
absl::StatusOr<int64_t> HashPrefix(int fd, int64_t size, const fs::path& path, Sha256& hasher) {
  std::vector<char> buf(kCopyBufferSize);
  int64_t pos = 0;
  while (pos < size) {
    size_t want = static_cast<size_t>(std::min<int64_t>(size - pos, buf.size()));
    ssize_t n = ::pread(fd, buf.data(), want, pos);
    if (n < 0) {
      if (errno == EINTR) continue;
      return base::ErrnoStatus(errno, "read", path);
    }
    if (n == 0) break;
    hasher.Update(buf.data(), static_cast<size_t>(n));
    pos += n;
  }
  return pos;
}

absl::Status CorruptObjectError(const fs::path& path, const Digest& d, std::string_view detail) {
  return absl::DataLossError(absl::StrCat("object ", path.string(), " of blob ", d.ToString(),
                                          " is corrupt (", std::string(detail),
                                          "); remove it and upload the blob again"));
}

// The object file of `d` has `actual_size` bytes instead of d.size. Either
// the digest names a size the store does not hold (NOT_FOUND) or the file was
// damaged (DATA_LOSS); only its content tells which.
absl::Status SizeMismatchError(int fd, const fs::path& path, const Digest& d, int64_t actual_size) {
  Sha256 hasher;
  AMLD_RETURN_IF_ERROR(HashPrefix(fd, actual_size, path, hasher).status());
  if (hasher.FinishHex() == d.hash) {
    return absl::NotFoundError(
        absl::StrCat("blob ", d.ToString(), " is not in the content store: ", "it holds ", d.hash,
                     " with ", actual_size, " bytes; check the digest's size"));
  }
  return CorruptObjectError(path, d, absl::StrCat("it has ", actual_size, " bytes"));
}

absl::Status EnsureShardDir(const fs::path& shard) {
  if (::mkdir(shard.c_str(), 0755) == 0) return base::SyncDirectory(shard.parent_path());
  if (errno == EEXIST) return absl::OkStatus();
  return base::ErrnoStatus(errno, "create folder", shard);
}

// Makes the verified file at `from` (open as `fd`) the object of `d`: fsync,
// read-only, rename into its shard, fsync the shard so the rename is durable.
// With `pending` (Durability::kDeferred) the fsyncs are left to
// PendingSyncs::SyncAll; writeback starts now so that the sync finds little
// left to write.
absl::Status InstallObject(const fs::path& root, int fd, const fs::path& from, const Digest& d,
                           PendingSyncs* pending) {
  if (pending != nullptr) {
    (void)::sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);  // a hint: errors surface at sync
  } else if (::fsync(fd) != 0) {
    return base::ErrnoStatus(errno, "fsync", from);
  }
  if (::fchmod(fd, kObjectMode) != 0) return base::ErrnoStatus(errno, "chmod", from);
  fs::path to = ObjectPathIn(root, d);
  AMLD_RETURN_IF_ERROR(EnsureShardDir(to.parent_path()));
  if (::rename(from.c_str(), to.c_str()) != 0) return base::ErrnoStatus(errno, "rename into", to);
  if (pending != nullptr) {
    pending->Add(std::move(to));
    return absl::OkStatus();
  }
  return base::SyncDirectory(to.parent_path());
}

// Where a write of `durability` lists its object: nowhere (null) when it is
// fsynced on the spot.
std::shared_ptr<PendingSyncs> PendingFor(Durability durability,
                                         const std::shared_ptr<PendingSyncs>& pending) {
  return durability == Durability::kDeferred ? pending : nullptr;
}

// A new file in tmp/, removed on destruction unless Install() moved it.
class TempFile {
 public:
  static absl::StatusOr<TempFile> Create(const fs::path& root, std::string_view kind) {
    fs::path path = UniqueTempPath(root, kind);
    base::ScopedFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!fd.valid()) return base::ErrnoStatus(errno, "create", path);
    return TempFile(std::move(fd), std::move(path));
  }
  TempFile(TempFile&& o) noexcept : fd_(std::move(o.fd_)), path_(std::exchange(o.path_, {})) {}
  TempFile& operator=(TempFile&&) = delete;
  ~TempFile() {
    if (!path_.empty()) ::unlink(path_.c_str());
  }

  int fd() const { return fd_.get(); }
  const fs::path& path() const { return path_; }

  absl::Status Install(const fs::path& root, const Digest& d, PendingSyncs* pending = nullptr) {
    AMLD_RETURN_IF_ERROR(InstallObject(root, fd_.get(), path_, d, pending));
    path_.clear();
    return absl::OkStatus();
  }

 private:
  TempFile(base::ScopedFd fd, fs::path path) : fd_(std::move(fd)), path_(std::move(path)) {}
  base::ScopedFd fd_;
  fs::path path_;
};

// Stores `data`, already known to hash to `d`.
absl::Status StoreBytes(const fs::path& root, const Digest& d, std::string_view data,
                        PendingSyncs* pending = nullptr) {
  if (ObjectFileExists(root, d)) return absl::OkStatus();
  AMLD_ASSIGN_OR_RETURN(TempFile tmp, TempFile::Create(root, "put"));
  AMLD_RETURN_IF_ERROR(base::WriteAll(tmp.fd(), data, tmp.path()));
  return tmp.Install(root, d, pending);
}

// Reads an object with pread, hashing what it returns while the reads run
// from offset 0 without a seek, so that reaching the end checks the content.
class ObjectReader final : public BlobReader {
 public:
  // fd may be invalid for the empty blob, which needs no file.
  ObjectReader(base::ScopedFd fd, fs::path path, Digest digest)
      : fd_(std::move(fd)),
        path_(std::move(path)),
        digest_(std::move(digest)),
        hasher_(std::make_unique<Sha256>()) {}

  int64_t size() const override { return digest_.size; }

  absl::Status Seek(int64_t offset) override {
    if (offset < 0 || offset > digest_.size) {
      return absl::InvalidArgumentError(absl::StrCat("cannot seek to byte ", offset, " of blob ",
                                                     digest_.ToString(), ": it has ", digest_.size,
                                                     " bytes"));
    }
    if (offset == pos_) return absl::OkStatus();
    pos_ = offset;
    verifying_ = offset == 0;
    if (verifying_) hasher_ = std::make_unique<Sha256>();
    return absl::OkStatus();
  }

  absl::StatusOr<size_t> Read(char* buf, size_t n) override {
    if (!failure_.ok()) return failure_;
    size_t want =
        static_cast<size_t>(std::min<int64_t>(static_cast<int64_t>(n), digest_.size - pos_));
    if (want == 0) return size_t{0};
    ssize_t got;
    do {
      got = ::pread(fd_.get(), buf, want, pos_);
    } while (got < 0 && errno == EINTR);
    if (got < 0) return base::ErrnoStatus(errno, "read", path_);
    if (got == 0) {
      return failure_ = CorruptObjectError(path_, digest_, absl::StrCat("it ends at byte ", pos_));
    }
    if (verifying_) hasher_->Update(buf, static_cast<size_t>(got));
    pos_ += got;
    if (verifying_ && pos_ == digest_.size) {
      verifying_ = false;
      std::string actual = hasher_->FinishHex();
      if (actual != digest_.hash) {
        return failure_ =
                   CorruptObjectError(path_, digest_, absl::StrCat("content hashes to ", actual));
      }
    }
    return static_cast<size_t>(got);
  }

 private:
  base::ScopedFd fd_;
  fs::path path_;
  Digest digest_;
  int64_t pos_ = 0;
  bool verifying_ = true;
  std::unique_ptr<Sha256> hasher_;
  absl::Status failure_;  // sticky: a corrupt object stays corrupt
};

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
  FileBlobUpload(fs::path root, Digest d, base::ScopedFd fd, fs::path path, Kind kind, int64_t committed,
                 std::unique_ptr<Sha256> hasher, std::shared_ptr<PendingSyncs> pending = nullptr)
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

// Names in `dir` (not "." or ".."); empty when it does not exist.
absl::StatusOr<std::vector<std::string>> ListDir(const fs::path& dir) {
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    if (errno == ENOENT) return names;
    return base::ErrnoStatus(errno, "list", dir);
  }
  while (struct dirent* e = ::readdir(d)) {
    std::string_view name = e->d_name;
    if (name != "." && name != "..") names.emplace_back(name);
  }
  ::closedir(d);
  return names;
}

// Removes `path` if it is a regular file untouched since `cutoff` and no
// upload holds its lock. Returns the bytes removed, or -1 when kept.
int64_t RemoveIfStale(const fs::path& path, time_t cutoff) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_mtime > cutoff) return -1;
  base::ScopedFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  if (!fd.valid() || ::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) return -1;
  if (!StillNamedBy(fd.get(), path) || ::unlink(path.c_str()) != 0) return -1;
  return st.st_size;
}

}  // namespace

ContentStore::ContentStore(fs::path root)
    : root_(std::move(root)), pending_(std::make_shared<PendingSyncs>()) {}

absl::Status ContentStore::SyncPending() { return pending_->SyncAll(root_); }

int64_t ContentStore::PendingSyncCount() const { return pending_->Count(); }

absl::StatusOr<std::unique_ptr<ContentStore>> ContentStore::Open(const fs::path& root) {
  if (root.empty()) return absl::InvalidArgumentError("content store root must not be empty");
  for (const fs::path& dir : {ObjectsDir(root), TmpDir(root), UploadsDir(root)}) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return base::ErrnoStatus(ec.value(), "create folder", dir);
  }
  auto store = std::unique_ptr<ContentStore>(new ContentStore(root));
  // The empty blob also gets a file, so code that copies objects by path
  // (ObjectPath) needs no special case for it.
  AMLD_RETURN_IF_ERROR(StoreBytes(root, Digest::Empty(), ""));
  return store;
}

fs::path ContentStore::ObjectPath(const Digest& d) const { return ObjectPathIn(root_, d); }

bool ContentStore::Contains(const Digest& d) const {
  if (!ValidateDigest(d).ok()) return false;
  return IsEmptyBlob(d) || ObjectFileExists(root_, d);
}

std::vector<Digest> ContentStore::FindMissing(absl::Span<const Digest> digests) const {
  std::vector<Digest> missing;
  absl::flat_hash_set<Digest> seen;
  const time_t refresh_before = std::time(nullptr) - kRefreshAfterSeconds;
  for (const Digest& d : digests) {
    if (!seen.insert(d).second) continue;
    if (!ValidateDigest(d).ok()) {
      missing.push_back(d);
      continue;
    }
    if (IsEmptyBlob(d)) continue;
    const fs::path path = ObjectPathIn(root_, d);
    struct stat st;
    if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size != d.size) {
      missing.push_back(d);
      continue;
    }
    // Keep the blob young for GC's min_age; skip the write when it is young.
    if (st.st_mtime < refresh_before) ::utimensat(AT_FDCWD, path.c_str(), nullptr, 0);
  }
  return missing;
}

absl::StatusOr<Digest> ContentStore::Put(std::string_view data) {
  Digest d = DigestOf(data);
  AMLD_RETURN_IF_ERROR(StoreBytes(root_, d, data));
  return d;
}

absl::Status ContentStore::PutVerified(const Digest& expected, std::string_view data,
                                       Durability durability) {
  AMLD_RETURN_IF_ERROR(ValidateDigest(expected));
  Digest actual = DigestOf(data);
  if (actual != expected) {
    return absl::InvalidArgumentError(absl::StrCat("blob does not match its digest: expected ",
                                                   expected.ToString(), ", got ",
                                                   actual.ToString()));
  }
  return StoreBytes(root_, expected, data, PendingFor(durability, pending_).get());
}

absl::StatusOr<Digest> ContentStore::PutFile(const fs::path& path, Durability durability) {
  // O_NONBLOCK so that a fifo cannot hang the open; it is refused below.
  base::ScopedFd src(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (!src.valid()) return base::ErrnoStatus(errno, "open", path);
  struct stat st;
  if (::fstat(src.get(), &st) != 0) return base::ErrnoStatus(errno, "stat", path);
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot store ", path.string(), ": not a regular file"));
  }
  AMLD_ASSIGN_OR_RETURN(TempFile tmp, TempFile::Create(root_, "put"));
  Sha256 hasher;
  std::vector<char> buf(kCopyBufferSize);
  int64_t total = 0;
  for (;;) {
    ssize_t n = ::read(src.get(), buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return base::ErrnoStatus(errno, "read", path);
    }
    if (n == 0) break;
    std::string_view chunk(buf.data(), static_cast<size_t>(n));
    hasher.Update(chunk);
    AMLD_RETURN_IF_ERROR(base::WriteAll(tmp.fd(), chunk, tmp.path()));
    total += n;
  }
  Digest d{hasher.FinishHex(), total};
  if (ObjectFileExists(root_, d)) return d;  // tmp is removed
  AMLD_RETURN_IF_ERROR(tmp.Install(root_, d, PendingFor(durability, pending_).get()));
  return d;
}

absl::StatusOr<std::string> ContentStore::Read(const Digest& d) const {
  AMLD_ASSIGN_OR_RETURN(std::unique_ptr<BlobReader> reader, OpenBlob(d));
  std::string out(static_cast<size_t>(d.size), '\0');
  size_t pos = 0;
  for (;;) {
    AMLD_ASSIGN_OR_RETURN(size_t n, reader->Read(out.data() + pos, out.size() - pos));
    if (n == 0) break;
    pos += n;
  }
  return out;
}

absl::StatusOr<std::unique_ptr<BlobReader>> ContentStore::OpenBlob(const Digest& d) const {
  AMLD_RETURN_IF_ERROR(ValidateDigest(d));
  if (IsEmptyBlob(d)) return std::make_unique<ObjectReader>(base::ScopedFd(), fs::path(), d);
  fs::path path = ObjectPath(d);
  base::ScopedFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ENOENT) {
      return absl::NotFoundError(
          absl::StrCat("blob ", d.ToString(), " is not in the content store; upload it first"));
    }
    return base::ErrnoStatus(errno, "open", path);
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return base::ErrnoStatus(errno, "stat", path);
  if (st.st_size != d.size) return SizeMismatchError(fd.get(), path, d, st.st_size);
  return std::make_unique<ObjectReader>(std::move(fd), std::move(path), d);
}

absl::Status ContentStore::Verify(const Digest& d) const {
  AMLD_ASSIGN_OR_RETURN(std::unique_ptr<BlobReader> reader, OpenBlob(d));
  std::vector<char> buf(kCopyBufferSize);
  for (;;) {
    AMLD_ASSIGN_OR_RETURN(size_t n, reader->Read(buf.data(), buf.size()));
    if (n == 0) return absl::OkStatus();
  }
}

absl::StatusOr<std::unique_ptr<BlobUpload>> ContentStore::BeginUpload(const Digest& d,
                                                                      Durability durability) {
  AMLD_RETURN_IF_ERROR(ValidateDigest(d));
  std::shared_ptr<PendingSyncs> pending = PendingFor(durability, pending_);
  fs::path path = PartialUploadPath(root_, d);
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

int64_t ContentStore::UploadedSize(const Digest& d) const {
  if (!ValidateDigest(d).ok()) return 0;
  if (Contains(d)) return d.size;
  struct stat st;
  if (::stat(PartialUploadPath(root_, d).c_str(), &st) != 0 || st.st_size > d.size) return 0;
  return st.st_size;
}

absl::StatusOr<GcStats> ContentStore::CollectGarbage(const absl::flat_hash_set<Digest>& live,
                                                     absl::Duration min_age) {
  const time_t young_after = std::time(nullptr) - absl::ToInt64Seconds(min_age);
  // By hash, not digest: an object whose hash is live is never removed, even
  // if its size on disk disagrees (that is corruption for Verify to report).
  absl::flat_hash_set<std::string> live_hashes;
  for (const Digest& d : live) live_hashes.insert(d.hash);
  live_hashes.insert(Digest::Empty().hash);

  GcStats stats;
  const fs::path objects = ObjectsDir(root_);
  AMLD_ASSIGN_OR_RETURN(std::vector<std::string> shards, ListDir(objects));
  for (const std::string& shard : shards) {
    struct stat shard_st;
    if (::lstat((objects / shard).c_str(), &shard_st) != 0 || !S_ISDIR(shard_st.st_mode)) continue;
    AMLD_ASSIGN_OR_RETURN(std::vector<std::string> names, ListDir(objects / shard));
    for (const std::string& name : names) {
      fs::path path = objects / shard / name;
      if (live_hashes.contains(absl::StrCat(shard, name))) {
        ++stats.objects_kept;
        continue;
      }
      struct stat st;
      if (::lstat(path.c_str(), &st) != 0 || S_ISDIR(st.st_mode)) continue;
      if (min_age > absl::ZeroDuration() && st.st_mtime >= young_after) {
        ++stats.objects_kept;
        continue;
      }
      if (::unlink(path.c_str()) != 0) {
        if (errno == ENOENT) continue;  // a concurrent GC got there first
        return base::ErrnoStatus(errno, "remove", path);
      }
      ++stats.objects_removed;
      stats.bytes_removed += st.st_size;
    }
  }

  const time_t cutoff = std::time(nullptr) - kStaleAfterSeconds;
  for (const fs::path& dir : {TmpDir(root_), UploadsDir(root_)}) {
    AMLD_ASSIGN_OR_RETURN(std::vector<std::string> names, ListDir(dir));
    for (const std::string& name : names) {
      int64_t removed = RemoveIfStale(dir / name, cutoff);
      if (removed < 0) continue;
      ++stats.temp_files_removed;
      stats.bytes_removed += removed;
    }
  }
  return stats;
}

}  // namespace amld::storage
