// amld-shim: the supervisor of one local run (protocol: shim_protocol.h).
//
// It is started by the local executor in a process group of its own, forks
// once more so that it is no longer the daemon's child (the daemon may be
// killed or restarted while the run goes on), and becomes a child subreaper
// so that every descendant of the run ends up as its child when its parent
// dies. Then it starts the run's process in a new process group, reports
// back, and moves into a session of its own (setsid). It waits for the
// process, delivers cancel and the deadline as SIGTERM → grace → SIGKILL to
// the group, and once the group leader has exited kills whatever is left of
// the run, waits until nothing is left, and writes exit.json: whole, fsynced,
// then renamed, or not at all; on a full disk it keeps trying (backing off to
// 10 s) until space returns, since the exit code exists nowhere else.
//
// --foreground (the Slurm executor: the shim is the task srun starts on a
// node): no fork, no report on fd 3, no new session — the shim stays the
// task, so Slurm's signals (scancel, time limit) reach it and the job step
// lasts as long as the run; it exits with the run's status (the exit code,
// or 128 + the signal), so Slurm's own record agrees with exit.json.
//
// --uid=U --gid=G --groups=G1,G2 (a system-mode daemon, running as root,
// starting a run as its submitter): before anything else the shim takes
// that identity for good (setgroups, setresgid, setresuid), so the
// supervisor, the run and every file either creates belong to the
// submitter; it refuses to go on if any id did not change.
//
// It is on the submit → first-instruction path, so it is a static binary
// that touches only libc: single-threaded, signals handled synchronously
// with sigtimedwait (no handlers, no self-pipe). setsid comes only after the
// run's process is started because with CONFIG_SCHED_AUTOGROUP (on in most
// distributions) a new session is a new scheduling group, and on a busy
// machine its first time slice comes late (measured on a 2-core VM at load
// 7-8: median Launch → first instruction 12-19 ms with setsid first,
// 1.5-2 ms with setsid last).
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/executors/shim/shim_protocol.h"
#include "daemon/executors/shim/static_flags.h"
#include "daemon/executors/shim/take_account.h"

extern char** environ;

namespace amld::daemon::shim {
namespace {

struct Options {
  std::string run_dir;
  int64_t max_duration_ns = 0;  // 0: no deadline
  int64_t grace_ns = 10'000'000'000;
  bool foreground = false;
  // The identity to take (system mode); uid -1: keep the caller's.
  int64_t uid = -1;
  int64_t gid = -1;
  std::vector<gid_t> groups;
  std::vector<char*> argv;  // null-terminated
};

int64_t NowNs(clockid_t clock) {
  timespec ts;
  ::clock_gettime(clock, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// One line on stderr, which is system_logs/amld-shim.log.
void Log(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void Log(const char* fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  // A time a person reads: local, with its offset, as the daemon's own log.
  const int64_t now = NowNs(CLOCK_REALTIME);
  const time_t secs = static_cast<time_t>(now / 1'000'000'000);
  struct tm local;
  char date[32] = "?", zone[8] = "";
  if (::localtime_r(&secs, &local) != nullptr) {
    std::strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S", &local);
    std::strftime(zone, sizeof zone, "%z", &local);
  }
  std::fprintf(stderr, "%s.%03lld %s amld-shim[%d]: %s\n", date,
               static_cast<long long>(now / 1'000'000 % 1000), zone, static_cast<int>(::getpid()),
               msg);
}

// False (errno set) when a write fails.
bool WriteAllFd(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Writing exit.json on a full disk is retried after these pauses, doubling.
constexpr int64_t kFirstExitRetryNs = 100'000'000;
constexpr int64_t kLastExitRetryNs = 10'000'000'000;

// Set by --foreground, before anything can fail after option parsing.
bool g_foreground = false;

// Reports a failure to start the run to the executor and exits; no exit
// file is written because the run never started.
[[noreturn]] void FailToStart(const std::string& message) {
  Log("cannot start the run: %s", message.c_str());
  if (!g_foreground) (void)WriteAllFd(kReadyFd, "error " + message + "\n");
  ::_exit(1);
}

std::string ErrnoMessage(const std::string& what, int err) {
  return what + ": " + std::strerror(err);
}

Options ParseOptions(int argc, char** argv) {
  Options o;
  int i = 1;
  for (; i < argc; ++i) {
    std::string_view arg = argv[i];
    auto value_of = [&](std::string_view flag) { return FlagValue(argv[i], flag); };
    if (arg == "--") {
      ++i;
      break;
    } else if (const char* v = value_of("--run-dir=")) {
      o.run_dir = v;
    } else if (const char* v = value_of("--max-duration-ns=")) {
      if (!ParseNonNegative(v, &o.max_duration_ns))
        FailToStart("bad --max-duration-ns: " + std::string(v));
    } else if (const char* v = value_of("--grace-ns=")) {
      if (!ParseNonNegative(v, &o.grace_ns)) FailToStart("bad --grace-ns: " + std::string(v));
    } else if (const char* v = value_of("--uid=")) {
      if (!ParseNonNegative(v, &o.uid)) FailToStart("bad --uid: " + std::string(v));
    } else if (const char* v = value_of("--gid=")) {
      if (!ParseNonNegative(v, &o.gid)) FailToStart("bad --gid: " + std::string(v));
    } else if (const char* v = value_of("--groups=")) {
      std::string list = v;
      for (size_t start = 0; start < list.size();) {
        size_t comma = list.find(',', start);
        if (comma == std::string::npos) comma = list.size();
        std::string one = list.substr(start, comma - start);
        int64_t g = 0;
        if (!ParseNonNegative(one.c_str(), &g)) FailToStart("bad --groups: " + list);
        o.groups.push_back(static_cast<gid_t>(g));
        start = comma + 1;
      }
    } else if (arg == "--foreground") {
      o.foreground = g_foreground = true;
    } else {
      FailToStart("unknown argument: " + std::string(arg));
    }
  }
  if (o.run_dir.empty() || o.run_dir[0] != '/') FailToStart("--run-dir must be an absolute path");
  if (i >= argc) FailToStart("no command after --");
  if ((o.uid < 0) != (o.gid < 0)) FailToStart("--uid and --gid go together");
  o.argv.assign(argv + i, argv + argc);
  o.argv.push_back(nullptr);
  return o;
}

// The signals the supervisor waits for; blocked from the first instruction
// so that a cancel can never kill the supervisor itself.
sigset_t SupervisorSignals() {
  sigset_t set;
  sigemptyset(&set);
  for (int sig : {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGPIPE}) sigaddset(&set, sig);
  return set;
}

// Takes the run's identity (see the file comment); exits through
// FailToStart when any part of it fails.
void BecomeRunUser(const Options& o) {
  if (o.uid < 0) return;
  const uid_t uid = static_cast<uid_t>(o.uid);
  const gid_t gid = static_cast<gid_t>(o.gid);
  const TakeAccountResult taken = TakeAccount(uid, gid, o.groups.data(), o.groups.size());
  if (!taken.ok()) {
    FailToStart(taken.error != 0 ? ErrnoMessage(taken.failed_step, taken.error)
                                 : "the run's uid and gid did not take");
  }
  // setresuid left the process undumpable (its /proc entries root's); it is
  // the user's own supervisor, so let its user see it as any of theirs.
  ::prctl(PR_SET_DUMPABLE, 1);
}

class Supervisor {
 public:
  explicit Supervisor(Options options) : o_(std::move(options)) {}

  int Run() {
    StartProcess();
    WaitForLeader();
    KillEverythingLeft();
    bool written = WriteExitFile();
    if (!o_.foreground) return written ? 0 : 1;
    return record_.signal != 0 ? 128 + record_.signal : record_.exit_code;
  }

 private:
  enum class Reason { kCanceled, kTimedOut };

  void StartProcess();
  // noinline: its locals must live in a frame below StartProcess's, which
  // the suspended parent still owns.
  [[noreturn]] __attribute__((noinline)) void ExecInChild(pid_t supervisor);
  [[noreturn]] void ChildFail(const char* stage, const char* what, int err);
  void WaitForLeader();
  void ReapChildren();
  void OnLeaderExit();
  void BeginTermination(Reason reason);
  void CheckDeadlines();
  void KillEverythingLeft();
  bool KillListedChildren();
  bool WriteExitFile();
  int TryWriteExitFile();

  Options o_;
  int log_fd_ = -1;
  int null_fd_ = -1;
  std::string wd_;
  // Written by the vfork child (shared memory) when chdir or exec fails;
  // read after vfork returns, i.e. after the child exec'd or exited.
  volatile int child_errno_ = 0;
  const char* volatile child_stage_ = nullptr;  // "chdir" or "exec"
  const char* volatile child_what_ = nullptr;   // the folder or argv[0]
  pid_t leader_ = -1;                           // also the process group id
  int64_t start_mono_ns_ = 0;
  bool leader_exited_ = false;
  bool terminating_ = false;
  bool killed_ = false;
  int64_t kill_deadline_mono_ns_ = 0;
  ExitRecord record_;
};

void Supervisor::StartProcess() {
  std::string log_path = o_.run_dir + "/" + kStdLogPath;
  log_fd_ = ::open(log_path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (log_fd_ < 0) FailToStart(ErrnoMessage("open " + log_path, errno));
  null_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null_fd_ < 0) FailToStart(ErrnoMessage("open /dev/null", errno));
  wd_ = o_.run_dir + "/wd";

  pid_t self = ::getpid();
  record_.start_time_ns = NowNs(CLOCK_REALTIME);
  start_mono_ns_ = NowNs(CLOCK_MONOTONIC);
  // vfork: the child runs at once while this process waits for its exec,
  // instead of queueing behind other work on a busy machine.
  pid_t pid = ::vfork();
  if (pid < 0) FailToStart(ErrnoMessage("vfork", errno));
  if (pid == 0) ExecInChild(self);
  leader_ = pid;
  ::close(null_fd_);
  ::close(log_fd_);
  if (child_stage_ != nullptr) {
    record_.launch_error =
        std::string(child_stage_) + " " + child_what_ + ": " + std::strerror(child_errno_);
  }

  if (o_.foreground) return;  // nobody to report to, no session to leave
  std::optional<uint64_t> start_time = ReadProcessStartTime(0);
  if (!start_time) FailToStart("cannot read /proc/self/stat");
  char ready[96];
  std::snprintf(ready, sizeof ready, "ok %d %llu\n", static_cast<int>(self),
                static_cast<unsigned long long>(*start_time));
  (void)WriteAllFd(kReadyFd, ready);  // EPIPE (daemon gone) is fine: SIGPIPE is blocked
  ::close(kReadyFd);
  // Out of the daemon's session: nothing sent to it (a terminal hangup)
  // reaches the supervisor. Cannot fail: this process leads no group.
  ::setsid();
}

// Runs in the vfork child, sharing the supervisor's memory: system calls
// and stack buffers only, no allocation, never returns.
void Supervisor::ExecInChild(pid_t supervisor) {
  ::setpgid(0, 0);
  // If the supervisor dies (it should not), the run must not go on unwatched.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != supervisor) ::_exit(127);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::dup2(null_fd_, STDIN_FILENO);
  ::dup2(log_fd_, STDOUT_FILENO);
  ::dup2(log_fd_, STDERR_FILENO);
  if (::chdir(wd_.c_str()) != 0) ChildFail("chdir", wd_.c_str(), errno);
  ::execvpe(o_.argv[0], o_.argv.data(), environ);
  ChildFail("exec", o_.argv[0], errno);
}

void Supervisor::ChildFail(const char* stage, const char* what, int err) {
  child_errno_ = err;
  child_stage_ = stage;
  child_what_ = what;
  // "amld-shim: exec <argv0>: <strerror>\n" into the run's log.
  char line[4096];
  size_t len = 0;
  const char* parts[] = {"amld-shim: ", stage, " ", what, ": ", ::strerror(err), "\n"};
  for (const char* part : parts) {
    size_t n = std::min(std::strlen(part), sizeof line - 1 - len);
    std::memcpy(line + len, part, n);
    len += n;
  }
  if (line[len - 1] != '\n') line[len - 1] = '\n';
  ::write(STDERR_FILENO, line, len);
  ::_exit(127);
}

void Supervisor::WaitForLeader() {
  sigset_t set = SupervisorSignals();
  while (!leader_exited_) {
    int64_t next = INT64_MAX;
    if (o_.max_duration_ns > 0 && !terminating_) next = start_mono_ns_ + o_.max_duration_ns;
    if (terminating_ && !killed_) next = std::min(next, kill_deadline_mono_ns_);
    siginfo_t info;
    int sig;
    if (next == INT64_MAX) {
      sig = ::sigwaitinfo(&set, &info);
    } else {
      int64_t wait_ns = std::max<int64_t>(0, next - NowNs(CLOCK_MONOTONIC));
      timespec ts{static_cast<time_t>(wait_ns / 1'000'000'000),
                  static_cast<long>(wait_ns % 1'000'000'000)};
      sig = ::sigtimedwait(&set, &info, &ts);
    }
    if (sig == SIGTERM || sig == SIGINT) {
      Log("received signal %d from pid %d: canceling", sig, static_cast<int>(info.si_pid));
      BeginTermination(Reason::kCanceled);
    } else if (sig == SIGCHLD) {
      ReapChildren();
    }
    if (!leader_exited_) CheckDeadlines();
  }
}

// Reaps every exited child without ever reaping the leader unnoticed: its
// zombie keeps the process group id reserved until the group is killed.
void Supervisor::ReapChildren() {
  for (;;) {
    siginfo_t info{};
    if (::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid == 0) return;
    if (info.si_pid == leader_) {
      OnLeaderExit();
    } else {
      ::waitpid(info.si_pid, nullptr, 0);
    }
  }
}

void Supervisor::OnLeaderExit() {
  record_.end_time_ns = NowNs(CLOCK_REALTIME);
  ::kill(-leader_, SIGKILL);  // background processes die with the run
  int status = 0;
  while (::waitpid(leader_, &status, 0) < 0 && errno == EINTR) {
  }
  leader_exited_ = true;
  if (WIFSIGNALED(status)) {
    record_.signal = WTERMSIG(status);
  } else {
    record_.exit_code = WEXITSTATUS(status);
  }
  Log("process %d ended: exit_code=%d signal=%d%s", static_cast<int>(leader_), record_.exit_code,
      record_.signal, record_.launch_error.empty() ? "" : " (could not start)");
}

void Supervisor::BeginTermination(Reason reason) {
  if (terminating_) return;
  terminating_ = true;
  if (reason == Reason::kCanceled) {
    record_.canceled = true;
  } else {
    record_.timed_out = true;
    Log("max duration of %lld ms passed", static_cast<long long>(o_.max_duration_ns / 1'000'000));
  }
  Log("sending SIGTERM to process group %d; SIGKILL in %lld ms", static_cast<int>(leader_),
      static_cast<long long>(o_.grace_ns / 1'000'000));
  ::kill(-leader_, SIGTERM);
  kill_deadline_mono_ns_ = NowNs(CLOCK_MONOTONIC) + o_.grace_ns;
}

void Supervisor::CheckDeadlines() {
  int64_t now = NowNs(CLOCK_MONOTONIC);
  if (o_.max_duration_ns > 0 && !terminating_ && now >= start_mono_ns_ + o_.max_duration_ns) {
    BeginTermination(Reason::kTimedOut);
  }
  if (terminating_ && !killed_ && now >= kill_deadline_mono_ns_) {
    Log("grace period over: sending SIGKILL to process group %d", static_cast<int>(leader_));
    ::kill(-leader_, SIGKILL);
    killed_ = true;
  }
}

// Descendants that left the process group (setsid, setpgid) are reparented
// to this subreaper when their parent dies; kill them until no child is left.
void Supervisor::KillEverythingLeft() {
  for (;;) {
    bool any = KillListedChildren();
    pid_t pid = ::waitpid(-1, nullptr, 0);
    if (pid < 0 && errno == EINTR) continue;
    if (pid < 0) {
      if (any) Log("killed processes that had left the run's process group");
      return;
    }
  }
}

// SIGKILLs every current child; true when there was one.
bool Supervisor::KillListedChildren() {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/task/%d/children", static_cast<int>(::getpid()),
                static_cast<int>(::getpid()));
  FILE* f = std::fopen(path, "re");
  if (f == nullptr) return false;  // kernel without CONFIG_PROC_CHILDREN
  bool any = false;
  int pid;
  while (std::fscanf(f, "%d", &pid) == 1) {
    ::kill(pid, SIGKILL);
    any = true;
  }
  std::fclose(f);
  return any;
}

bool Supervisor::WriteExitFile() {
  rusage usage{};
  ::getrusage(RUSAGE_CHILDREN, &usage);
  auto ns = [](const timeval& tv) {
    return static_cast<int64_t>(tv.tv_sec) * 1'000'000'000 + tv.tv_usec * 1000;
  };
  record_.user_cpu_ns = ns(usage.ru_utime);
  record_.system_cpu_ns = ns(usage.ru_stime);
  record_.max_rss_kb = usage.ru_maxrss;

  // The exit code exists only here: on a full disk keep trying until space
  // returns (the run stays RUNNING meanwhile, and ends by itself after);
  // other errors (the run folder removed) end the supervisor without it.
  int64_t backoff_ns = kFirstExitRetryNs;
  for (;;) {
    const int err = TryWriteExitFile();
    if (err == 0) return true;
    if (err != ENOSPC && err != EDQUOT) return false;
    Log("no space to write %s; trying again in %lld ms", kExitFileName,
        static_cast<long long>(backoff_ns / 1'000'000));
    timespec pause = {static_cast<time_t>(backoff_ns / 1'000'000'000),
                      static_cast<long>(backoff_ns % 1'000'000'000)};
    while (::nanosleep(&pause, &pause) != 0 && errno == EINTR) {
    }
    backoff_ns = std::min(backoff_ns * 2, kLastExitRetryNs);
  }
}

// Every step checked: the record is written whole, fsynced and only then
// renamed into place, so exit.json is complete or absent, never torn.
// Returns 0 or the errno of the step that failed (its temp file removed).
int Supervisor::TryWriteExitFile() {
  std::string path = o_.run_dir + "/" + kExitFileName;
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  std::string data = FormatExitRecord(record_);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    const int err = errno;
    Log("cannot create %s: %s", tmp.c_str(), std::strerror(err));
    return err;
  }
  const char* step = nullptr;
  int err = 0;
  auto check = [&](bool done, const char* what) {
    if (!done && step == nullptr) step = what, err = errno;
  };
  check(WriteAllFd(fd, data), "write");
  if (step == nullptr) check(::fsync(fd) == 0, "fsync");
  check(::close(fd) == 0, "close");
  if (step == nullptr) check(::rename(tmp.c_str(), path.c_str()) == 0, "rename");
  if (step != nullptr) {
    ::unlink(tmp.c_str());
    Log("cannot %s %s: %s", step, tmp.c_str(), std::strerror(err));
    return err;
  }
  int dir = ::open(o_.run_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
  return 0;
}

}  // namespace
}  // namespace amld::daemon::shim

int main(int argc, char** argv) {
  using namespace amld::daemon::shim;
  sigset_t set = SupervisorSignals();
  ::sigprocmask(SIG_BLOCK, &set, nullptr);
  // Nothing of the daemon's (sockets, database) may leak into the run.
  ::syscall(SYS_close_range, kReadyFd + 1, ~0U, 0);
  ::fcntl(kReadyFd, F_SETFD, FD_CLOEXEC);  // the run's process must not hold it
  Options options = ParseOptions(argc, argv);
  BecomeRunUser(options);
  if (::chdir("/") != 0) FailToStart(ErrnoMessage("chdir /", errno));
  if (options.foreground) {
    if (::prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
      FailToStart(ErrnoMessage("prctl(PR_SET_CHILD_SUBREAPER)", errno));
    }
    return Supervisor(std::move(options)).Run();
  }

  // Leave the daemon: it reaps this first process at once, and the
  // supervisor is reparented, so it survives the daemon being killed.
  pid_t pid = ::fork();
  if (pid < 0) FailToStart(ErrnoMessage("fork", errno));
  if (pid > 0) ::_exit(0);
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
    FailToStart(ErrnoMessage("prctl(PR_SET_CHILD_SUBREAPER)", errno));
  }
  return Supervisor(std::move(options)).Run();
}
