#include "daemon/watch/local_ingest.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "base/status_macros.h"
#include "storage/snapshot/snapshot.h"
#include "storage/snapshot/stat_cache.h"

namespace amld::daemon {
namespace {

namespace fs = std::filesystem;
namespace pb = amld::v1;

absl::Status CannotTake(std::string_view why) {
  return absl::FailedPreconditionError(
      absl::StrCat("amld cannot read the folder itself (", std::string(why),
                   "); the client uploads it instead"));
}

// Smallest of the limits that are set (0: none).
int64_t Tighter(int64_t a, int64_t b) {
  if (a <= 0) return b;
  if (b <= 0) return a;
  return std::min(a, b);
}

std::string LinkTarget(const std::string& link) {
  std::string target(4096, '\0');
  ssize_t n = ::readlink(link.c_str(), target.data(), target.size());
  if (n <= 0) return "the folder";
  target.resize(static_cast<size_t>(n));
  return target;
}

}  // namespace

absl::StatusOr<base::ScopedFd> OpenPeerFolder(const PeerProcess& peer, int fd_number,
                                              const base::FsIdentity* read_as) {
  if (peer.pid <= 0) return CannotTake("the client's process is not visible here");
  if (fd_number < 0) return CannotTake(absl::StrCat("bad descriptor number ", fd_number));
  // This handle stays bound to the process it named: if the client exits and
  // its pid is reused, opening through it fails instead of reaching another.
  const std::string proc = absl::StrCat("/proc/", peer.pid);
  base::ScopedFd proc_dir(::open(proc.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!proc_dir.valid()) {
    return CannotTake(absl::StrCat("cannot open ", proc, ": ", std::strerror(errno)));
  }
  struct stat owner;
  if (::fstat(proc_dir.get(), &owner) != 0) {
    return CannotTake(absl::StrCat("cannot stat ", proc, ": ", std::strerror(errno)));
  }
  if (peer.uid != 0 && owner.st_uid != peer.uid) {
    return CannotTake(absl::StrCat("process ", peer.pid, " is not the caller's"));
  }
  const std::string name = absl::StrCat("fd/", fd_number);
  int fd = -1;
  int err = 0;
  {
    AMLD_ASSIGN_OR_RETURN(base::ScopedFsIdentity as, base::ScopedFsIdentity::Take(read_as));
    fd = ::openat(proc_dir.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    err = errno;
  }
  if (fd < 0) {
    if (err == ENOTDIR) return CannotTake(absl::StrCat("descriptor ", fd_number, " is not a folder"));
    return CannotTake(absl::StrCat("cannot open ", proc, "/", name, ": ", std::strerror(err)));
  }
  return base::ScopedFd(fd);
}

absl::StatusOr<pb::IngestLocalFolderResponse> LocalIngest::Ingest(
    const PeerProcess& peer, const pb::IngestLocalFolderRequest& request) {
  std::optional<base::FsIdentity> caller;
  if (base::NeedsFsIdentity(peer.uid)) {
    caller = base::FsIdentity::ForUser(peer.uid, peer.gid);
  } else if (::geteuid() != 0 && peer.uid != ::geteuid()) {
    return CannotTake(absl::StrCat("it runs as uid ", ::geteuid(), ", you are uid ", peer.uid));
  }
  const base::FsIdentity* read_as = caller ? &*caller : nullptr;
  AMLD_ASSIGN_OR_RETURN(base::ScopedFd dir, OpenPeerFolder(peer, request.dir_fd(), read_as));
  struct stat st;
  if (::fstat(dir.get(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return CannotTake("the descriptor does not name a folder");
  }
  if (st.st_dev != request.dir_device() || st.st_ino != request.dir_inode()) {
    return CannotTake("the descriptor names another folder than the client's");
  }
  // The walk goes through our descriptor: its /proc/self/fd link is the
  // folder whatever mounts this process sees.
  const std::string root = absl::StrCat("/proc/self/fd/", dir.get());
  const std::string key = absl::StrCat(peer.uid, "-", st.st_dev, "-", st.st_ino);
  absl::MutexLock folder_lock(&folder_mu_[std::hash<std::string>{}(key) % kFolderLocks]);

  std::optional<amld::storage::StatCache> cache;
  fs::path cache_file;
  if (!options_.cache_dir.empty()) {
    cache_file = options_.cache_dir / key;
    cache = amld::storage::StatCache::Load(cache_file);
  }
  amld::storage::BuildOptions build;
  build.threads = options_.threads;
  build.cache = cache ? &*cache : nullptr;
  build.max_total_bytes = Tighter(options_.max_snapshot_bytes, request.max_total_bytes());
  build.max_files = Tighter(options_.max_snapshot_files, request.max_files());
  build.read_as = read_as;
  build.store = cas_;
  build.store_durability = amld::storage::Durability::kDeferred;
  const absl::Time walk_started = absl::Now();
  absl::StatusOr<amld::storage::Snapshot> snap = amld::storage::BuildSnapshot(root, build);
  if (!snap.ok()) {
    // Name the folder as the client knows it, not by our descriptor.
    return absl::Status(snap.status().code(),
                        absl::StrReplaceAll(snap.status().message(), {{root, LinkTarget(root)}}));
  }
  AMLD_RETURN_IF_ERROR(
      amld::storage::StoreDirectories(*snap, *cas_, amld::storage::Durability::kDeferred));
  if (cache) {
    // A cache that cannot be saved costs the next ingest a read of every
    // file, nothing else.
    if (cache->Save(cache_file, walk_started).ok()) {
      ::utimensat(AT_FDCWD, cache_file.c_str(), nullptr, 0);  // used now, even if unchanged
      DropOldCaches();
    }
  }
  pb::IngestLocalFolderResponse response;
  amld::storage::ToProto(snap->root, response.mutable_snapshot_root());
  response.set_file_count(static_cast<int64_t>(snap->files.size()));
  response.set_total_bytes(snap->total_file_bytes);
  response.set_files_read(snap->files_read);
  response.set_read_as_caller(read_as != nullptr);
  if (options_.on_repeated && read_as == nullptr && !request.no_auto_watch() && SeenBefore(key)) {
    // The path as this process sees it, if it is the same folder (another
    // mount namespace may show something else there, or nothing).
    const fs::path path = LinkTarget(root);
    struct stat there;
    if (::stat(path.c_str(), &there) == 0 && there.st_dev == st.st_dev &&
        there.st_ino == st.st_ino) {
      response.set_watching(options_.on_repeated(path).ok());
    }
  }
  return response;
}

bool LocalIngest::SeenBefore(const std::string& key) {
  absl::MutexLock lock(&seen_mu_);
  if (seen_.contains(key)) return true;
  if (seen_.size() >= 4096) seen_.clear();  // a bound; forgetting costs one more ingest
  seen_.insert(key);
  return false;
}

void LocalIngest::DropOldCaches() {
  std::error_code ec;
  std::vector<std::pair<fs::file_time_type, fs::path>> files;
  for (const fs::directory_entry& e : fs::directory_iterator(options_.cache_dir, ec)) {
    std::error_code time_ec;
    fs::file_time_type t = e.last_write_time(time_ec);
    if (!time_ec) files.emplace_back(t, e.path());
  }
  if (files.size() <= options_.max_cached_folders) return;
  std::sort(files.begin(), files.end());
  for (size_t i = 0; i + options_.max_cached_folders < files.size(); ++i) {
    fs::remove(files[i].second, ec);
  }
}

}  // namespace amld::daemon
