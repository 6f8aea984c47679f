#include "daemon/executors/local/local_executor.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "base/file_util.h"
#include "base/status_macros.h"
#include "daemon/executors/launch_spec.h"
#include "daemon/executors/exit_status.h"
#include "daemon/executors/launch/launch_protocol.h"
#include "daemon/executors/run_as.h"
#include "daemon/executors/run_handle.h"
#include "daemon/executors/shim/shim_protocol.h"
#include "daemon/executors/subprocess.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

namespace amld::daemon {
namespace {

namespace fs = std::filesystem;
using base::ErrnoStatus;
using base::ScopedFd;

constexpr absl::Duration kShimReportTimeout = absl::Seconds(30);

std::string ReadBootId() {
  absl::StatusOr<std::string> id = base::ReadFileToString("/proc/sys/kernel/random/boot_id");
  if (!id.ok()) return "";
  return std::string(absl::StripAsciiWhitespace(*id));
}

constexpr char kHandleKind[] = "a local executor";

std::string FormatHandle(const ShimIdentity& id) {
  RunHandle handle;
  SetShimIdentity(id, handle);
  return handle.Encode();
}

absl::StatusOr<ShimIdentity> ParseHandle(const std::string& run_id, const std::string& text) {
  AMLD_ASSIGN_OR_RETURN(RunHandle handle, RunHandle::Parse(kHandleKind, run_id, text));
  return GetShimIdentity(handle, /*boot_id_required=*/false);
}

fs::path ShimLogPath(const fs::path& run_dir) {
  return run_dir / "system_logs" / shim::kShimLogName;
}

int64_t DurationNs(absl::Duration d) {
  if (d == absl::InfiniteDuration()) return 0;
  return absl::ToInt64Nanoseconds(d);
}

// Reads the shim's one report line ("ok ..." / "error ...").
absl::StatusOr<std::string> ReadShimReport(int fd, const fs::path& run_dir) {
  std::string line;
  absl::Time deadline = absl::Now() + kShimReportTimeout;
  while (line.find('\n') == std::string::npos) {
    int timeout_ms =
        static_cast<int>(std::max<int64_t>(0, absl::ToInt64Milliseconds(deadline - absl::Now())));
    pollfd p{fd, POLLIN, 0};
    int ready = ::poll(&p, 1, timeout_ms);
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) return ErrnoStatus(errno, "poll", "amld-shim report pipe");
    if (ready == 0) {
      return absl::DeadlineExceededError(absl::StrCat("amld-shim did not report within ",
                                                      absl::FormatDuration(kShimReportTimeout),
                                                      "; see ", ShimLogPath(run_dir).string()));
    }
    char buf[512];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, "read", "amld-shim report pipe");
    if (n == 0) break;
    line.append(buf, static_cast<size_t>(n));
  }
  return line.substr(0, line.find('\n'));
}

absl::StatusOr<ShimIdentity> ParseShimReport(const std::string& report, const fs::path& run_dir) {
  if (absl::StatusOr<ShimIdentity> id = ParseShimOkLine(report); id.ok()) return id;
  if (absl::string_view message = report; absl::ConsumePrefix(&message, "error ")) {
    return absl::InternalError(absl::StrCat("amld-shim could not start the run: ", message));
  }
  if (report.empty()) {
    return absl::InternalError(absl::StrCat("amld-shim exited without starting the run; see ",
                                            ShimLogPath(run_dir).string()));
  }
  return absl::InternalError(absl::StrCat("amld-shim sent an unexpected report: ", report));
}

class LocalExecutor final : public Executor {
 public:
  LocalExecutor(fs::path shim_path, ScopedFd epoll_fd, ScopedFd wake_fd)
      : shim_path_(std::move(shim_path)),
        boot_id_(ReadBootId()),
        epoll_fd_(std::move(epoll_fd)),
        wake_fd_(std::move(wake_fd)) {
    thread_ = std::thread([this] { ThreadMain(); });
  }

  ~LocalExecutor() override {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    Wake();
    thread_.join();
  }

  void SetExitCallback(ExitCallback callback) override {
    absl::MutexLock lock(&mu_);
    callback_ = std::move(callback);
  }

  absl::StatusOr<std::string> Launch(const LaunchSpec& spec) override {
    AMLD_RETURN_IF_ERROR(ValidateLaunchSpec(spec));
    fs::path run_dir = spec.run_dir.lexically_normal();  // absolute: ValidateLaunchSpec
    {
      absl::MutexLock lock(&mu_);
      if (runs_.count(spec.run_id) != 0) return AlreadyWatched(spec.run_id);
    }
    AMLD_ASSIGN_OR_RETURN(ShimIdentity id, SpawnShim(spec, run_dir));
    id.boot_id = boot_id_;
    absl::Status adopted = Adopt(spec.run_id, run_dir, id);
    if (!adopted.ok()) {
      ::kill(id.pid, SIGTERM);  // a run nobody watches must not go on
      return adopted;
    }
    return FormatHandle(id);
  }

  absl::Status Reattach(const std::string& run_id, const fs::path& run_dir,
                        const std::string& handle) override {
    AMLD_ASSIGN_OR_RETURN(ShimIdentity id, ParseHandle(run_id, handle));
    return Adopt(run_id, fs::absolute(run_dir).lexically_normal(), id);
  }

  absl::Status Cancel(const std::string& run_id) override {
    absl::MutexLock lock(&mu_);
    auto it = runs_.find(run_id);
    if (it == runs_.end()) {
      return absl::NotFoundError(absl::StrCat("run ", run_id, " is not running here"));
    }
    // No pidfd: the shim is already gone and the callback is on its way.
    if (!it->second.pidfd.valid()) return absl::OkStatus();
    if (PidfdSendSignal(it->second.pidfd.get(), SIGTERM) != 0 && errno != ESRCH) {
      return ErrnoStatus(errno, "signal amld-shim of run", run_id);
    }
    return absl::OkStatus();
  }

 private:
  struct WatchedRun {
    fs::path run_dir;
    ScopedFd pidfd;  // invalid once the shim is known to be gone
  };

  static absl::Status AlreadyWatched(const std::string& run_id) {
    return absl::AlreadyExistsError(absl::StrCat("run ", run_id, " is already running here"));
  }

  absl::StatusOr<ShimIdentity> SpawnShim(const LaunchSpec& spec, const fs::path& run_dir);
  absl::StatusOr<ScopedFd> OpenShimPidfd(const ShimIdentity& id) const;
  absl::Status Adopt(const std::string& run_id, const fs::path& run_dir, const ShimIdentity& id);
  void Wake();
  void ThreadMain();

  const fs::path shim_path_;
  const std::string boot_id_;
  const ScopedFd epoll_fd_;
  const ScopedFd wake_fd_;

  absl::Mutex mu_;
  ExitCallback callback_ ABSL_GUARDED_BY(mu_);
  std::unordered_map<std::string, WatchedRun> runs_ ABSL_GUARDED_BY(mu_);
  std::unordered_map<int, std::string> run_by_pidfd_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> ended_ ABSL_GUARDED_BY(mu_);  // to report, in runs_
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

absl::StatusOr<ShimIdentity> LocalExecutor::SpawnShim(const LaunchSpec& spec,
                                                      const fs::path& run_dir) {
  for (const char* sub : {"user_logs", "system_logs"}) {
    std::error_code ec;
    fs::create_directories(run_dir / sub, ec);
    if (ec) return ErrnoStatus(ec.value(), "create", run_dir / sub);
  }
  SubprocessOptions shim;
  shim.argv = {shim_path_.string(), "--run-dir=" + run_dir.string(),
               absl::StrCat("--max-duration-ns=", DurationNs(spec.max_duration)),
               absl::StrCat("--grace-ns=", DurationNs(spec.kill_grace)), "--"};
  if (spec.processes.kind.empty()) {
    shim.argv.insert(shim.argv.end(), spec.argv.begin(), spec.argv.end());
  } else {
    // Several processes: amld-launch (beside amld-shim) starts them under
    // the supervisor, which then stops and reports them as one run.
    const fs::path launch_binary = shim_path_.parent_path() / launch::kLaunchBinaryName;
    if (::access(launch_binary.c_str(), X_OK) != 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "cannot start the run's ", spec.processes.count, " processes: ", launch_binary.string(),
          " is not an executable (install it beside amld-shim)"));
    }
    // It runs as the submitter (after the shim took their identity).
    if (spec.run_as) AMLD_RETURN_IF_ERROR(CheckAccountMay(*spec.run_as, launch_binary, X_OK));
    AMLD_RETURN_IF_ERROR(CreateRankLogs(run_dir, spec.processes));
    std::vector<std::string> launch =
        launch::BuildLaunchArgv(launch_binary, spec.processes.kind, spec.processes.count,
                                spec.processes.parameter_servers, run_dir,
                                DurationNs(spec.kill_grace), spec.argv);
    shim.argv.insert(shim.argv.end(), launch.begin(), launch.end());
  }
  shim.env.emplace();
  for (const auto& [name, value] : spec.env) shim.env->push_back(absl::StrCat(name, "=", value));
  if (spec.run_as) {
    // System mode: the folder and everything in it (the snapshot, the logs
    // made above, the shim's log) become the submitter's before the shim
    // takes the submitter's identity (shim_main.cc) and starts the run.
    const fs::path shim_log = ShimLogPath(run_dir);
    ScopedFd log(::open(shim_log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW,
                        0644));
    if (!log.valid()) return ErrnoStatus(errno, "create", shim_log);
    AMLD_RETURN_IF_ERROR(GiveTreeTo(run_dir, spec.run_as->uid, spec.run_as->gid));
    std::vector<std::string> identity = {absl::StrCat("--uid=", spec.run_as->uid),
                                         absl::StrCat("--gid=", spec.run_as->gid),
                                         absl::StrCat("--groups=",
                                                      absl::StrJoin(spec.run_as->groups, ","))};
    shim.argv.insert(shim.argv.begin() + 1, identity.begin(), identity.end());
  }

  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe2", "for amld-shim");
  ScopedFd report_read(pipe_fds[0]);
  ScopedFd report_write(pipe_fds[1]);
  shim.extra_fds = {{report_write.get(), shim::kReadyFd}};
  shim.err = Stdio::AppendTo(ShimLogPath(run_dir));
  // Own process group, so signals for the daemon's group (a Ctrl-C) miss it;
  // not yet its own session: the shim moves there itself once the run's
  // process is started (see shim_main.cc for why).
  shim.new_process_group = true;
  absl::StatusOr<Subprocess> first = Subprocess::Start(shim);
  report_write = ScopedFd();
  if (!first.ok()) return first.status();

  absl::StatusOr<std::string> report = ReadShimReport(report_read.get(), run_dir);
  // The first shim process exits right after forking the supervisor; if it
  // hangs instead, it is still our child, so it is safe to kill.
  if (absl::IsDeadlineExceeded(report.status())) first->Signal(SIGKILL);
  first->Wait();
  if (!report.ok()) return report.status();
  return ParseShimReport(*report, run_dir);
}

// A pidfd on the shim, or an invalid fd when that shim no longer runs.
absl::StatusOr<ScopedFd> LocalExecutor::OpenShimPidfd(const ShimIdentity& id) const {
  if (!id.boot_id.empty() && !boot_id_.empty() && id.boot_id != boot_id_) return ScopedFd();
  ScopedFd pidfd(PidfdOpen(id.pid));
  if (!pidfd.valid()) {
    if (errno == ESRCH || errno == EINVAL) return ScopedFd();
    return ErrnoStatus(errno, "pidfd_open", absl::StrCat("pid ", id.pid));
  }
  // Checked after pidfd_open: if the pid still carries the shim's start time
  // now, the pidfd (opened earlier, shim started earlier still) is the shim.
  std::optional<uint64_t> start = shim::ReadProcessStartTime(id.pid);
  if (!start || *start != id.start_time) return ScopedFd();
  return pidfd;
}

absl::Status LocalExecutor::Adopt(const std::string& run_id, const fs::path& run_dir,
                                  const ShimIdentity& id) {
  AMLD_ASSIGN_OR_RETURN(ScopedFd pidfd, OpenShimPidfd(id));
  absl::MutexLock lock(&mu_);
  if (runs_.count(run_id) != 0) return AlreadyWatched(run_id);
  if (pidfd.valid()) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = pidfd.get();
    if (::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, pidfd.get(), &ev) != 0) {
      return ErrnoStatus(errno, "epoll_ctl", absl::StrCat("pidfd of run ", run_id));
    }
    run_by_pidfd_[pidfd.get()] = run_id;
  } else {
    ended_.push_back(run_id);
    Wake();
  }
  runs_.emplace(run_id, WatchedRun{run_dir, std::move(pidfd)});
  return absl::OkStatus();
}

void LocalExecutor::Wake() {
  uint64_t one = 1;
  // EAGAIN means the counter is already non-zero: the thread wakes anyway.
  while (::write(wake_fd_.get(), &one, sizeof one) < 0 && errno == EINTR) {
  }
}

void LocalExecutor::ThreadMain() {
  struct Ended {
    std::string run_id;
    WatchedRun run;
  };
  for (;;) {
    epoll_event events[32];
    int n = ::epoll_wait(epoll_fd_.get(), events, 32, -1);
    if (n < 0) n = 0;  // EINTR
    std::vector<Ended> ended;
    ExitCallback callback;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      for (int i = 0; i < n; ++i) {
        int fd = events[i].data.fd;
        if (fd == wake_fd_.get()) {
          uint64_t count;
          (void)!::read(fd, &count, sizeof count);
          continue;
        }
        auto it = run_by_pidfd_.find(fd);
        if (it == run_by_pidfd_.end()) continue;
        ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, fd, nullptr);
        ended_.push_back(std::move(it->second));
        run_by_pidfd_.erase(it);
      }
      for (std::string& run_id : ended_) {
        auto node = runs_.extract(run_id);
        if (!node.empty()) ended.push_back({std::move(run_id), std::move(node.mapped())});
      }
      ended_.clear();
      callback = callback_;
    }
    for (Ended& e : ended) {
      if (e.run.pidfd.valid()) {
        // Only succeeds if the shim is our child (a daemon that is a subreaper).
        siginfo_t info;
        ::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(e.run.pidfd.get()), &info,
                 WEXITED | WNOHANG);
        e.run.pidfd = ScopedFd();
      }
      absl::StatusOr<ExitStatus> outcome = ReadExitStatus(e.run.run_dir);
      if (callback) callback(e.run_id, std::move(outcome));
    }
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<Executor>> NewLocalExecutor(const LocalExecutorOptions& options) {
  std::error_code ec;
  fs::path shim_path = fs::absolute(options.shim_path, ec);
  if (ec || ::access(shim_path.c_str(), X_OK) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "amld-shim is not an executable at ", options.shim_path.string(), ": ",
        std::strerror(ec ? ec.value() : errno), "; build the amld-shim target or install it"));
  }
  ScopedFd probe(PidfdOpen(::getpid()));
  if (!probe.valid() && errno == ENOSYS) {
    return absl::UnimplementedError("the local executor needs pidfd_open (Linux 5.3 or later)");
  }
  ScopedFd epoll_fd(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_fd.valid()) return ErrnoStatus(errno, "epoll_create1", "local executor");
  ScopedFd wake_fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake_fd.valid()) return ErrnoStatus(errno, "eventfd", "local executor");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = wake_fd.get();
  if (::epoll_ctl(epoll_fd.get(), EPOLL_CTL_ADD, wake_fd.get(), &ev) != 0) {
    return ErrnoStatus(errno, "epoll_ctl", "local executor");
  }
  return std::make_unique<LocalExecutor>(std::move(shim_path), std::move(epoll_fd),
                                         std::move(wake_fd));
}

fs::path ShimPathBesideExecutable() {
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return "amld-shim";
  return exe.parent_path() / "amld-shim";
}

}  // namespace amld::daemon
