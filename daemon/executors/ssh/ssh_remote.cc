#include "daemon/executors/ssh/ssh_remote.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <system_error>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "base/file_util.h"
#include "base/shell_quote.h"

namespace amld::daemon {
namespace {

namespace fs = std::filesystem;

// sockaddr_un.sun_path holds 108 bytes with the NUL, and ssh binds the
// master's socket at ControlPath plus a 17-byte random suffix first.
constexpr size_t kMaxControlPath = 107 - 17;

// rsync exit codes that mean the transport failed: 10 socket I/O, 12
// protocol stream (what a failed ssh leaves), 30/35 timeouts, 255 ssh.
bool IsRsyncConnectionFailure(const CommandResult& r) {
  return r.signal == 0 && (r.exit_code == 10 || r.exit_code == 12 || r.exit_code == 30 ||
                           r.exit_code == 35 || r.exit_code == 255);
}

// FNV-1a: a stable name for the control socket across daemon restarts, so
// a restarted daemon reuses a master connection that is still open.
uint64_t StableHash(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

// `dir`, 0700, of the daemon's user or (run_as) of that account; with
// run_as its parent lets others through (0711) without listing it.
absl::Status MakePrivateDir(const fs::path& dir, const std::optional<RunAs>& run_as) {
  std::error_code ec;
  if (run_as) {
    fs::create_directories(dir.parent_path(), ec);
    if (ec) return amld::base::ErrnoStatus(ec.value(), "mkdir", dir.parent_path());
    if (::chmod(dir.parent_path().c_str(), 0711) != 0) {
      return amld::base::ErrnoStatus(errno, "chmod", dir.parent_path());
    }
    if (::mkdir(dir.c_str(), 0700) == 0) {
      if (::chown(dir.c_str(), run_as->uid, run_as->gid) != 0) {
        return amld::base::ErrnoStatus(errno, "chown", dir);
      }
    } else if (errno != EEXIST) {
      return amld::base::ErrnoStatus(errno, "mkdir", dir);
    }
  } else {
    fs::create_directories(dir, ec);
    if (ec) return amld::base::ErrnoStatus(ec.value(), "mkdir", dir);
  }
  const uid_t owner = run_as ? run_as->uid : ::geteuid();
  struct stat st;
  if (::lstat(dir.c_str(), &st) != 0) return amld::base::ErrnoStatus(errno, "stat", dir);
  if (!S_ISDIR(st.st_mode) || st.st_uid != owner) {
    return absl::FailedPreconditionError(absl::StrCat(
        dir.string(), " is not a folder owned by uid ", owner,
        "; remove it so amld can make its own"));
  }
  if ((st.st_mode & 077) != 0 && ::chmod(dir.c_str(), 0700) != 0) {
    return amld::base::ErrnoStatus(errno, "chmod", dir);
  }
  return absl::OkStatus();
}

// One word for rsync's -e parser, which splits on spaces and honours quotes.
std::string RsyncWord(const std::string& s) {
  if (s.find_first_of(" \t'\"\\") == std::string::npos) return s;
  return base::ShellQuote(s);
}

}  // namespace

absl::StatusOr<SshRemote> SshRemote::Create(SshRemoteOptions options) {
  if (options.endpoint.host.empty()) return absl::InvalidArgumentError("ssh target has no host");
  if (options.attempts < 1) options.attempts = 1;
  absl::Status made = MakePrivateDir(options.state_dir, options.run_as);
  if (!made.ok()) return made;
  SshRemote remote(std::move(options));
  const SshEndpoint& e = remote.options_.endpoint;
  // An account's own known_hosts (~/.ssh) is theirs to keep.
  if (!remote.options_.run_as) remote.known_hosts_ = remote.options_.state_dir / "known_hosts";
  const std::string socket_name = absl::StrFormat(
      "cm-%016x",
      StableHash(absl::StrCat(e.host, "\n", e.port, "\n", e.user, "\n", e.identity_file)));
  fs::path socket_dir = remote.options_.state_dir;
  if ((socket_dir / socket_name).string().size() > kMaxControlPath) {
    const std::optional<RunAs>& as = remote.options_.run_as;
    socket_dir = fs::path("/tmp") / absl::StrCat("amld-ssh-", as ? as->uid : ::geteuid());
    made = MakePrivateDir(socket_dir, as);
    if (!made.ok()) return made;
  }
  remote.control_path_ = socket_dir / socket_name;
  return remote;
}

std::string SshRemote::Describe() const {
  const SshEndpoint& e = options_.endpoint;
  std::string out = e.user.empty() ? e.host : absl::StrCat(e.user, "@", e.host);
  if (e.port != 0) absl::StrAppend(&out, ":", e.port);
  return out;
}

bool SshRemote::IsSshConnectionFailure(const CommandResult& r) {
  return r.signal == 0 && r.exit_code == 255;
}

std::vector<std::string> SshRemote::CommonOptions(bool multiplex) const {
  const SshEndpoint& e = options_.endpoint;
  std::vector<std::string> o = {"-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=accept-new"};
  if (!known_hosts_.empty()) {  // else the account's own (run_as)
    o.insert(o.end(), {"-o", absl::StrCat("UserKnownHostsFile=", known_hosts_.string())});
  }
  o.insert(o.end(), {
      "-o", absl::StrCat("ConnectTimeout=", absl::ToInt64Seconds(options_.connect_timeout)),
      "-o", "ServerAliveInterval=15",
      "-o", "ServerAliveCountMax=3",
      "-o", "LogLevel=ERROR",  // no banners or warnings mixed into messages
  });
  if (multiplex) {
    o.insert(o.end(),
             {"-o", "ControlMaster=auto", "-o",
              absl::StrCat("ControlPath=", control_path_.string()), "-o",
              absl::StrCat("ControlPersist=",
                           std::max<int64_t>(1, absl::ToInt64Seconds(options_.control_persist)))});
  } else {
    o.insert(o.end(), {"-o", "ControlMaster=no", "-o", "ControlPath=none"});
  }
  if (e.port != 0) o.insert(o.end(), {"-p", absl::StrCat(e.port)});
  if (!e.user.empty()) o.insert(o.end(), {"-l", e.user});
  if (!e.identity_file.empty()) {
    o.insert(o.end(), {"-i", e.identity_file, "-o", "IdentitiesOnly=yes"});
  }
  return o;
}

std::vector<std::string> SshRemote::SshArgv(const std::string& command, bool multiplex) const {
  std::vector<std::string> argv = {"ssh"};
  for (std::string& o : CommonOptions(multiplex)) argv.push_back(std::move(o));
  argv.insert(argv.end(), {options_.endpoint.host, "--", command});
  return argv;
}

std::string SshRemote::RsyncShell() const {
  std::string shell = "ssh";
  for (const std::string& o : CommonOptions(true)) absl::StrAppend(&shell, " ", RsyncWord(o));
  return shell;
}

std::string SshRemote::RsyncPath(const std::string& remote_path) const {
  const std::string& host = options_.endpoint.host;
  if (absl::StrContains(host, ":")) return absl::StrCat("[", host, "]:", remote_path);
  return absl::StrCat(host, ":", remote_path);
}

absl::StatusOr<CommandResult> SshRemote::WithRetries(const std::vector<std::string>& argv,
                                                     absl::Duration timeout, bool rsync) const {
  absl::Duration backoff = options_.backoff;
  for (int attempt = 1;; ++attempt) {
    absl::StatusOr<CommandResult> r = runner().Run(MakeCommand(argv, timeout));
    if (!r.ok()) return r;
    bool connection_failed = rsync ? IsRsyncConnectionFailure(*r) : IsSshConnectionFailure(*r);
    if (!connection_failed) return r;
    if (attempt >= options_.attempts) {
      std::string said(absl::StripAsciiWhitespace(r->err));
      if (said.empty()) said = r->Describe();
      return absl::UnavailableError(absl::StrCat("cannot reach ", Describe(), " (", attempt,
                                                 attempt == 1 ? " attempt" : " attempts",
                                                 "): ", said));
    }
    absl::SleepFor(backoff);
    backoff *= 2;
  }
}

absl::StatusOr<CommandResult> SshRemote::Run(const std::string& script,
                                             absl::Duration timeout) const {
  // The login shell may be any shell: hand the script to /bin/sh as one
  // quoted word, which every common login shell passes on unchanged.
  return WithRetries(SshArgv(absl::StrCat("exec /bin/sh -c ", base::ShellQuote(script))), timeout,
                     /*rsync=*/false);
}

absl::StatusOr<CommandResult> SshRemote::Rsync(const std::vector<std::string>& args,
                                               absl::Duration timeout) const {
  std::vector<std::string> argv = {"rsync", "-e", RsyncShell()};
  argv.insert(argv.end(), args.begin(), args.end());
  return WithRetries(argv, timeout, /*rsync=*/true);
}

absl::StatusOr<CommandResult> SshRemote::RunToFd(const std::string& command, int stdout_fd,
                                                 absl::Duration timeout) const {
  Command c = MakeCommand(SshArgv(command), timeout);
  c.stdout_fd = stdout_fd;
  return runner().Run(c);
}

absl::StatusOr<std::unique_ptr<RunningCommand>> SshRemote::Start(const std::string& command,
                                                                 int stdout_fd,
                                                                 bool multiplex) const {
  Command c = MakeCommand(SshArgv(command, multiplex), Command().timeout);  // not applied
  c.stdout_fd = stdout_fd;
  return runner().Start(c);
}

void SshRemote::CloseMaster() const {
  std::vector<std::string> argv = {"ssh"};
  for (std::string& o : CommonOptions(true)) argv.push_back(std::move(o));
  argv.insert(argv.end(), {"-O", "exit", options_.endpoint.host});
  (void)runner().Run(MakeCommand(std::move(argv), absl::Seconds(5)));
}

CommandRunner& SshRemote::runner() const {
  return options_.runner != nullptr ? *options_.runner : SystemCommandRunner();
}

Command SshRemote::MakeCommand(std::vector<std::string> argv, absl::Duration timeout) const {
  Command c(std::move(argv), timeout);
  c.run_as = options_.run_as;
  return c;
}

}  // namespace amld::daemon
