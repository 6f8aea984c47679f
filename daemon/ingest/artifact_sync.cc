#include "daemon/ingest/artifact_sync.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "daemon/executors/run_folder.h"
#include "base/file_util.h"
#include "base/status_macros.h"

namespace amld::daemon {
namespace {

using amld::storage::Artifact;
using amld::storage::Digest;
using amld::base::ErrnoStatus;
using amld::base::ScopedFd;

// A run's outputs are trees a person made; deeper ones are skipped, not
// followed forever (as at the end of a run before live ingestion).
constexpr int kMaxDepth = 64;

std::string ProcPath(int fd) { return absl::StrCat("/proc/self/fd/", fd); }

// The entries of the folder open as `dir_fd`, sorted by name.
absl::StatusOr<std::vector<std::pair<std::string, unsigned char>>> ListFolder(
    int dir_fd, const std::string& rel) {
  int dup_fd = ::dup(dir_fd);
  if (dup_fd < 0) return ErrnoStatus(errno, "dup", rel);
  DIR* dir = ::fdopendir(dup_fd);
  if (dir == nullptr) {
    int err = errno;
    ::close(dup_fd);
    return ErrnoStatus(err, "opendir", rel);
  }
  std::vector<std::pair<std::string, unsigned char>> entries;
  while (struct dirent* e = ::readdir(dir)) {
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
    entries.emplace_back(e->d_name, e->d_type);
  }
  ::closedir(dir);
  std::sort(entries.begin(), entries.end());
  return entries;
}

unsigned char TypeOf(int dir_fd, const std::string& name, unsigned char type) {
  if (type != DT_UNKNOWN) return type;
  struct stat st;
  if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return DT_UNKNOWN;
  return S_ISDIR(st.st_mode)   ? DT_DIR
         : S_ISREG(st.st_mode) ? DT_REG
         : S_ISLNK(st.st_mode) ? DT_LNK
                               : DT_FIFO;
}

}  // namespace

ArtifactSync::ArtifactSync(amld::storage::ContentStore* cas, std::filesystem::path wd,
                           absl::Duration racy_window)
    : cas_(cas), wd_(std::move(wd)), racy_window_(racy_window) {}

void ArtifactSync::Seed(const std::vector<Artifact>& stored) {
  for (const Artifact& a : stored) known_.try_emplace(a.path, Entry{a.digest, std::nullopt});
}

std::vector<Artifact> ArtifactSync::Current() const {
  std::vector<Artifact> out;
  out.reserve(known_.size());
  for (const auto& [path, entry] : known_) out.push_back(Artifact{path, entry.digest});
  return out;
}

void ArtifactSync::ForgetStamp(const std::string& rel) {
  if (auto it = known_.find(rel); it != known_.end()) it->second.stamp.reset();
}

std::optional<Digest> ArtifactSync::StoredDigest(const std::string& rel) const {
  auto it = known_.find(rel);
  if (it == known_.end()) return std::nullopt;
  return it->second.digest;
}

absl::Status ArtifactSync::Sync(const std::string& rel, const Hooks& hooks, Changes* changes) {
  // Taken before any stamp: a stamp is trusted only when the file's ctime
  // is older than this by more than the window (see the header).
  sync_started_ = absl::Now();
  ScopedFd wd(::open(wd_.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!wd.valid()) {
    if (errno != ENOENT && errno != ENOTDIR && errno != ELOOP) {
      return ErrnoStatus(errno, "open", wd_);
    }
    Forget(rel, /*self=*/true, nullptr, changes);
    return absl::OkStatus();
  }
  std::set<std::string> seen;
  return SyncAt(wd.get(), rel, hooks, 0, &seen, changes);
}

absl::Status ArtifactSync::SyncAt(int wd_fd, const std::string& rel, const Hooks& hooks, int depth,
                                  std::set<std::string>* seen, Changes* changes) {
  ScopedFd fd(OpenBeneath(wd_fd, rel, O_PATH));
  if (!fd.valid()) {
    int err = errno;
    if (err != ENOENT && err != ENOTDIR && err != ELOOP && err != EXDEV) {
      return ErrnoStatus(err, "open", wd_ / rel);
    }
    if (err == ELOOP || err == EXDEV) {
      changes->skipped.push_back(
          absl::StrCat(rel, ": is or passes through a symbolic link, not stored"));
    }
    Forget(rel, /*self=*/true, nullptr, changes);
    return absl::OkStatus();
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return ErrnoStatus(errno, "stat", wd_ / rel);
  const bool top = rel.find('/') == std::string::npos;  // outputs/ or logs/ itself
  if (S_ISDIR(st.st_mode)) {
    AMLD_RETURN_IF_ERROR(SyncFolder(fd.get(), rel, hooks, depth, seen, changes));
    Forget(rel, /*self=*/true, seen, changes);  // what vanished beneath it
    return absl::OkStatus();
  }
  Forget(rel, /*self=*/false, nullptr, changes);  // it may have been a folder
  if (!S_ISREG(st.st_mode) || top) {
    changes->skipped.push_back(
        absl::StrCat(rel, top ? ": not a folder, not stored" : ": not a regular file, not stored"));
    Forget(rel, /*self=*/true, nullptr, changes);
    return absl::OkStatus();
  }
  seen->insert(rel);
  const FileStamp stamp = FileStamp::Of(st);
  if (Unchanged(rel, stamp)) return absl::OkStatus();
  return StoreFile(fd.get(), rel, stamp, changes);
}

absl::Status ArtifactSync::SyncFolder(int path_fd, const std::string& rel, const Hooks& hooks,
                                      int depth, std::set<std::string>* seen, Changes* changes) {
  if (depth > kMaxDepth) {
    changes->skipped.push_back(absl::StrCat(rel, ": nested too deep, not stored"));
    return absl::OkStatus();
  }
  ScopedFd dir(::openat(path_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir.valid()) {
    changes->skipped.push_back(absl::StrCat(rel, ": cannot open folder: ", std::strerror(errno)));
    return absl::OkStatus();
  }
  if (hooks.on_folder) hooks.on_folder(rel, dir.get());
  absl::StatusOr<std::vector<std::pair<std::string, unsigned char>>> entries =
      ListFolder(dir.get(), rel);
  if (!entries.ok()) {
    changes->skipped.push_back(
        absl::StrCat(rel, ": cannot list folder: ", entries.status().message()));
    return absl::OkStatus();
  }
  for (const auto& [name, type] : *entries) {
    AMLD_RETURN_IF_ERROR(SyncChild(dir.get(), name, TypeOf(dir.get(), name, type),
                                   absl::StrCat(rel, "/", name), hooks, depth, seen, changes));
  }
  return absl::OkStatus();
}

absl::Status ArtifactSync::SyncChild(int dir_fd, const std::string& name, unsigned char type,
                                     const std::string& rel, const Hooks& hooks, int depth,
                                     std::set<std::string>* seen, Changes* changes) {
  if (type == DT_LNK) {
    changes->skipped.push_back(absl::StrCat(rel, ": symbolic link, not stored"));
    return absl::OkStatus();
  }
  if (type != DT_DIR && type != DT_REG) {
    // DT_UNKNOWN: it vanished while we looked.
    if (type != DT_UNKNOWN) {
      changes->skipped.push_back(absl::StrCat(rel, ": not a regular file, not stored"));
    }
    return absl::OkStatus();
  }
  const int dir_flag = type == DT_DIR ? O_DIRECTORY : 0;
  // A replaced or removed entry fails here or below and is simply not seen.
  ScopedFd fd(::openat(dir_fd, name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC | dir_flag));
  if (!fd.valid()) return absl::OkStatus();
  if (type == DT_DIR) return SyncFolder(fd.get(), rel, hooks, depth + 1, seen, changes);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) return absl::OkStatus();
  seen->insert(rel);
  const FileStamp stamp = FileStamp::Of(st);
  if (Unchanged(rel, stamp)) return absl::OkStatus();
  if (hooks.on_changed_file) {
    hooks.on_changed_file(rel);
    return absl::OkStatus();
  }
  return StoreFile(fd.get(), rel, stamp, changes);
}

absl::Status ArtifactSync::StoreFile(int path_fd, const std::string& rel, const FileStamp& stamp,
                                     Changes* changes) {
  // Reopening the O_PATH fd through /proc reads the very inode just
  // checked, whatever happens to its path meanwhile.
  absl::StatusOr<Digest> digest = cas_->PutFile(ProcPath(path_fd), amld::storage::Durability::kDeferred);
  if (!digest.ok()) {
    const absl::StatusCode code = digest.status().code();
    // The run removed the file meanwhile, or made it unreadable: not the
    // store's failure, so the other files go on.
    if (code != absl::StatusCode::kNotFound && code != absl::StatusCode::kPermissionDenied &&
        code != absl::StatusCode::kInvalidArgument) {
      return digest.status();
    }
    if (code != absl::StatusCode::kNotFound) {
      changes->skipped.push_back(absl::StrCat(rel, ": cannot read: ", digest.status().message()));
    }
    Forget(rel, /*self=*/true, nullptr, changes);
    return absl::OkStatus();
  }
  ++files_read_;
  const bool trusted = stamp.TrustedFor(sync_started_, racy_window_);
  auto [it, added] = known_.try_emplace(rel, Entry{*digest, std::nullopt});
  const bool same_content = !added && it->second.digest == *digest;
  it->second.digest = *digest;
  it->second.stamp = trusted ? std::optional<FileStamp>(stamp) : std::nullopt;
  if (!same_content) changes->stored.push_back(Artifact{rel, *std::move(digest)});
  return absl::OkStatus();
}

bool ArtifactSync::Unchanged(const std::string& rel, const FileStamp& stamp) const {
  auto it = known_.find(rel);
  return it != known_.end() && it->second.stamp.has_value() && *it->second.stamp == stamp;
}

void ArtifactSync::Forget(const std::string& rel, bool self, const std::set<std::string>* keep,
                          Changes* changes) {
  if (self && known_.erase(rel) > 0) changes->removed.push_back(rel);
  const std::string prefix = rel + "/";
  for (auto it = known_.lower_bound(prefix);
       it != known_.end() && absl::StartsWith(it->first, prefix);) {
    if (keep != nullptr && keep->count(it->first) > 0) {
      ++it;
      continue;
    }
    changes->removed.push_back(it->first);
    it = known_.erase(it);
  }
}

}  // namespace amld::daemon
