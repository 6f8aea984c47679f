#include "base/fs_identity.h"

#include <grp.h>
#include <pwd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace amld::base {
namespace {

// The raw calls: per thread (see the header for why not glibc's).
long RawSetFsUid(uid_t uid) { return ::syscall(SYS_setfsuid, uid); }
long RawSetFsGid(gid_t gid) { return ::syscall(SYS_setfsgid, gid); }
long RawSetGroups(const std::vector<gid_t>& groups) {
  return ::syscall(SYS_setgroups, groups.size(), groups.empty() ? nullptr : groups.data());
}
gid_t CurrentFsGid() { return static_cast<gid_t>(::syscall(SYS_setfsgid, static_cast<gid_t>(-1))); }

std::vector<gid_t> CurrentGroups() {
  for (;;) {
    long n = ::syscall(SYS_getgroups, 0, nullptr);
    if (n < 0) return {};
    std::vector<gid_t> groups(static_cast<size_t>(n));
    long got = ::syscall(SYS_getgroups, groups.size(), groups.data());
    if (got == n) return groups;
    if (got < 0 && errno != EINVAL) return {};  // EINVAL: the list grew meanwhile
  }
}

// Sets all three; false (with errno) when one was refused.
bool Apply(const FsIdentity& who) {
  if (RawSetGroups(who.groups) != 0) return false;
  RawSetFsGid(who.gid);
  RawSetFsUid(who.uid);
  // setfsuid/setfsgid report no error: ask what holds now.
  if (CurrentFsUid() != who.uid || CurrentFsGid() != who.gid) {
    errno = EPERM;
    return false;
  }
  return true;
}

}  // namespace

FsIdentity FsIdentity::ForUser(uid_t uid, gid_t gid) {
  FsIdentity id{uid, gid, {}};
  std::vector<char> buf(16384);
  passwd pw;
  passwd* found = nullptr;
  if (::getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) != 0 || found == nullptr) return id;
  int n = 64;
  for (int tries = 0; tries < 4; ++tries) {
    id.groups.resize(static_cast<size_t>(n));
    int got = n;
    if (::getgrouplist(pw.pw_name, gid, id.groups.data(), &got) >= 0) {
      id.groups.resize(static_cast<size_t>(got));
      return id;
    }
    n = got;  // getgrouplist said how many it needs
  }
  id.groups.clear();
  return id;
}

std::string FsIdentity::ToString() const {
  return absl::StrCat("uid ", uid, " gid ", gid, " (", groups.size(), " groups)");
}

bool NeedsFsIdentity(uid_t who) { return ::geteuid() == 0 && who != 0; }

uid_t CurrentFsUid() { return static_cast<uid_t>(RawSetFsUid(static_cast<uid_t>(-1))); }

absl::StatusOr<ScopedFsIdentity> ScopedFsIdentity::Take(const FsIdentity* who) {
  ScopedFsIdentity scope;
  if (who == nullptr) return scope;
  FsIdentity saved{CurrentFsUid(), CurrentFsGid(), CurrentGroups()};
  if (!Apply(*who)) {
    int err = errno;
    Apply(saved);
    return absl::FailedPreconditionError(absl::StrCat("cannot read files as ", who->ToString(),
                                                      ": ", std::strerror(err),
                                                      " (only a daemon running as root can)"));
  }
  scope.saved_ = std::move(saved);
  return scope;
}

ScopedFsIdentity::~ScopedFsIdentity() {
  if (saved_) Apply(*saved_);
}

}  // namespace amld::base
