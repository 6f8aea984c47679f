// Small POSIX file helpers shared by the storage modules: errno → Status,
// an owning fd, whole-file reads, and atomic writes (tmp, fsync, rename,
// fsync of the directory).
//
// Thread-safety: free functions are thread-safe; ScopedFd is a value owner.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace amld::base {

// "<op> <path>: <strerror>" with the absl code that best matches errno
// (ENOENT → NOT_FOUND, EACCES/EPERM → PERMISSION_DENIED, ENOSPC/EDQUOT →
// RESOURCE_EXHAUSTED, EEXIST → ALREADY_EXISTS, else INTERNAL).
absl::Status ErrnoStatus(int err, std::string_view op,
                         const std::filesystem::path& path);

// Owns a file descriptor and closes it on destruction.
class ScopedFd {
 public:
  ScopedFd() = default;
  explicit ScopedFd(int fd) : fd_(fd) {}
  ScopedFd(ScopedFd&& o) noexcept : fd_(o.release()) {}
  ScopedFd& operator=(ScopedFd&& o) noexcept;
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  ~ScopedFd();

  int get() const { return fd_; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  bool valid() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

// Reads a whole file.
absl::StatusOr<std::string> ReadFileToString(const std::filesystem::path& path);

// Writes all of `data` to fd, retrying on EINTR and short writes.
absl::Status WriteAll(int fd, std::string_view data,
                      const std::filesystem::path& path_for_errors);

// fsyncs a directory so a rename inside it is durable.
absl::Status SyncDirectory(const std::filesystem::path& dir);

// Replaces `path` with `data` atomically: a temp file beside it is written,
// fsynced and renamed over `path`, then the directory is fsynced.
absl::Status WriteFileAtomically(const std::filesystem::path& path,
                                 std::string_view data, int mode = 0644);

}  // namespace amld::base
