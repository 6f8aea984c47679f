// TakeAccount: the one way amld gives up root for a user's account — used by
// amld-shim (--uid/--gid/--groups: a local run of a system-mode daemon) and
// by Subprocess for the commands a system-mode daemon runs as a run's
// submitter (sbatch, squeue, scancel, sacct; command_runner.h).
//
// Raw system calls, not glibc's setgroups/setresgid/setresuid: in a
// multi-threaded process glibc applies those to every thread (it signals
// each one), which in a vfork child would reach the daemon's threads; the
// kernel's calls change only the calling thread, the child's only one. So
// it is safe after vfork and in the single-threaded shim alike, and touches
// nothing but the kernel.
//
// Changing the effective uid clears PR_SET_PDEATHSIG and marks the process's
// memory undumpable: callers set the death signal afterwards (a vfork child
// also sets PR_SET_DUMPABLE back, since that memory is the daemon's too).
//
// Thread-safety: changes the calling thread's credentials only.
#pragma once

#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>

namespace amld::daemon::shim {

struct TakeAccountResult {
  const char* failed_step = nullptr;  // "setgroups", ...; null: done
  int error = 0;                      // its errno (0 for "check")
  bool ok() const { return failed_step == nullptr; }
};

// Sets the supplementary groups, then gid, then uid (real, effective and
// saved) for good, and checks that every id took.
inline TakeAccountResult TakeAccount(uid_t uid, gid_t gid, const gid_t* groups, size_t count) {
  if (::syscall(SYS_setgroups, count, groups) != 0) return {"setgroups", errno};
  if (::syscall(SYS_setresgid, gid, gid, gid) != 0) return {"setresgid", errno};
  if (::syscall(SYS_setresuid, uid, uid, uid) != 0) return {"setresuid", errno};
  uid_t ru, eu, su;
  gid_t rg, eg, sg;
  if (::syscall(SYS_getresuid, &ru, &eu, &su) != 0 || ::syscall(SYS_getresgid, &rg, &eg, &sg) != 0 ||
      ru != uid || eu != uid || su != uid || rg != gid || eg != gid || sg != gid) {
    return {"check", 0};
  }
  return {};
}

}  // namespace amld::daemon::shim
