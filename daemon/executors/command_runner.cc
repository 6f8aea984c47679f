#include "daemon/executors/command_runner.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "base/file_util.h"

extern char** environ;

namespace amld::daemon {
namespace {

using base::ErrnoStatus;
using base::ScopedFd;

constexpr size_t kMaxCapture = 16 << 20;  // per stream; the rest is dropped

// Owns posix_spawn's attribute objects.
struct SpawnSetup {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  SpawnSetup() {
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attr);
  }
  ~SpawnSetup() {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
  }
};

// Reads both pipes until they close or `deadline` passes; false on timeout.
bool Drain(int out_fd, int err_fd, absl::Time deadline, std::string* out, std::string* err) {
  pollfd fds[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
  std::string* sinks[2] = {out, err};
  int open = 2;
  char buf[65536];
  while (open > 0) {
    absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return false;
    int ready = ::poll(fds, 2, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) continue;  // timeout is checked at the top
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n <= 0) {
        fds[i].fd = -1;
        --open;
        continue;
      }
      if (sinks[i]->size() < kMaxCapture) sinks[i]->append(buf, static_cast<size_t>(n));
    }
  }
  return true;
}

absl::StatusOr<CommandResult> RunCommandIn(const std::vector<std::string>& argv,
                                           absl::Duration timeout, char* const* envp);

}  // namespace

std::string CommandResult::Describe() const {
  std::string what =
      signal != 0 ? absl::StrCat("killed by signal ", signal) : absl::StrCat("exit code ", exit_code);
  absl::string_view text = absl::StripAsciiWhitespace(err.empty() ? out : err);
  if (!text.empty()) absl::StrAppend(&what, ": ", text);
  return what;
}

absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                         absl::Duration timeout) {
  return RunCommandIn(argv, timeout, environ);
}

absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                         absl::Duration timeout,
                                         const std::vector<std::string>& env) {
  std::vector<char*> envp;
  for (const std::string& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  return RunCommandIn(argv, timeout, envp.data());
}

namespace {

absl::StatusOr<CommandResult> RunCommandIn(const std::vector<std::string>& argv,
                                           absl::Duration timeout, char* const* envp) {
  if (argv.empty() || argv[0].empty()) return absl::InvalidArgumentError("empty command");
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe2", argv[0]);
  ScopedFd out_read(out_pipe[0]), out_write(out_pipe[1]);
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe2", argv[0]);
  ScopedFd err_read(err_pipe[0]), err_write(err_pipe[1]);

  SpawnSetup setup;
  posix_spawn_file_actions_addopen(&setup.actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&setup.actions, out_write.get(), 1);
  posix_spawn_file_actions_adddup2(&setup.actions, err_write.get(), 2);
  // No signal mask or ignored signal of the daemon carries over.
  posix_spawnattr_setflags(&setup.attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&setup.attr, &none);
  posix_spawnattr_setsigdefault(&setup.attr, &all);

  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  int spawn_err =
      ::posix_spawnp(&pid, argv[0].c_str(), &setup.actions, &setup.attr, args.data(), envp);
  out_write = ScopedFd();
  err_write = ScopedFd();
  if (spawn_err == ENOENT) {
    return absl::NotFoundError(
        absl::StrCat("cannot run ", argv[0], ": not found in PATH (is it installed here?)"));
  }
  if (spawn_err != 0) return ErrnoStatus(spawn_err, "run", argv[0]);

  CommandResult result;
  bool finished = Drain(out_read.get(), err_read.get(), absl::Now() + timeout, &result.out,
                        &result.err);
  if (!finished) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!finished) {
    return absl::DeadlineExceededError(absl::StrCat(absl::StrJoin(argv, " "),
                                                    " did not finish within ",
                                                    absl::FormatDuration(timeout), "; killed it"));
  }
  if (WIFSIGNALED(status)) {
    result.signal = WTERMSIG(status);
  } else {
    result.exit_code = WEXITSTATUS(status);
  }
  return result;
}

}  // namespace
}  // namespace amld::daemon
