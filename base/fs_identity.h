// FsIdentity: reading files as another user from one thread of a process
// that runs as root (a system-mode daemon reading a caller's folder).
//
// Linux keeps the filesystem uid and gid (fsuid, fsgid) and the
// supplementary groups per thread: the kernel checks every open, stat and
// readdir against the calling thread's. glibc's setgroups() (like setuid)
// broadcasts the change to every thread of the process, so this file calls
// the raw system calls (SYS_setfsuid, SYS_setfsgid, SYS_setgroups), which
// change the calling thread only (fs_identity_test shows both). A thread
// whose fsuid is not 0 also loses CAP_DAC_OVERRIDE and the other file
// capabilities, so it reads exactly what the user may read; they come back
// when the fsuid returns to 0.
//
// Files created while an identity is taken belong to that user: take it only
// around what reads (opening a file to read is enough: an open fd is read
// without further checks), and write with the thread's own identity.
//
// Thread-safety: FsIdentity is a value; ScopedFsIdentity acts on the thread
// that made it and must be destroyed on that thread.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace amld::base {

struct FsIdentity {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups

  // `uid` with primary group `gid` and the supplementary groups the group
  // database gives its login name (none when passwd does not name it).
  static FsIdentity ForUser(uid_t uid, gid_t gid);
  // "uid 1001 gid 1001 (3 groups)", for logs and messages.
  std::string ToString() const;
};

// Whether reading as `who` needs a change of identity: this process runs as
// root (effective uid 0) and `who` is not root. A daemon that is not root can
// only read as itself.
bool NeedsFsIdentity(uid_t who);

// Takes an identity on the calling thread for its lifetime, then restores
// the thread's previous fsuid, fsgid and groups.
class ScopedFsIdentity {
 public:
  // `who` null: changes nothing. FAILED_PRECONDITION when the kernel refused
  // the change (the process is not root): nothing is left changed.
  static absl::StatusOr<ScopedFsIdentity> Take(const FsIdentity* who);

  ScopedFsIdentity(ScopedFsIdentity&& o) noexcept : saved_(std::move(o.saved_)) {
    o.saved_.reset();
  }
  ScopedFsIdentity& operator=(ScopedFsIdentity&&) = delete;
  ScopedFsIdentity(const ScopedFsIdentity&) = delete;
  ~ScopedFsIdentity();

 private:
  ScopedFsIdentity() = default;
  std::optional<FsIdentity> saved_;  // what to restore; empty: nothing taken
};

// This thread's fsuid (the kernel's answer to setfsuid(-1)).
uid_t CurrentFsUid();

}  // namespace amld::base
