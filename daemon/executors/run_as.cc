#include "daemon/executors/run_as.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "base/file_util.h"

namespace amld::daemon {
namespace {

namespace fs = std::filesystem;
using base::ErrnoStatus;
using base::ScopedFd;

std::string Octal(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

}  // namespace

absl::StatusOr<RunAs> LookupAccount(uid_t uid) {
  long size = ::sysconf(_SC_GETPW_R_SIZE_MAX);
  std::string buf(static_cast<size_t>(size > 0 ? size : 16384), '\0');
  passwd pw;
  passwd* found = nullptr;
  int err;
  while ((err = ::getpwuid_r(uid, &pw, buf.data(), buf.size(), &found)) == ERANGE) {
    buf.resize(buf.size() * 2);
  }
  if (err != 0) return ErrnoStatus(err, "look up the account of uid", std::to_string(uid));
  if (found == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "uid ", uid, " has no account on this machine (no passwd entry); a system-mode daemon "
        "runs each run as its submitter's account"));
  }
  RunAs account;
  account.uid = pw.pw_uid;
  account.gid = pw.pw_gid;
  account.user = pw.pw_name;
  account.home = pw.pw_dir != nullptr ? pw.pw_dir : "/";
  account.shell = pw.pw_shell != nullptr && *pw.pw_shell != '\0' ? pw.pw_shell : "/bin/sh";
  int count = 32;
  std::vector<gid_t> groups(static_cast<size_t>(count));
  while (::getgrouplist(pw.pw_name, pw.pw_gid, groups.data(), &count) < 0) {
    groups.resize(static_cast<size_t>(count) + 32);
    count = static_cast<int>(groups.size());
  }
  groups.resize(static_cast<size_t>(count));
  account.groups = std::move(groups);
  return account;
}

bool InGroup(const RunAs& account, gid_t gid) {
  return account.gid == gid ||
         std::find(account.groups.begin(), account.groups.end(), gid) != account.groups.end();
}

void SetAccountEnvironment(const RunAs& account,
                           std::vector<std::pair<std::string, std::string>>* env) {
  // The account's own values replace these; the rest name root's places.
  const std::vector<std::string> dropped = {"XDG_RUNTIME_DIR", "XDG_DATA_HOME", "XDG_CONFIG_HOME",
                                            "XDG_CACHE_HOME",  "XDG_STATE_HOME", "MAIL",
                                            "HOME",            "USER",           "LOGNAME",
                                            "SHELL"};
  env->erase(std::remove_if(env->begin(), env->end(),
                            [&](const auto& entry) {
                              return std::find(dropped.begin(), dropped.end(), entry.first) !=
                                     dropped.end();
                            }),
             env->end());
  env->emplace_back("HOME", account.home.string());
  env->emplace_back("USER", account.user);
  env->emplace_back("LOGNAME", account.user);
  env->emplace_back("SHELL", account.shell);
  std::sort(env->begin(), env->end());
}

absl::Status CheckAccountMay(const RunAs& account, const fs::path& file, int access) {
  // Whether the bits of `st` that apply to `account` (owner, else group,
  // else others) include the owner's `bit` shifted to that class.
  auto allowed = [&](const struct stat& st, mode_t bit) {
    const int shift = st.st_uid == account.uid ? 0 : InGroup(account, st.st_gid) ? 3 : 6;
    return (st.st_mode & (bit >> shift)) != 0;
  };
  const fs::path absolute = file.lexically_normal();
  fs::path at = absolute.root_path();
  struct stat st;
  for (const fs::path& part : absolute.relative_path()) {
    if (::stat(at.c_str(), &st) != 0) return ErrnoStatus(errno, "stat", at);
    if (!allowed(st, S_IXUSR)) {
      return absl::FailedPreconditionError(absl::StrCat(
          account.user, " cannot reach ", file.string(), ": the folder ", at.string(),
          " is closed to them (mode ", Octal(st.st_mode), "); keep what their runs use where "
          "every user can reach it (amld itself: install it, e.g. `make install` to /usr/local)"));
    }
    at /= part;
  }
  if (::stat(at.c_str(), &st) != 0) return ErrnoStatus(errno, "stat", at);
  const bool execute = access == X_OK;
  if (!allowed(st, execute ? S_IXUSR : S_IRUSR)) {
    return absl::FailedPreconditionError(absl::StrCat(
        account.user, " may not ", execute ? "execute " : "read ", at.string(), " (mode ",
        Octal(st.st_mode), ", owner uid ", st.st_uid, "): ",
        execute ? "make it executable by every user (chmod a+rx)"
                : "give them a file of their own, or read access to this one"));
  }
  return absl::OkStatus();
}

absl::Status ForEachEntryBelow(int dir, const fs::path& path, const EntryVisitor& visit) {
  ScopedFd walk(::dup(dir));
  if (!walk.valid()) return ErrnoStatus(errno, "dup", path);
  DIR* d = ::fdopendir(walk.get());
  if (d == nullptr) return ErrnoStatus(errno, "opendir", path);
  (void)walk.release();  // owned by d now
  absl::Status status;
  while (status.ok()) {
    errno = 0;
    const dirent* e = ::readdir(d);
    if (e == nullptr) {
      if (errno != 0) status = ErrnoStatus(errno, "readdir", path);
      break;
    }
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    status = visit(dir, name, path / name);
    if (!status.ok() || (e->d_type != DT_DIR && e->d_type != DT_UNKNOWN)) continue;
    ScopedFd sub(::openat(dir, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!sub.valid()) {
      if (errno == ENOTDIR || errno == ELOOP) continue;  // DT_UNKNOWN that was no folder
      status = ErrnoStatus(errno, "open", path / name);
      break;
    }
    status = ForEachEntryBelow(sub.get(), path / name, visit);
  }
  ::closedir(d);
  return status;
}

absl::Status GiveTreeTo(const fs::path& root, uid_t uid, gid_t gid) {
  ScopedFd dir(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dir.valid()) return ErrnoStatus(errno, "open", root);
  absl::Status s = ForEachEntryBelow(
      dir.get(), root, [&](int parent, const std::string& name, const fs::path& path) {
        if (::fchownat(parent, name.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW) != 0) {
          return ErrnoStatus(errno, "chown", path);
        }
        return absl::OkStatus();
      });
  if (!s.ok()) return s;
  if (::fchown(dir.get(), uid, gid) != 0) return ErrnoStatus(errno, "chown", root);
  if (::fchmod(dir.get(), 0700) != 0) return ErrnoStatus(errno, "chmod", root);
  return absl::OkStatus();
}

}  // namespace amld::daemon
