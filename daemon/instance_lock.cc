#include "daemon/instance_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace amld::daemon {

absl::StatusOr<std::unique_ptr<InstanceLock>> InstanceLock::Acquire(
    const std::filesystem::path& data_dir) {
  const std::filesystem::path path = data_dir / "amld.lock";
  amld::base::ScopedFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd.valid()) return amld::base::ErrnoStatus(errno, "open", path);
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK) return amld::base::ErrnoStatus(errno, "flock", path);
    char buf[32] = {};
    ssize_t n = ::pread(fd.get(), buf, sizeof(buf) - 1, 0);
    std::string text(buf, n > 0 ? static_cast<size_t>(n) : 0);
    int64_t pid = 0;
    std::string who = absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &pid)
                          ? absl::StrCat("another amld (pid ", pid, ")")
                          : "another amld";
    return absl::FailedPreconditionError(
        absl::StrCat(who, " is already using ", data_dir.string(),
                     "; stop it first (aml daemon stop) or pick another --data-dir"));
  }
  std::string pid = absl::StrCat(::getpid(), "\n");
  if (::ftruncate(fd.get(), 0) != 0) return amld::base::ErrnoStatus(errno, "truncate", path);
  absl::Status written = amld::base::WriteAll(fd.get(), pid, path);
  if (!written.ok()) return written;
  return std::unique_ptr<InstanceLock>(new InstanceLock(std::move(fd)));
}

}  // namespace amld::daemon
