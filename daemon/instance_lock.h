// InstanceLock: one daemon per data dir. An exclusive flock(2) on
// <data>/amld.lock, which holds the owner's pid in text. The lock dies with
// its process (SIGKILL included), so a stale file never blocks a restart.
//
// Thread-safety: a value owner; not shared.
#pragma once

#include <filesystem>
#include <memory>

#include "absl/status/statusor.h"
#include "base/file_util.h"

namespace amld::daemon {

class InstanceLock {
 public:
  // FAILED_PRECONDITION "another amld (pid N) is already using <data dir>"
  // when another process (or another Daemon in this one) holds it.
  static absl::StatusOr<std::unique_ptr<InstanceLock>> Acquire(
      const std::filesystem::path& data_dir);

 private:
  explicit InstanceLock(amld::base::ScopedFd fd) : fd_(std::move(fd)) {}
  amld::base::ScopedFd fd_;
};

}  // namespace amld::daemon
