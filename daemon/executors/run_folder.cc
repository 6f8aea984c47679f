#include "daemon/executors/run_folder.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/relative_path.h"
#include "base/status_macros.h"

namespace amld::daemon {

using amld::base::ErrnoStatus;
using amld::base::ScopedFd;

RunPaths RunPathsFor(const std::filesystem::path& runs_root, const std::string& run_id) {
  RunPaths p;
  p.root = runs_root / run_id;
  p.wd = p.root / "wd";
  p.outputs = p.wd / "outputs";
  p.logs = p.wd / "logs";
  p.user_logs = p.root / "user_logs";
  p.std_log = p.user_logs / "std_log.txt";
  p.system_logs = p.root / "system_logs";
  p.metrics = p.root / "metrics.jsonl";
  return p;
}

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

absl::StatusOr<std::string> RunFileLocation(const std::string& rel) {
  AMLD_RETURN_IF_ERROR(base::ValidateRelativePath(rel, "path"));
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

}  // namespace amld::daemon
