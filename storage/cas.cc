// ContentStore (storage/cas.h) but for its uploads, which are in
// cas_upload.cc: opening, lookups, puts, reads, verification and GC.
#include "storage/cas.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/file_util.h"
#include "base/status_macros.h"
#include "storage/cas_internal.h"

namespace amld::storage {

namespace fs = std::filesystem;

using internal::HashPrefix;
using internal::InstallObject;
using internal::kCopyBufferSize;
using internal::ObjectPathIn;
using internal::ObjectsDir;
using internal::PendingFor;
using internal::PendingSyncs;
using internal::StillNamedBy;
using internal::TmpDir;
using internal::UniqueTempPath;
using internal::UploadsDir;

namespace {

// A tmp/ or uploads/ file untouched this long belongs to a dead writer.
constexpr int64_t kStaleAfterSeconds = 3600;
// FindMissing refreshes an object's mtime at most this often.
constexpr int64_t kRefreshAfterSeconds = 600;

bool IsEmptyBlob(const Digest& d) { return d == Digest::Empty(); }

// The object file exists with the digest's size (content is not checked).
// Whoever asks is about to rely on the object (a store that found it, a
// client told it is present), so an mtime older than kRefreshAfterSeconds
// is refreshed: the object then outlives the grace period of a GC running
// now. A refresh that fails means GC just took the object (CollectGarbage
// moves it away before it looks again): it reads as absent, to be stored
// anew.
bool ObjectFileExists(const fs::path& root, const Digest& d) {
  const fs::path path = ObjectPathIn(root, d);
  struct stat st;
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size != d.size) return false;
  if (st.st_mtime >= std::time(nullptr) - kRefreshAfterSeconds) return true;
  return ::utimensat(AT_FDCWD, path.c_str(), nullptr, 0) == 0;
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

// Reads an object with pread, hashing every byte up to the read position
// (a Seek hashes what it skips), so that reaching the end checks the content
// whatever offset the reads started at.
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
    if (!failure_.ok()) return failure_;
    if (offset == pos_) return absl::OkStatus();
    // The bytes skipped are hashed now, so that reaching the end still
    // checks the whole content (a resumed download is verified too).
    hasher_ = std::make_unique<Sha256>();
    pos_ = 0;
    std::string buf(static_cast<size_t>(std::min<int64_t>(offset, kSkipChunkBytes)), '\0');
    while (pos_ < offset) {
      const size_t want = static_cast<size_t>(std::min<int64_t>(buf.size(), offset - pos_));
      ssize_t got;
      do {
        got = ::pread(fd_.get(), buf.data(), want, pos_);
      } while (got < 0 && errno == EINTR);
      if (got < 0) return base::ErrnoStatus(errno, "read", path_);
      AMLD_RETURN_IF_ERROR(Hashed(buf.data(), static_cast<size_t>(got)));
    }
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
    AMLD_RETURN_IF_ERROR(Hashed(buf, static_cast<size_t>(got)));
    return static_cast<size_t>(got);
  }

 private:
  base::ScopedFd fd_;
  fs::path path_;
  Digest digest_;
  // Counts `n` bytes read at pos_ into the hash; at the end, checks it.
  // DATA_LOSS (sticky) when the object ends early or hashes wrong.
  absl::Status Hashed(const char* data, size_t n) {
    if (n == 0) {
      return failure_ = CorruptObjectError(path_, digest_, absl::StrCat("it ends at byte ", pos_));
    }
    hasher_->Update(data, n);
    pos_ += static_cast<int64_t>(n);
    if (pos_ != digest_.size) return absl::OkStatus();
    std::string actual = hasher_->FinishHex();
    if (actual == digest_.hash) return absl::OkStatus();
    return failure_ = CorruptObjectError(path_, digest_, absl::StrCat("content hashes to ", actual));
  }

  static constexpr int64_t kSkipChunkBytes = 1 << 20;
  int64_t pos_ = 0;
  std::unique_ptr<Sha256> hasher_;
  absl::Status failure_;  // sticky: a corrupt object stays corrupt
};

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
  for (const Digest& d : digests) {
    if (!seen.insert(d).second) continue;
    if (!ValidateDigest(d).ok()) {
      missing.push_back(d);
      continue;
    }
    // Present ones are kept young for GC's min_age (ObjectFileExists).
    if (!IsEmptyBlob(d) && !ObjectFileExists(root_, d)) missing.push_back(d);
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
  return PutOpenFile(src.get(), path.string(), durability);
}

absl::StatusOr<Digest> ContentStore::PutOpenFile(int src, std::string_view name,
                                                 Durability durability) {
  struct stat st;
  if (::fstat(src, &st) != 0) return base::ErrnoStatus(errno, "stat", name);
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot store ", std::string(name), ": not a regular file"));
  }
  AMLD_ASSIGN_OR_RETURN(TempFile tmp, TempFile::Create(root_, "put"));
  Sha256 hasher;
  std::vector<char> buf(kCopyBufferSize);
  int64_t total = 0;
  // A reflink costs no data copy; the clone is then ours, so hashing it
  // (not the source) makes the digest the object's whatever the source does.
  int from = src;
  std::string_view from_name = name;
  bool cloned = false;
  if (!no_reflink_.load(std::memory_order_relaxed) && st.st_size > 0) {
    if (::ioctl(tmp.fd(), FICLONE, src) == 0) {
      cloned = true;
      from = tmp.fd();
      from_name = tmp.path().native();
    } else if (errno == EOPNOTSUPP || errno == ENOTTY || errno == EINVAL) {
      // The store's file system has none (EXDEV, a source elsewhere, says
      // nothing about the next one).
      no_reflink_.store(true, std::memory_order_relaxed);
    }
  }
  for (;;) {
    ssize_t n = ::pread(from, buf.data(), buf.size(), total);
    if (n < 0) {
      if (errno == EINTR) continue;
      return base::ErrnoStatus(errno, "read", from_name);
    }
    if (n == 0) break;
    std::string_view chunk(buf.data(), static_cast<size_t>(n));
    hasher.Update(chunk);
    if (!cloned) AMLD_RETURN_IF_ERROR(base::WriteAll(tmp.fd(), chunk, tmp.path()));
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

absl::StatusOr<GcStats> ContentStore::CollectGarbage(const absl::flat_hash_set<Digest>& live,
                                                     absl::Duration min_age,
                                                     std::vector<std::string>* removed) {
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
      // Moved out of objects/ first, then looked at again: a store that
      // found the object in between refreshed its mtime (ObjectFileExists),
      // and it goes back; one that finds it gone stores it anew.
      const fs::path taken = TmpDir(root_) / absl::StrCat("gc-", shard, name);
      if (::rename(path.c_str(), taken.c_str()) != 0) {
        if (errno == ENOENT) continue;  // a concurrent GC got there first
        return base::ErrnoStatus(errno, "remove", path);
      }
      struct stat again;
      if (min_age > absl::ZeroDuration() && ::lstat(taken.c_str(), &again) == 0 &&
          again.st_mtime >= young_after) {
        (void)::link(taken.c_str(), path.c_str());  // EEXIST: stored anew meanwhile
        ::unlink(taken.c_str());
        ++stats.objects_kept;
        continue;
      }
      if (::unlink(taken.c_str()) != 0) return base::ErrnoStatus(errno, "remove", taken);
      if (removed != nullptr) removed->push_back(absl::StrCat(shard, name));
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
