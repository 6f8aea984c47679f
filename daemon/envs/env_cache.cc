#include "daemon/envs/env_cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <system_error>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/file_util.h"
#include "base/status_macros.h"
#include "daemon/executors/run_as.h"

namespace amld::daemon {
namespace {

namespace fs = std::filesystem;

constexpr char kSizeFile[] = "amld-size";
constexpr char kLastUseFile[] = "amld-last-use";

using base::ErrnoStatus;
using base::ScopedFd;

constexpr char kUsers[] = "users";

// The owner's read and execute bits for group and others too; write stays
// the owner's (root's, once sealed); setuid, setgid and sticky go.
mode_t SealedMode(mode_t mode) {
  const mode_t owner = mode & 0700;
  const mode_t read_execute = mode & 0500;
  return owner | (read_execute >> 3) | (read_execute >> 6);
}

// Seals the entry `name` of the open folder `dir` (its path `path`, for
// errors); ForEachEntryBelow walks into it afterwards.
absl::Status SealEntry(int dir, const std::string& name, const fs::path& path) {
  if (::fchownat(dir, name.c_str(), 0, 0, AT_SYMLINK_NOFOLLOW) != 0) {
    return ErrnoStatus(errno, "chown", path);
  }
  struct stat st;
  if (::fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return ErrnoStatus(errno, "stat", path);
  }
  if (S_ISLNK(st.st_mode)) return absl::OkStatus();
  // AT_SYMLINK_NOFOLLOW: an entry swapped for a link meanwhile fails here,
  // its target is never changed.
  if (::fchmodat(dir, name.c_str(), SealedMode(st.st_mode), AT_SYMLINK_NOFOLLOW) != 0) {
    return ErrnoStatus(errno, "chmod", path);
  }
  return absl::OkStatus();
}

// `path` exists as a folder of `uid` (lstat: a link is refused), or is
// made one with `mode`.
absl::Status MakeOwnedFolder(const fs::path& path, mode_t mode, uid_t uid, gid_t gid) {
  if (::mkdir(path.c_str(), mode) == 0) {
    if (::lchown(path.c_str(), uid, gid) != 0) return ErrnoStatus(errno, "chown", path);
  } else if (errno != EEXIST) {
    return ErrnoStatus(errno, "mkdir", path);
  }
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return ErrnoStatus(errno, "stat", path);
  if (!S_ISDIR(st.st_mode) || st.st_uid != uid) {
    return absl::FailedPreconditionError(absl::StrCat(
        path.string(), " is not a folder of uid ", uid,
        "; move it away so amld can make the environment cache its own"));
  }
  // umask took bits away, or someone opened it: as the layout says.
  if ((st.st_mode & 07777) != mode && ::chmod(path.c_str(), mode) != 0) {
    return ErrnoStatus(errno, "chmod", path);
  }
  return absl::OkStatus();
}

bool IsDigest(const std::string& name) {
  return name.size() == 64 && std::all_of(name.begin(), name.end(), [](char c) {
           return absl::ascii_isdigit(c) || (c >= 'a' && c <= 'f');
         });
}

}  // namespace

int64_t MeasureFolder(const fs::path& folder) {
  int64_t total = 0;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code file_ec;
    if (it->is_regular_file(file_ec) && !it->is_symlink(file_ec)) {
      const auto size = it->file_size(file_ec);
      if (!file_ec) total += static_cast<int64_t>(size);
    }
  }
  return total;
}

int64_t RecordSize(const fs::path& folder) {
  const int64_t bytes = MeasureFolder(folder);
  (void)base::WriteFileAtomically(folder / kSizeFile, absl::StrCat(bytes, "\n"));
  return bytes;
}

void TouchLastUse(const fs::path& folder) {
  const fs::path file = folder / kLastUseFile;
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return;  // a removed environment: nothing to record
  (void)::futimens(fd, nullptr);
  ::close(fd);
}

std::vector<CachedEnvironment> ListCache(const fs::path& root) {
  std::vector<CachedEnvironment> found;
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(root, ec)) {
    const std::string name = e.path().filename().string();
    if (!IsDigest(name) || !e.is_symlink(ec)) continue;
    CachedEnvironment env;
    env.digest = name;
    env.folder = root / fs::read_symlink(e.path(), ec);
    if (ec || !fs::is_directory(env.folder, ec)) continue;
    absl::StatusOr<std::string> size = base::ReadFileToString(env.folder / kSizeFile);
    if (!size.ok() || !absl::SimpleAtoi(absl::StripAsciiWhitespace(*size), &env.bytes)) {
      env.bytes = RecordSize(env.folder);
    }
    struct stat st;
    const fs::path used = env.folder / kLastUseFile;
    if (::stat(used.c_str(), &st) == 0 || ::stat(env.folder.c_str(), &st) == 0) {
      env.last_used = absl::TimeFromTimespec(st.st_mtim);
    }
    found.push_back(std::move(env));
  }
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) {
    return a.last_used != b.last_used ? a.last_used < b.last_used : a.digest < b.digest;
  });
  return found;
}

absl::StatusOr<fs::path> MakeUserCache(const fs::path& root, uid_t uid, gid_t gid) {
  const fs::path users = root / kUsers;
  if (absl::Status s = MakeOwnedFolder(users, 0711, ::geteuid(), ::getegid()); !s.ok()) return s;
  const fs::path mine = users / absl::StrCat(uid);
  if (absl::Status s = MakeOwnedFolder(mine, 0700, uid, gid); !s.ok()) return s;
  return mine;
}

std::vector<uid_t> ListUserCaches(const fs::path& root) {
  std::vector<uid_t> uids;
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(root / kUsers, ec)) {
    uint32_t uid;
    if (e.is_directory(ec) && !e.is_symlink(ec) &&
        absl::SimpleAtoi(e.path().filename().string(), &uid)) {
      uids.push_back(uid);
    }
  }
  std::sort(uids.begin(), uids.end());
  return uids;
}

absl::Status SealForEveryone(const fs::path& folder) {
  ScopedFd parent(
      ::open(folder.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!parent.valid()) return ErrnoStatus(errno, "open", folder.parent_path());
  // The folder first: from then on the build account can change nothing
  // in it.
  AMLD_RETURN_IF_ERROR(SealEntry(parent.get(), folder.filename().string(), folder));
  ScopedFd top(::openat(parent.get(), folder.filename().c_str(),
                        O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!top.valid()) return ErrnoStatus(errno, "open", folder);
  return ForEachEntryBelow(top.get(), folder, SealEntry);
}

}  // namespace amld::daemon
