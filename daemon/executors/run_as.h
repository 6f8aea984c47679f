// RunAs: the account a system-mode daemon (`amld --system`, running as
// root) runs a run as — its submitter's, from the uid the kernel gave the
// daemon for the submitting connection (SO_PEERCRED), never from anything
// the client said. What it holds is what login(1) would give that user:
// uid, primary gid, supplementary groups (initgroups), HOME, USER, LOGNAME
// and SHELL.
//
// In user mode no LaunchSpec carries one: runs run as the daemon's user.
//
// Thread-safety: free functions, thread-safe (getpwuid_r, getgrouplist).
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace amld::daemon {

struct RunAs {
  uid_t uid = 0;
  gid_t gid = 0;                // primary group
  std::vector<gid_t> groups;    // supplementary groups, the primary one included
  std::string user;             // login name
  std::filesystem::path home;
  std::string shell;
};

// The account of `uid` from the passwd and group databases (NSS).
// FAILED_PRECONDITION "uid N has no account on this machine" when passwd
// has none: a run must not run under a uid nobody can name.
absl::StatusOr<RunAs> LookupAccount(uid_t uid);

// True when `account` is in group `gid` (primary or supplementary).
bool InGroup(const RunAs& account, gid_t gid);

// Sets HOME, USER, LOGNAME and SHELL to the account's and drops the
// daemon's per-user locations (XDG_RUNTIME_DIR, XDG_*_HOME, MAIL), which
// name root's, in a run's environment.
void SetAccountEnvironment(const RunAs& account,
                           std::vector<std::pair<std::string, std::string>>* env);

// OK when `account` may use `file` as `access` says (R_OK: read, X_OK:
// execute): search permission on every folder above it and that permission
// on it, by the mode bits (owner, group, others; ACLs are not read). Else
// FAILED_PRECONDITION naming the first folder or file that stops them. For
// files the daemon hands to what runs as the account — amld-launch, which
// the run starts; an SSH target's key file, which their ssh reads — so a
// run is refused with the reason instead of failing somewhere later.
absl::Status CheckAccountMay(const RunAs& account, const std::filesystem::path& file, int access);

// Gives the folder `root` and everything below it to uid:gid (lchown: links
// are never followed, their targets never changed) and makes `root` 0700, so
// the run's user owns its run folder and no other user can enter it. Called
// before the run starts, while only the daemon can reach the folder.
absl::Status GiveTreeTo(const std::filesystem::path& root, uid_t uid, gid_t gid);

// Calls `visit(dir, name, path)` for every entry below the open folder
// `dir` (named `path`), depth first: an entry is visited before the walk
// enters it, and the walk opens folders with O_NOFOLLOW, so a link is
// visited itself and never followed. The first error ends the walk. For
// changing a tree a user could still be changing (GiveTreeTo, the shared
// environments' seal): act on `name` relative to `dir`, never on `path`.
using EntryVisitor = std::function<absl::Status(int dir, const std::string& name,
                                                const std::filesystem::path& path)>;
absl::Status ForEachEntryBelow(int dir, const std::filesystem::path& path,
                               const EntryVisitor& visit);

}  // namespace amld::daemon
