#include "daemon/run_files.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "daemon/submit_validation.h"
#include "storage/status_macros.h"

namespace amld::daemon {
namespace {

using amld::storage::Artifact;
using amld::storage::ContentStore;
using amld::storage::ErrnoStatus;
using amld::storage::ScopedFd;

// A run's outputs are trees a person made; deeper ones are skipped, not
// followed forever.
constexpr int kMaxDepth = 64;

int OpenBeneath(int dirfd, const std::string& rel, uint64_t flags) {
  struct open_how how = {};
  how.flags = flags | O_CLOEXEC;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  long fd;
  do {
    fd = ::syscall(SYS_openat2, dirfd, rel.c_str(), &how, sizeof(how));
  } while (fd < 0 && (errno == EINTR || errno == EAGAIN));
  return static_cast<int>(fd);
}

struct Walker {
  ContentStore& cas;
  std::vector<Artifact>* out;
  std::vector<std::string>* skipped;

  void Skip(const std::string& rel, const std::string& why) {
    if (skipped != nullptr) skipped->push_back(absl::StrCat(rel, ": ", why));
  }

  absl::Status StoreFile(int dirfd, const char* name, const std::string& rel) {
    ScopedFd fd(::openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    if (!fd.valid()) {
      if (errno == ELOOP) {
        Skip(rel, "symbolic link, not stored");
        return absl::OkStatus();
      }
      return ErrnoStatus(errno, "open", rel);
    }
    struct stat st;
    if (::fstat(fd.get(), &st) != 0) return ErrnoStatus(errno, "stat", rel);
    if (!S_ISREG(st.st_mode)) {
      Skip(rel, "not a regular file, not stored");
      return absl::OkStatus();
    }
    // The open fd pins the inode we checked: reading through /proc/self/fd
    // cannot be redirected by a rename or a new symlink meanwhile.
    AMLD_ASSIGN_OR_RETURN(amld::storage::Digest digest,
                          cas.PutFile(absl::StrCat("/proc/self/fd/", fd.get())));
    out->push_back(Artifact{rel, std::move(digest)});
    return absl::OkStatus();
  }

  absl::Status WalkDir(int dirfd, const std::string& prefix, int depth) {
    if (depth > kMaxDepth) {
      Skip(prefix, "nested too deep, not stored");
      return absl::OkStatus();
    }
    int dup_fd = ::dup(dirfd);
    if (dup_fd < 0) return ErrnoStatus(errno, "dup", prefix);
    DIR* dir = ::fdopendir(dup_fd);
    if (dir == nullptr) {
      ::close(dup_fd);
      return ErrnoStatus(errno, "opendir", prefix);
    }
    std::vector<std::pair<std::string, unsigned char>> entries;
    while (struct dirent* e = ::readdir(dir)) {
      std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      entries.emplace_back(std::move(name), e->d_type);
    }
    ::closedir(dir);
    std::sort(entries.begin(), entries.end());
    for (const auto& [name, type] : entries) {
      const std::string rel = absl::StrCat(prefix, "/", name);
      unsigned char t = type;
      if (t == DT_UNKNOWN) {
        struct stat st;
        if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
        t = S_ISDIR(st.st_mode)   ? DT_DIR
            : S_ISREG(st.st_mode) ? DT_REG
            : S_ISLNK(st.st_mode) ? DT_LNK
                                  : DT_FIFO;
      }
      if (t == DT_DIR) {
        ScopedFd sub(
            ::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (!sub.valid()) {
          Skip(rel, "cannot open folder");
          continue;
        }
        AMLD_RETURN_IF_ERROR(WalkDir(sub.get(), rel, depth + 1));
      } else if (t == DT_REG) {
        AMLD_RETURN_IF_ERROR(StoreFile(dirfd, name.c_str(), rel));
      } else if (t == DT_LNK) {
        Skip(rel, "symbolic link, not stored");
      } else {
        Skip(rel, "not a regular file, not stored");
      }
    }
    return absl::OkStatus();
  }
};

}  // namespace

absl::StatusOr<std::string> RunFileLocation(const std::string& rel) {
  AMLD_RETURN_IF_ERROR(ValidateRelativePath(rel, "path"));
  for (const char* under_wd : {"outputs/", "logs/"}) {
    if (absl::StartsWith(rel, under_wd)) return absl::StrCat("wd/", rel);
  }
  for (const char* under_root : {"user_logs/", "system_logs/"}) {
    if (absl::StartsWith(rel, under_root)) return rel;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("path \"", rel,
                   "\" is not a run file: it must start with outputs/, logs/, user_logs/ or "
                   "system_logs/"));
}

absl::StatusOr<ScopedFd> OpenRunFile(const RunPaths& paths, const std::string& rel) {
  AMLD_ASSIGN_OR_RETURN(std::string location, RunFileLocation(rel));
  ScopedFd root(::open(paths.root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root.valid()) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat("the run has no file ", rel));
    return ErrnoStatus(errno, "open", paths.root);
  }
  ScopedFd fd(OpenBeneath(root.get(), location, O_RDONLY | O_NONBLOCK));
  if (!fd.valid()) {
    if (errno == ENOENT || errno == ENOTDIR) {
      return absl::NotFoundError(absl::StrCat("the run has no file ", rel));
    }
    if (errno == ELOOP || errno == EXDEV) {
      return absl::InvalidArgumentError(absl::StrCat(
          rel, " is or passes through a symbolic link; amld does not follow links in a run"));
    }
    return ErrnoStatus(errno, "open", paths.root / location);
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return ErrnoStatus(errno, "stat", paths.root / location);
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(rel, " is not a regular file"));
  }
  return fd;
}

bool IsSymlinkInRun(const RunPaths& paths, const std::string& rel) {
  absl::StatusOr<std::string> location = RunFileLocation(rel);
  if (!location.ok()) return false;
  ScopedFd root(::open(paths.root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root.valid()) return false;
  ScopedFd fd(OpenBeneath(root.get(), *location, O_PATH));
  return !fd.valid() && (errno == ELOOP || errno == EXDEV);
}

absl::StatusOr<std::vector<Artifact>> CollectArtifacts(ContentStore& cas, const RunPaths& paths,
                                                       std::vector<std::string>* skipped) {
  std::vector<Artifact> artifacts;
  Walker walker{cas, &artifacts, skipped};
  ScopedFd wd(::open(paths.wd.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (wd.valid()) {
    for (const char* top : {"outputs", "logs"}) {
      ScopedFd dir(::openat(wd.get(), top, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!dir.valid()) {
        if (errno == ELOOP || errno == ENOTDIR) walker.Skip(top, "not a folder, not stored");
        continue;
      }
      AMLD_RETURN_IF_ERROR(walker.WalkDir(dir.get(), top, 0));
    }
  }
  absl::StatusOr<ScopedFd> log = OpenRunFile(paths, "user_logs/std_log.txt");
  if (log.ok()) {
    AMLD_ASSIGN_OR_RETURN(amld::storage::Digest digest,
                          cas.PutFile(absl::StrCat("/proc/self/fd/", log->get())));
    artifacts.push_back(Artifact{"user_logs/std_log.txt", std::move(digest)});
  }
  std::sort(artifacts.begin(), artifacts.end(),
            [](const Artifact& a, const Artifact& b) { return a.path < b.path; });
  return artifacts;
}

}  // namespace amld::daemon
