// Subprocess: the one way the daemon starts a child process (ninja's
// src/subprocess.h is the model) — amld-shim for local runs, and through
// CommandRunner (command_runner.h) ssh, rsync and Slurm's clients.
//
// Start() uses vfork + execve: the parent thread is suspended until the
// child has exec'd (or failed to), so starting costs about what
// posix_spawn costs (no page-table copy), and an exec failure comes back as
// an error of Start, not as a child that exits 127. vfork rather than
// posix_spawn because a child may have to die with the thread that started
// it (die_with_parent: PR_SET_PDEATHSIG, which posix_spawn cannot set).
// Every child gets:
//   - a clean signal state: all signals unblocked and at their default
//     action (nothing of the daemon's mask or ignored SIGPIPE carries over);
//   - stdin, stdout and stderr as asked (Stdio), extra descriptors dup2'd to
//     the numbers asked, and nothing else of the daemon's (everything the
//     daemon opens is O_CLOEXEC);
//   - exactly `env` when given, else the daemon's environment.
//
// Thread-safety: Start is thread-safe. A Subprocess is used by one thread
// at a time.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/file_util.h"
#include "daemon/executors/run_as.h"

namespace amld::daemon {

// What one of the child's stdin/stdout/stderr is.
struct Stdio {
  enum class Kind { kNull, kPipe, kFd, kAppendFile, kMemFile };
  Kind kind = Kind::kNull;
  int fd = -1;                 // kFd: the daemon's descriptor, dup2'd
  std::filesystem::path path;  // kAppendFile: opened O_WRONLY|O_APPEND|O_CREAT 0644

  static Stdio Null() { return Stdio(); }
  // A pipe to the daemon (Subprocess::stdout_fd() / stderr_fd(); for stdin
  // not supported).
  static Stdio Pipe() { return Stdio(Kind::kPipe); }
  static Stdio Fd(int fd) {
    Stdio s(Kind::kFd);
    s.fd = fd;
    return s;
  }
  static Stdio AppendTo(std::filesystem::path path) {
    Stdio s(Kind::kAppendFile);
    s.path = std::move(path);
    return s;
  }
  // An anonymous in-memory file (memfd) the daemon reads after the exit
  // (Subprocess::ReadMemFile): output that never has to be drained while
  // the child runs. Small output only (error messages).
  static Stdio MemFile() { return Stdio(Kind::kMemFile); }

  Stdio() = default;

 private:
  explicit Stdio(Kind k) : kind(k) {}
};

struct SubprocessOptions {
  // argv[0] is looked up in the daemon's PATH when it has no '/'.
  std::vector<std::string> argv;
  // "NAME=value" entries: exactly the child's environment. nullopt: the
  // daemon's.
  std::optional<std::vector<std::string>> env;
  std::filesystem::path cwd;  // empty: the daemon's
  Stdio in = Stdio::Null();   // kNull or kFd
  Stdio out = Stdio::Null();
  Stdio err = Stdio::Null();
  // {daemon fd, child fd}: dup2'd after stdio (e.g. amld-shim's report pipe
  // on fd 3).
  std::vector<std::pair<int, int>> extra_fds;
  // Its own process group (signals for the daemon's group, a Ctrl-C, miss
  // it).
  bool new_process_group = false;
  // SIGTERM when the thread that started it ends (also when the daemon is
  // killed): for children that write into the daemon's files.
  bool die_with_parent = false;
  // Run it as this account (a system-mode daemon, as root, running a
  // command for a run's submitter): its uid, primary gid and supplementary
  // groups, taken in the child before anything else (shim/take_account.h).
  // The environment is `env` as given: set the account's HOME and USER there.
  std::optional<RunAs> run_as;
};

class Subprocess {
 public:
  // NOT_FOUND when argv[0] cannot be found or executed (naming it);
  // the errno's status for other failures (a bad cwd, a missing file).
  static absl::StatusOr<Subprocess> Start(const SubprocessOptions& options);

  Subprocess(Subprocess&& other) noexcept;
  Subprocess& operator=(Subprocess&& other) noexcept;
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;
  // A child not yet waited for is killed (SIGKILL) and reaped.
  ~Subprocess();

  pid_t pid() const { return pid_; }
  // Readable once the child has exited (a pidfd; Linux >= 5.3).
  int exit_fd() const { return pidfd_.get(); }
  // The daemon's ends of Stdio::Pipe() streams (-1 otherwise), O_CLOEXEC.
  int stdout_fd() const { return out_.get(); }
  int stderr_fd() const { return err_.get(); }

  // Sends `sig` (through the pidfd, so never to a reused pid).
  void Signal(int sig);
  // Waits for the exit and reaps the child; its wait status (waitpid).
  int Wait();
  // Reads both Stdio::Pipe() streams until they close or `deadline`
  // passes (false then), keeping at most `limit` bytes of each.
  bool ReadPipesUntil(absl::Time deadline, std::string* out, std::string* err,
                      size_t limit = 16 << 20);
  // What the child wrote to its Stdio::MemFile() stream(s) ("" otherwise);
  // at most 64 KiB.
  std::string ReadMemFile() const;

 private:
  Subprocess() = default;
  void Reset();

  pid_t pid_ = -1;
  base::ScopedFd pidfd_;
  base::ScopedFd out_, err_;
  base::ScopedFd mem_;
};

// pidfd_open(2) and pidfd_send_signal(2) (glibc 2.36 has no wrappers): a
// pidfd names one process for good, so a signal never reaches a reused pid.
// -1 with errno set on failure.
int PidfdOpen(pid_t pid);
int PidfdSendSignal(int pidfd, int sig);

}  // namespace amld::daemon
