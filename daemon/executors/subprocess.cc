#include "daemon/executors/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "daemon/executors/shim/take_account.h"

extern char** environ;

namespace amld::daemon {
namespace {

using base::ErrnoStatus;
using base::ScopedFd;

// argv[0] as execve needs it: a path; "" when PATH has no executable of
// that name.
std::string FindExecutable(const std::string& name) {
  if (absl::StrContains(name, "/")) return name;
  const char* path = std::getenv("PATH");
  for (absl::string_view dir : absl::StrSplit(path != nullptr ? path : "/usr/bin:/bin", ':')) {
    std::string candidate = absl::StrCat(dir.empty() ? "." : dir, "/", name);
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

// Owns the strings of a NULL-terminated char* array (argv, envp).
class CStringArray {
 public:
  explicit CStringArray(const std::vector<std::string>& strings) {
    for (const std::string& s : strings) ptrs_.push_back(const_cast<char*>(s.c_str()));
    ptrs_.push_back(nullptr);
  }
  char* const* get() const { return ptrs_.data(); }

 private:
  std::vector<char*> ptrs_;
};

// A descriptor the child gets as `target`, held by the parent above every
// target number, so no dup2 in the child can overwrite a source it still
// needs (the daemon's own stdio may be closed and reused by a pipe).
struct FdMove {
  ScopedFd source;
  int target = -1;
};

absl::Status AddMove(int fd, int target, int floor, std::vector<FdMove>* moves) {
  int high = ::fcntl(fd, F_DUPFD_CLOEXEC, floor);
  if (high < 0) return ErrnoStatus(errno, "dup", absl::StrCat("fd ", fd));
  moves->push_back({ScopedFd(high), target});
  return absl::OkStatus();
}

// All the child needs, prepared by the parent: after vfork the child only
// makes system calls (it shares the parent's memory and stack) until execve
// or _exit.
struct ChildPlan {
  const char* path = nullptr;
  char* const* argv = nullptr;
  char* const* envp = nullptr;
  const char* cwd = nullptr;
  std::vector<std::pair<int, int>> dups;  // {source, target}
  bool own_group = false;
  bool die_with_parent = false;
  pid_t parent = 0;
  const RunAs* run_as = nullptr;
  volatile int child_errno = 0;             // written by the child when it fails
  volatile bool account_not_taken = false;  // ... in TakeAccount
};

[[noreturn]] void ExecChild(ChildPlan& plan) {
  if (plan.run_as != nullptr) {
    const RunAs& a = *plan.run_as;
    const shim::TakeAccountResult taken =
        shim::TakeAccount(a.uid, a.gid, a.groups.data(), a.groups.size());
    // The uid change marked the memory undumpable, and it is the daemon's
    // memory until execve (take_account.h).
    ::prctl(PR_SET_DUMPABLE, 1);
    if (!taken.ok()) {
      plan.account_not_taken = true;
      plan.child_errno = taken.error != 0 ? taken.error : EPERM;
      ::_exit(127);
    }
  }
  // After TakeAccount, which clears the death signal.
  if (plan.die_with_parent) {
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != plan.parent) ::_exit(127);
  }
  struct sigaction dfl = {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) ::sigaction(sig, &dfl, nullptr);
  }
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  bool ok = !plan.own_group || ::setpgid(0, 0) == 0;
  ok = ok && (plan.cwd == nullptr || ::chdir(plan.cwd) == 0);
  for (size_t i = 0; ok && i < plan.dups.size(); ++i) {
    ok = ::dup2(plan.dups[i].first, plan.dups[i].second) >= 0;
  }
  if (ok) ::execve(plan.path, plan.argv, plan.envp);
  plan.child_errno = errno;
  ::_exit(127);
}

}  // namespace

int PidfdOpen(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

int PidfdSendSignal(int pidfd, int sig) {
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}

absl::StatusOr<Subprocess> Subprocess::Start(const SubprocessOptions& options) {
  if (options.argv.empty() || options.argv[0].empty()) {
    return absl::InvalidArgumentError("empty command");
  }
  const std::string& name = options.argv[0];
  const std::string path = FindExecutable(name);
  if (path.empty()) {
    return absl::NotFoundError(
        absl::StrCat("cannot run ", name, ": not found in PATH (is it installed here?)"));
  }
  CStringArray argv(options.argv);
  std::optional<CStringArray> env;
  if (options.env) env.emplace(*options.env);

  Subprocess child;
  int floor = 3;
  for (const auto& [fd, target] : options.extra_fds) floor = std::max(floor, target + 1);
  std::vector<FdMove> moves;
  ScopedFd null_fd;
  auto plan = [&](const Stdio& s, int target, ScopedFd* parent_end) -> absl::Status {
    int fd = -1;
    switch (s.kind) {
      case Stdio::Kind::kNull:
        if (!null_fd.valid()) null_fd = ScopedFd(::open("/dev/null", O_RDWR | O_CLOEXEC));
        if (!null_fd.valid()) return ErrnoStatus(errno, "open", "/dev/null");
        fd = null_fd.get();
        break;
      case Stdio::Kind::kPipe: {
        if (parent_end == nullptr) return absl::InvalidArgumentError("no pipe for stdin");
        int p[2];
        if (::pipe2(p, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe2", name);
        *parent_end = ScopedFd(p[0]);
        ScopedFd write_end(p[1]);
        return AddMove(write_end.get(), target, floor, &moves);
      }
      case Stdio::Kind::kFd:
        fd = s.fd;
        break;
      case Stdio::Kind::kAppendFile: {
        ScopedFd file(::open(s.path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644));
        if (!file.valid()) return ErrnoStatus(errno, "open", s.path);
        return AddMove(file.get(), target, floor, &moves);
      }
      case Stdio::Kind::kMemFile:
        if (!child.mem_.valid()) {
          child.mem_ = ScopedFd(::memfd_create("amld-child-output", MFD_CLOEXEC));
        }
        if (!child.mem_.valid()) return ErrnoStatus(errno, "memfd_create", name);
        fd = child.mem_.get();
        break;
    }
    return AddMove(fd, target, floor, &moves);
  };
  absl::Status planned = plan(options.in, STDIN_FILENO, nullptr);
  if (planned.ok()) planned = plan(options.out, STDOUT_FILENO, &child.out_);
  if (planned.ok()) planned = plan(options.err, STDERR_FILENO, &child.err_);
  for (const auto& [fd, target] : options.extra_fds) {
    if (planned.ok()) planned = AddMove(fd, target, floor, &moves);
  }
  if (!planned.ok()) return planned;
  ChildPlan child_plan;
  child_plan.path = path.c_str();
  child_plan.argv = argv.get();
  child_plan.envp = env ? env->get() : environ;
  child_plan.cwd = options.cwd.empty() ? nullptr : options.cwd.c_str();
  for (const FdMove& m : moves) child_plan.dups.emplace_back(m.source.get(), m.target);
  child_plan.own_group = options.new_process_group;
  child_plan.die_with_parent = options.die_with_parent;
  child_plan.parent = ::getpid();
  if (options.run_as) child_plan.run_as = &*options.run_as;

  // No signal handler of the daemon may run in the child before it has
  // reset them: block everything around vfork.
  sigset_t all, old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  pid_t pid = ::vfork();
  if (pid == 0) ExecChild(child_plan);
  const int vfork_errno = errno;
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (pid < 0) return ErrnoStatus(vfork_errno, "vfork", name);
  if (const int err = child_plan.child_errno; err != 0) {
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    if (child_plan.account_not_taken) {
      return ErrnoStatus(err,
                         absl::StrCat("take the uid and groups of ", options.run_as->user,
                                      " (uid ", options.run_as->uid, ") to run"),
                         name);
    }
    if (err == ENOENT || err == EACCES || err == ENOEXEC) {
      return absl::NotFoundError(
          absl::StrCat("cannot run ", path, ": ", ErrnoStatus(err, "exec", path).message()));
    }
    return ErrnoStatus(err, "start", path);
  }
  child.pid_ = pid;
  child.pidfd_ = ScopedFd(PidfdOpen(pid));
  if (!child.pidfd_.valid()) {
    const int saved = errno;
    return ErrnoStatus(saved, "pidfd_open", name);  // ~Subprocess kills and reaps it
  }
  return child;
}

Subprocess::Subprocess(Subprocess&& other) noexcept { *this = std::move(other); }

Subprocess& Subprocess::operator=(Subprocess&& other) noexcept {
  if (this != &other) {
    Reset();
    pid_ = other.pid_;
    other.pid_ = -1;
    pidfd_ = std::move(other.pidfd_);
    out_ = std::move(other.out_);
    err_ = std::move(other.err_);
    mem_ = std::move(other.mem_);
  }
  return *this;
}

Subprocess::~Subprocess() { Reset(); }

void Subprocess::Reset() {
  if (pid_ > 0) {
    Signal(SIGKILL);
    Wait();
  }
}

void Subprocess::Signal(int sig) {
  if (pid_ <= 0) return;
  if (pidfd_.valid()) {
    PidfdSendSignal(pidfd_.get(), sig);
  } else {
    ::kill(pid_, sig);
  }
}

int Subprocess::Wait() {
  int status = 0;
  if (pid_ <= 0) return status;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
  return status;
}

bool Subprocess::ReadPipesUntil(absl::Time deadline, std::string* out, std::string* err,
                                size_t limit) {
  ScopedFd* ends[2] = {&out_, &err_};
  std::string* sinks[2] = {out, err};
  char buf[65536];
  for (;;) {
    pollfd fds[2] = {{out_.get(), POLLIN, 0}, {err_.get(), POLLIN, 0}};
    if (fds[0].fd < 0 && fds[1].fd < 0) return true;
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return false;
    int ready = ::poll(fds, 2, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
    if (ready <= 0) continue;  // EINTR, or the deadline: checked at the top
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n <= 0) {
        *ends[i] = ScopedFd();
        continue;
      }
      if (sinks[i]->size() < limit) sinks[i]->append(buf, static_cast<size_t>(n));
    }
  }
}

std::string Subprocess::ReadMemFile() const {
  if (!mem_.valid()) return "";
  std::string text(64 << 10, '\0');
  ssize_t n = ::pread(mem_.get(), text.data(), text.size(), 0);
  text.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return text;
}

}  // namespace amld::daemon
