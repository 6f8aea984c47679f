#include "daemon/data_dir.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/file_util.h"
#include "base/shell_quote.h"

namespace amld::daemon {
namespace {

namespace fs = std::filesystem;

constexpr mode_t kGroupOther = 077;

absl::Status Refuse(const fs::path& dir, const fs::path& path, mode_t mode,
                    std::string_view why) {
  return absl::FailedPreconditionError(absl::StrFormat(
      "data dir %s: %s is open to other users (mode %04o) and amld cannot make it private (%s); "
      "fix it and start again: chmod -R go-rwx %s",
      dir.string(), path.string(), mode & 07777, why, base::ShellQuote(dir.string())));
}

// Removes group/other bits from `path` (lstat: a symlink's own mode means
// nothing and is left alone); walks into a folder that had them.
absl::Status Tighten(const fs::path& dir, const fs::path& path, bool top,
                     const std::vector<fs::path>& skip = {}) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT && !top) return absl::OkStatus();  // gone meanwhile
    return base::ErrnoStatus(errno, "stat", path);
  }
  if (S_ISLNK(st.st_mode)) return absl::OkStatus();
  if (st.st_uid != ::geteuid()) {
    if ((st.st_mode & kGroupOther) == 0 && !top) return absl::OkStatus();
    return Refuse(dir, path, st.st_mode,
                  absl::StrCat("it belongs to uid ", st.st_uid, ", amld runs as uid ", ::geteuid()));
  }
  const bool loose = (st.st_mode & kGroupOther) != 0;
  if (loose && ::chmod(path.c_str(), st.st_mode & 07700) != 0) {
    return Refuse(dir, path, st.st_mode, std::strerror(errno));
  }
  // The data dir's own entries are always looked at (a private data dir
  // with a loose amld.db was made private by hand); below, a folder is
  // walked only when it was loose itself.
  if (!S_ISDIR(st.st_mode) || (!loose && !top)) return absl::OkStatus();
  std::error_code ec;
  for (fs::directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) {
    if (std::find(skip.begin(), skip.end(), it->path()) != skip.end()) continue;
    if (absl::Status s = Tighten(dir, it->path(), false); !s.ok()) return s;
  }
  if (ec) return base::ErrnoStatus(ec.value(), "list", path);
  return absl::OkStatus();
}

}  // namespace

namespace {

// `skip`: the data dir's entries that other users reach (system mode).
absl::Status PreparePrivate(const fs::path& dir, const std::vector<std::string>& skip) {
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(dir, ec))) {
    fs::create_directories(dir.parent_path(), ec);
    if (::mkdir(dir.c_str(), 0700) == 0) return absl::OkStatus();
    if (errno != EEXIST) return base::ErrnoStatus(errno, "mkdir", dir);
  }
  if (!fs::is_directory(dir, ec)) {
    return absl::FailedPreconditionError(
        absl::StrCat("data dir ", dir.string(), " exists and is not a folder"));
  }
  // A data dir given as a symlink: its target is the data dir.
  fs::path real = fs::canonical(dir, ec);
  std::vector<fs::path> skipped;
  for (const std::string& name : skip) skipped.push_back((ec ? dir : real) / name);
  return Tighten(dir, ec ? dir : real, true, skipped);
}

// A folder others may pass through but not list: root's, 0711.
absl::Status MakePassThrough(const fs::path& path) {
  if (::mkdir(path.c_str(), 0711) != 0 && errno != EEXIST) {
    return base::ErrnoStatus(errno, "mkdir", path);
  }
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return base::ErrnoStatus(errno, "stat", path);
  if (!S_ISDIR(st.st_mode) || st.st_uid != ::geteuid()) {
    return absl::FailedPreconditionError(absl::StrCat(
        path.string(), " must be a folder of uid ", ::geteuid(), "; move it away and start again"));
  }
  if (::chmod(path.c_str(), 0711) != 0) return base::ErrnoStatus(errno, "chmod", path);
  return absl::OkStatus();
}

}  // namespace

absl::Status PrepareDataDir(const fs::path& dir, bool system_mode) {
  if (!system_mode) return PreparePrivate(dir, {});
  // envs/: users reach their own caches and the shared one's environments
  // (daemon/envs/env_builder.h keeps its modes).
  if (absl::Status s = PreparePrivate(dir, {"runs", "envs"}); !s.ok()) return s;
  if (absl::Status s = MakePassThrough(dir); !s.ok()) return s;
  return MakePassThrough(dir / "runs");
}

void PrivateUmask() { ::umask(kGroupOther); }

}  // namespace amld::daemon
