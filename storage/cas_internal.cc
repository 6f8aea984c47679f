#include "storage/cas_internal.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <random>
#include <string>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "base/file_util.h"
#include "base/status_macros.h"

namespace amld::storage::internal {

namespace fs = std::filesystem;

namespace {

// Read-only, and the daemon user's alone: objects hold sources and outputs.
constexpr mode_t kObjectMode = 0400;

bool SameFile(const struct stat& a, const struct stat& b) {
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

absl::Status EnsureShardDir(const fs::path& shard) {
  if (::mkdir(shard.c_str(), 0700) == 0) return base::SyncDirectory(shard.parent_path());
  if (errno == EEXIST) return absl::OkStatus();
  return base::ErrnoStatus(errno, "create folder", shard);
}

}  // namespace

void PendingSyncs::Add(fs::path object) {
  absl::MutexLock lock(&mu_);
  if (objects_.size() >= kMaxListed) {
    // Past this many, the list is only memory: SyncAll will syncfs anyway.
    objects_.clear();
    overflowed_ = true;
  }
  objects_.push_back(std::move(object));
}

int64_t PendingSyncs::Count() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int64_t>(objects_.size());
}

absl::Status PendingSyncs::SyncAll(const fs::path& root) {
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

absl::Status PendingSyncs::SyncFilesystem(const fs::path& root) {
  base::ScopedFd fd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return base::ErrnoStatus(errno, "open", root);
  if (::syncfs(fd.get()) != 0) return base::ErrnoStatus(errno, "syncfs", root);
  return absl::OkStatus();
}

absl::Status PendingSyncs::SyncEach(const std::vector<fs::path>& objects) {
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

std::shared_ptr<PendingSyncs> PendingFor(Durability durability,
                                         const std::shared_ptr<PendingSyncs>& pending) {
  return durability == Durability::kDeferred ? pending : nullptr;
}

fs::path ObjectsDir(const fs::path& root) { return root / "objects"; }
fs::path TmpDir(const fs::path& root) { return root / "tmp"; }
fs::path UploadsDir(const fs::path& root) { return root / "uploads"; }

fs::path ObjectPathIn(const fs::path& root, const Digest& d) {
  if (!ValidateDigest(d).ok()) return ObjectsDir(root) / "invalid";
  return ObjectsDir(root) / d.hash.substr(0, 2) / d.hash.substr(2);
}

fs::path UniqueTempPath(const fs::path& root, std::string_view kind) {
  static std::atomic<uint64_t> counter{0};
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return TmpDir(root) / absl::StrCat(std::string(kind), "-", ::getpid(), "-", counter.fetch_add(1),
                                     "-", rng() % 1000000007);
}

bool StillNamedBy(int fd, const fs::path& path) {
  struct stat by_fd, by_path;
  return ::fstat(fd, &by_fd) == 0 && ::stat(path.c_str(), &by_path) == 0 &&
         SameFile(by_fd, by_path);
}

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

}  // namespace amld::storage::internal
