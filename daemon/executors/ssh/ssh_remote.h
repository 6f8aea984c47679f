// SshRemote: how the SSH executor talks to one host — OpenSSH's `ssh` and
// `rsync -e ssh` with one set of options, so every call shares one
// connection:
//   -o BatchMode=yes                  keys only; never a password prompt
//   -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile=<state>/known_hosts
//                                     a new host's key is learned on first
//                                     contact, a changed one is refused
//   -o ControlMaster=auto -o ControlPath=<state>/cm-<hash> -o ControlPersist=...
//                                     the first call opens a master
//                                     connection that later calls reuse
//                                     (~15 ms instead of ~300 ms per call)
//   -o ConnectTimeout, ServerAliveInterval/CountMax
//                                     a dead host or link is noticed
//   -p PORT -l USER -i KEY -o IdentitiesOnly=yes   from the target
// The user's ~/.ssh/config still applies (Host aliases, ProxyJump, ...);
// these options take precedence.
//
// With `run_as` (a system-mode daemon, one SshRemote per submitter) every
// ssh and rsync runs as that account (command_runner.h): their ~/.ssh keys,
// agent-less, their ~/.ssh/config and their own ~/.ssh/known_hosts (no
// UserKnownHostsFile option), the control socket in a folder of theirs.
//
// Connection failures (ssh exits 255, rsync's connection codes) are retried
// a bounded number of times with doubling backoff; after the last attempt
// the result is UNAVAILABLE carrying ssh's own message, e.g.
// "ssh: connect to host 10.0.0.5 port 22: Connection refused". A remote
// command that ran and failed is not retried: its CommandResult is returned.
//
// Every call goes through the CommandRunner it is given, so tests fake the
// host.
//
// Thread-safety: thread-safe (immutable after construction; each call owns
// its processes).
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/executors/command_runner.h"

namespace amld::daemon {

struct SshEndpoint {
  std::string host;
  int port = 0;               // 0: ssh's default
  std::string user;           // empty: ssh's default
  std::string identity_file;  // empty: ssh's defaults and agent
};

struct SshRemoteOptions {
  SshEndpoint endpoint;
  // Folder (made 0700 if missing) for known_hosts and the control socket.
  // Unix socket paths are limited to 107 bytes: when this folder's path is
  // too long, the socket goes to /tmp/amld-ssh-<uid>/ instead.
  std::filesystem::path state_dir;
  absl::Duration connect_timeout = absl::Seconds(10);
  // How long an idle master connection stays open.
  absl::Duration control_persist = absl::Minutes(10);
  // Attempts per call when the connection fails, and the first backoff
  // (doubled after each failed attempt).
  int attempts = 3;
  absl::Duration backoff = absl::Seconds(1);
  // Runs ssh and rsync; not owned, must outlive the SshRemote. Null: the
  // system's (SystemCommandRunner).
  CommandRunner* runner = nullptr;
  // Run every call as this account (see above); state_dir is made theirs
  // (0700) below a parent that only lets them through (0711).
  std::optional<RunAs> run_as;
};

class SshRemote {
 public:
  // INVALID_ARGUMENT for an empty host; the state folder's error.
  static absl::StatusOr<SshRemote> Create(SshRemoteOptions options);

  // "user@host:port" as far as known ("host" alone with defaults).
  std::string Describe() const;
  const SshEndpoint& endpoint() const { return options_.endpoint; }

  // `ssh <options> HOST -- <command>`; the command is run by the login
  // shell, so keep it POSIX sh (or wrap it: base::ShellQuote + "sh -c"). With
  // `multiplex` false the call opens a connection of its own (for
  // long-lived sessions: hosts limit sessions per connection, MaxSessions).
  std::vector<std::string> SshArgv(const std::string& command, bool multiplex = true) const;
  // The -e value for rsync: the ssh command with the same options.
  std::string RsyncShell() const;
  // "host:path" for rsync ("[v6addr]:path" for IPv6 addresses).
  std::string RsyncPath(const std::string& remote_path) const;

  // Runs `script` with /bin/sh on the host (retried on connection failure,
  // see above; DEADLINE_EXCEEDED after `timeout` per attempt).
  absl::StatusOr<CommandResult> Run(const std::string& script, absl::Duration timeout) const;
  // Runs `command` (a POSIX sh command line) on the host with its stdout
  // going to `stdout_fd`, once (no retries: the caller knows how far the
  // output got), killed after `timeout`.
  absl::StatusOr<CommandResult> RunToFd(const std::string& command, int stdout_fd,
                                        absl::Duration timeout) const;
  // Starts `command` on the host with its stdout going to `stdout_fd`, for
  // as long as it runs (a log follower); see SshArgv for `multiplex`.
  absl::StatusOr<std::unique_ptr<RunningCommand>> Start(const std::string& command, int stdout_fd,
                                                        bool multiplex) const;
  // Runs `rsync -e <RsyncShell()> ARGS...` (retried likewise).
  absl::StatusOr<CommandResult> Rsync(const std::vector<std::string>& args,
                                      absl::Duration timeout) const;
  // Closes the master connection, if one is open (best effort).
  void CloseMaster() const;

  // True when an exit code of ssh means the connection failed, not the
  // remote command.
  static bool IsSshConnectionFailure(const CommandResult& r);

 private:
  explicit SshRemote(SshRemoteOptions options) : options_(std::move(options)) {}
  std::vector<std::string> CommonOptions(bool multiplex) const;
  absl::StatusOr<CommandResult> WithRetries(const std::vector<std::string>& argv,
                                            absl::Duration timeout, bool rsync) const;

  CommandRunner& runner() const;
  // A command of this remote: as run_as, when set.
  Command MakeCommand(std::vector<std::string> argv, absl::Duration timeout) const;

  SshRemoteOptions options_;
  std::filesystem::path known_hosts_;
  std::filesystem::path control_path_;
};

}  // namespace amld::daemon
