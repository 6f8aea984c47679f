#include "daemon/executors/ssh/ssh_executor.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/random/random.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "daemon/executors/shim/shim_protocol.h"
#include "nlohmann/json.hpp"
#include "storage/digest.h"
#include "base/file_util.h"
#include "base/status_macros.h"

extern char** environ;

namespace amld::daemon {
namespace {

namespace fs = std::filesystem;
using amld::base::ErrnoStatus;
using amld::base::ScopedFd;

// Hosts allow 10 sessions per connection by default (sshd MaxSessions):
// beyond this many live log followers, a follower opens its own connection.
constexpr int kMaxMultiplexedFollowers = 4;
// A follower (remote tail) that keeps failing while the host answers (no
// GNU tail there?) gives way to copying the log every sync_interval.
constexpr int kFollowerFailuresBeforePolling = 3;
// How often the remote tail checks whether the shim still runs.
constexpr char kTailPidInterval[] = "0.2";

constexpr char kLaunchScriptName[] = "ssh-launch.sh";    // in the run folder
constexpr char kLaunchLockName[] = ".amld-launch";       // on the host
constexpr char kSyncTmpName[] = ".ssh-sync-tmp";         // rsync's temp files
constexpr char kExecutorLogName[] = "ssh-executor.log";  // in system_logs/
constexpr char kRemoteShimDir[] = ".amld/bin";
constexpr char kDefaultWorkdir[] = "amld";

int PidfdOpen(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

// ---------------------------------------------------------------------------
// The handle.

struct RemoteRun {
  std::string host;
  int port = 0;
  std::string user;
  std::string remote_dir;  // absolute, on the host
  int64_t shim_pid = 0;
  uint64_t shim_start_time = 0;
  std::string boot_id;
};

std::string FormatHandle(const RemoteRun& r) {
  nlohmann::json j = {{"host", r.host},         {"port", r.port},
                      {"user", r.user},         {"remote_dir", r.remote_dir},
                      {"shim_pid", r.shim_pid}, {"shim_start_time", r.shim_start_time},
                      {"boot_id", r.boot_id}};
  return j.dump();
}

absl::StatusOr<RemoteRun> ParseHandle(const std::string& handle) {
  nlohmann::json j = nlohmann::json::parse(handle, nullptr, /*allow_exceptions=*/false);
  auto bad = [&](const char* why) {
    return absl::InvalidArgumentError(absl::StrCat("not an ssh run handle (", why, "): ", handle));
  };
  if (!j.is_object()) return bad("not a JSON object");
  auto text = [&](const char* key, std::string* out) {
    auto it = j.find(key);
    if (it == j.end() || !it->is_string()) return false;
    *out = it->get<std::string>();
    return true;
  };
  auto number = [&](const char* key, auto* out) {
    auto it = j.find(key);
    if (it == j.end() || !it->is_number_integer()) return false;
    *out = it->get<std::remove_pointer_t<decltype(out)>>();
    return true;
  };
  RemoteRun r;
  if (!text("host", &r.host) || !text("user", &r.user) || !text("remote_dir", &r.remote_dir) ||
      !text("boot_id", &r.boot_id) || !number("port", &r.port) ||
      !number("shim_pid", &r.shim_pid) || !number("shim_start_time", &r.shim_start_time)) {
    return bad("a field is missing");
  }
  if (r.remote_dir.empty() || r.remote_dir.front() != '/' || r.shim_pid <= 0) {
    return bad("no remote folder or pid");
  }
  return r;
}

// ---------------------------------------------------------------------------
// Remote shell fragments. Every value is quoted; pids and times are numbers.

// True (exit 0) when the shim of `r` still runs: same boot, same pid, same
// start time (field 22 of /proc/PID/stat, counted after the command name).
std::string ShimAliveTest(const RemoteRun& r) {
  return absl::StrCat("[ \"$(cat /proc/sys/kernel/random/boot_id)\" = ", ShQuote(r.boot_id),
                      " ] && [ \"$(sed 's/.*) //' /proc/", r.shim_pid,
                      "/stat 2>/dev/null | cut -d' ' -f20)\" = ", r.shim_start_time, " ]");
}

// Prints "alive" or "ended", then "wd" or "nowd", then (when ended) the
// exit file, if any.
std::string ProbeScript(const RemoteRun& r) {
  const std::string rd = ShQuote(r.remote_dir);
  return absl::StrCat("if ", ShimAliveTest(r), "; then s=alive; else s=ended; fi\necho $s\n",
                      "if [ -d ", rd, "/wd ]; then echo wd; else echo nowd; fi\n",
                      "if [ $s = ended ]; then cat ", rd, "/", shim::kExitFileName,
                      " 2>/dev/null; fi\nexit 0\n");
}

std::string CancelScript(const RemoteRun& r) {
  return absl::StrCat("if ", ShimAliveTest(r), "; then kill -TERM ", r.shim_pid, "; fi\nexit 0\n");
}

// ---------------------------------------------------------------------------
// Child processes that write straight into a local file (the log follower
// and catch-up). They get SIGTERM when the thread that started them ends —
// also when the daemon is killed — so a follower never outlives its daemon
// and never appends to the log behind the back of the next one.

std::string FindInPath(const std::string& name) {
  if (absl::StrContains(name, "/")) return name;
  const char* path = std::getenv("PATH");
  for (absl::string_view dir : absl::StrSplit(path != nullptr ? path : "/usr/bin:/bin", ':')) {
    std::string candidate = absl::StrCat(dir.empty() ? "." : dir, "/", name);
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

struct Child {
  pid_t pid = -1;
  ScopedFd pidfd;
  ScopedFd err;  // its stderr, non-blocking
  std::string err_text;
};

absl::StatusOr<Child> Spawn(const std::vector<std::string>& argv, int stdout_fd) {
  const std::string path = FindInPath(argv[0]);
  if (path.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot run ", argv[0], ": not found in PATH (install openssh-client)"));
  }
  int err_pipe[2];
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe2", argv[0]);
  ScopedFd err_read(err_pipe[0]), err_write(err_pipe[1]);
  ::fcntl(err_read.get(), F_SETFL, O_NONBLOCK);
  ScopedFd null_fd(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!null_fd.valid()) return ErrnoStatus(errno, "open", "/dev/null");
  const int out = stdout_fd >= 0 ? stdout_fd : null_fd.get();
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t parent = ::getpid();
  // vfork: the child only makes system calls before exec.
  pid_t pid = ::vfork();
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(127);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::dup2(null_fd.get(), STDIN_FILENO);
    ::dup2(out, STDOUT_FILENO);
    ::dup2(err_write.get(), STDERR_FILENO);
    ::execve(path.c_str(), args.data(), environ);
    ::_exit(127);
  }
  if (pid < 0) return ErrnoStatus(errno, "vfork", argv[0]);
  Child child;
  child.pid = pid;
  child.pidfd = ScopedFd(PidfdOpen(pid));
  child.err = std::move(err_read);
  if (!child.pidfd.valid()) {
    int saved = errno;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return ErrnoStatus(saved, "pidfd_open", argv[0]);
  }
  return child;
}

// Reads what the child wrote to stderr so far; closes the pipe at its end
// (a closed pipe would wake poll() forever).
void DrainStderr(Child& c) {
  char buf[4096];
  while (c.err.valid()) {
    ssize_t n = ::read(c.err.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return;  // EAGAIN: nothing more for now
    if (n == 0) {
      c.err = ScopedFd();
      return;
    }
    if (c.err_text.size() < 65536) c.err_text.append(buf, static_cast<size_t>(n));
  }
}

// Waits until the child has exited (true) or `timeout` passed (false),
// collecting its stderr meanwhile.
bool WaitForExit(Child& c, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    pollfd fds[2] = {{c.pidfd.get(), POLLIN, 0}, {c.err.get(), POLLIN, 0}};
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return false;
    int n = ::poll(fds, 2, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
    if (n < 0 && errno != EINTR) return false;
    if (n <= 0) continue;
    if (fds[1].revents != 0) DrainStderr(c);
    if (fds[0].revents != 0) return true;
  }
}

// Waits for the child to end; its wait status.
int Reap(Child& c) {
  int status = 0;
  while (::waitpid(c.pid, &status, 0) < 0 && errno == EINTR) {
  }
  DrainStderr(c);
  c.pid = -1;
  return status;
}

void Stop(Child& c) {
  if (c.pid <= 0) return;
  ::kill(c.pid, SIGTERM);
  Reap(c);
}

bool ExitedOk(int status) { return WIFEXITED(status) && WEXITSTATUS(status) == 0; }
bool ConnectionFailed(int status) { return WIFEXITED(status) && WEXITSTATUS(status) == 255; }

std::string DescribeWait(int status, const std::string& err) {
  std::string what = WIFSIGNALED(status) ? absl::StrCat("killed by signal ", WTERMSIG(status))
                                         : absl::StrCat("exit code ", WEXITSTATUS(status));
  absl::string_view text = absl::StripAsciiWhitespace(err);
  if (!text.empty()) absl::StrAppend(&what, ": ", text);
  return what;
}

// ---------------------------------------------------------------------------
// The run's end.

absl::Status SupervisorLost(const std::string& where, const std::string& why) {
  return absl::InternalError(absl::StrCat("supervisor lost: ", why, " (on ", where,
                                          "; see system_logs/", shim::kShimLogName, ")"));
}

absl::StatusOr<ExitStatus> ExitFromRecord(const std::string& json, const std::string& where) {
  std::string error;
  std::optional<shim::ExitRecord> r = shim::ParseExitRecord(json, &error);
  if (!r) return SupervisorLost(where, absl::StrCat("its exit.json is unreadable: ", error));
  ExitStatus status;
  status.exit_code = r->exit_code;
  status.signal = r->signal;
  status.timed_out = r->timed_out;
  status.canceled = r->canceled;
  status.start_time = absl::FromUnixNanos(r->start_time_ns);
  status.end_time = absl::FromUnixNanos(r->end_time_ns);
  status.launch_error = r->launch_error;
  return status;
}

bool Succeeded(const ExitStatus& e) {
  return e.exit_code == 0 && e.signal == 0 && !e.canceled && !e.timed_out &&
         e.launch_error.empty() && e.failure.empty();
}

// What the host said about a run.
struct Probe {
  bool alive = false;
  bool wd_present = false;
  std::optional<std::string> exit_json;  // when ended and the file exists
};

absl::StatusOr<Probe> ParseProbe(const CommandResult& r) {
  std::vector<std::string> lines = absl::StrSplit(r.out, absl::MaxSplits('\n', 2));
  if (!r.ok() || lines.size() < 2 || (lines[0] != "alive" && lines[0] != "ended")) {
    return absl::InternalError(absl::StrCat("unexpected answer from the host: ", r.Describe()));
  }
  Probe p;
  p.alive = lines[0] == "alive";
  p.wd_present = lines[1] == "wd";
  if (!p.alive && lines.size() == 3 && !absl::StripAsciiWhitespace(lines[2]).empty()) {
    p.exit_json = lines[2];
  }
  return p;
}

// ---------------------------------------------------------------------------

class SshExecutor final : public Executor {
 public:
  SshExecutor(SshExecutorOptions options, SshRemote remote)
      : options_(std::move(options)), remote_(std::move(remote)) {}
  ~SshExecutor() override;

  void SetExitCallback(ExitCallback callback) override {
    absl::MutexLock lock(&mu_);
    exit_callback_ = std::move(callback);
  }
  std::string Placement(const std::string&, const std::string&) const override {
    return absl::StrCat("ssh:", remote_.Describe());
  }
  absl::StatusOr<std::string> Launch(const LaunchSpec& spec) override;
  absl::Status Reattach(const std::string& run_id, const fs::path& run_dir,
                        const std::string& handle) override;
  absl::Status Cancel(const std::string& run_id) override;

 private:
  // One run being followed, shared by its thread and Cancel.
  struct Follow {
    std::string run_id;
    fs::path local_dir;
    RemoteRun remote;
    ScopedFd wake;  // eventfd: cancel or stop
    std::atomic<bool> cancel{false};
    std::atomic<bool> stop{false};
  };
  using Outcome = absl::StatusOr<ExitStatus>;

  absl::Status PrepareHost();
  absl::Status InstallShim(const std::string& remote_workdir);
  absl::StatusOr<RemoteRun> StartShim(const LaunchSpec& spec, const std::string& remote_dir);
  static std::string LaunchScript(const LaunchSpec& spec, const std::string& remote_dir,
                                  const std::string& shim);
  void StartFollowing(RemoteRun remote, const std::string& run_id, const fs::path& local_dir,
                      bool reattached);

  // The thread of one run: follows it to its end and reports it.
  void FollowThread(std::shared_ptr<Follow> f, bool reattached);
  // The outcome; nullopt when the executor is stopping.
  std::optional<Outcome> FollowToEnd(Follow& f, bool reattached);
  absl::StatusOr<Child> StartFollower(Follow& f, bool* multiplexed);
  // kWake: a cancel arrived; kTick: `until` passed.
  enum class Woke { kStop, kWake, kTick, kFollowerEnded };
  void ReleaseFollowerSlot(bool multiplexed);
  Woke Wait(Follow& f, Child* follower, absl::Time until);
  bool SendCancel(Follow& f);
  absl::StatusOr<Probe> AskHost(Follow& f);
  Outcome Finish(Follow& f, const Probe& probe);
  Outcome Lost(Follow& f, const absl::Status& why);
  absl::Status CatchUpLog(Follow& f);
  absl::Status Pull(Follow& f, bool final);
  void Note(const Follow& f, const std::string& message) const;

  const SshExecutorOptions options_;
  const SshRemote remote_;

  absl::Mutex setup_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  bool host_ready_ ABSL_GUARDED_BY(setup_mu_) = false;
  std::string remote_workdir_ ABSL_GUARDED_BY(setup_mu_);  // absolute
  std::string shim_digest_ ABSL_GUARDED_BY(setup_mu_);     // of the local shim

  absl::Mutex mu_;
  ExitCallback exit_callback_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::shared_ptr<Follow>> follows_ ABSL_GUARDED_BY(mu_);
  int threads_ ABSL_GUARDED_BY(mu_) = 0;
  int multiplexed_followers_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::BitGen random_ ABSL_GUARDED_BY(mu_);
};

SshExecutor::~SshExecutor() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    for (auto& [id, f] : follows_) {
      f->stop = true;
      uint64_t one = 1;
      (void)!::write(f->wake.get(), &one, sizeof one);
    }
  }
  // The threads end their ssh processes and return without calling back.
  mu_.LockWhen(absl::Condition(
      +[](int* threads) { return *threads == 0; }, &threads_));
  mu_.Unlock();
  remote_.CloseMaster();
}

// ---------------------------------------------------------------------------
// Launch.

absl::Status SshExecutor::PrepareHost() {
  absl::MutexLock lock(&setup_mu_);
  if (host_ready_) return absl::OkStatus();
  if (shim_digest_.empty()) {
    AMLD_ASSIGN_OR_RETURN(amld::storage::Digest digest,
                          amld::storage::DigestOfFile(options_.shim_path));
    shim_digest_ = digest.hash;
  }
  std::string workdir = options_.workdir.empty() ? kDefaultWorkdir : options_.workdir;
  if (absl::StartsWith(workdir, "~/")) workdir = workdir.substr(2);
  if (workdir == "~") workdir = ".";
  const std::string shim_dir = kRemoteShimDir;
  const std::string script = absl::StrCat("set -e\nmkdir -p -- ", ShQuote(workdir), "\ncd -- ",
                                          ShQuote(workdir), "\npwd -P\n", "mkdir -p ", shim_dir,
                                          "\nif [ -x ", shim_dir, "/amld-shim ]; then cat ",
                                          shim_dir, "/amld-shim.sha256 2>/dev/null || true; fi\n");
  AMLD_ASSIGN_OR_RETURN(CommandResult r, remote_.Run(script, options_.command_timeout));
  if (!r.ok()) {
    return absl::FailedPreconditionError(absl::StrCat("cannot prepare the work folder ", workdir,
                                                      " on ", remote_.Describe(), ": ",
                                                      r.Describe()));
  }
  std::vector<std::string> lines = absl::StrSplit(r.out, '\n', absl::SkipEmpty());
  if (lines.empty() || lines[0].front() != '/') {
    return absl::InternalError(absl::StrCat("unexpected answer from ", remote_.Describe(),
                                            " about its work folder: ", r.out));
  }
  const std::string remote_workdir = lines[0];
  if (lines.size() < 2 || absl::StripAsciiWhitespace(lines[1]) != shim_digest_) {
    AMLD_RETURN_IF_ERROR(InstallShim(remote_workdir));
  }
  remote_workdir_ = remote_workdir;
  host_ready_ = true;
  return absl::OkStatus();
}

absl::Status SshExecutor::InstallShim(const std::string& remote_workdir) {
  uint32_t bits;
  {
    absl::MutexLock lock(&mu_);
    bits = absl::Uniform<uint32_t>(random_);
  }
  const std::string dir = absl::StrCat(remote_workdir, "/", kRemoteShimDir);
  const std::string tmp = absl::StrCat(dir, "/amld-shim.tmp-", bits);
  AMLD_ASSIGN_OR_RETURN(CommandResult copied,
                        remote_.Rsync({"-p", options_.shim_path.string(), remote_.RsyncPath(tmp)},
                                      options_.transfer_timeout));
  if (!copied.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot copy amld-shim to ", remote_.Describe(), ": ", copied.Describe()));
  }
  // Renames: a run starting meanwhile sees the old binary or the new one.
  const std::string d = ShQuote(dir);
  AMLD_ASSIGN_OR_RETURN(
      CommandResult moved,
      remote_.Run(
          absl::StrCat("set -e\nmv -f ", ShQuote(tmp), " ", d, "/amld-shim\nprintf '%s\\n' ",
                       shim_digest_, " > ", d, "/amld-shim.sha256.tmp\nmv -f ", d,
                       "/amld-shim.sha256.tmp ", d, "/amld-shim.sha256\n"),
          options_.command_timeout));
  if (!moved.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot install amld-shim on ", remote_.Describe(), ": ", moved.Describe()));
  }
  return absl::OkStatus();
}

// The script that starts the run on the host, written into the run folder
// (so it travels with it and stays as a record; no command-line length
// limit). A mkdir lock makes it idempotent: run again (a retry after a
// dropped connection), it reports the first start instead of starting twice.
std::string SshExecutor::LaunchScript(const LaunchSpec& spec, const std::string& remote_dir,
                                      const std::string& shim) {
  const std::string local_prefix = spec.run_dir.string();
  std::vector<std::string> env_words;
  for (const auto& [name, value] : spec.run_env) {
    std::string v = value;
    if (v == local_prefix || absl::StartsWith(v, local_prefix + "/")) {
      v = remote_dir + v.substr(local_prefix.size());
    }
    env_words.push_back(ShQuote(absl::StrCat(name, "=", v)));
  }
  std::vector<std::string> argv_words;
  for (const std::string& a : spec.argv) argv_words.push_back(ShQuote(a));
  const std::string rd = "\"$rd\"";
  return absl::StrCat("# Written by amld's SSH executor: starts run ", spec.run_id,
                      " under amld-shim.\n", "rd=", ShQuote(remote_dir), "\n",
                      "printf 'boot %s\\n' \"$(cat /proc/sys/kernel/random/boot_id)\"\n", ": >> ",
                      rd, "/metrics.jsonl\n", ": >> ", rd, "/system_logs/", shim::kShimLogName,
                      "\n", "if mkdir ", rd, "/", kLaunchLockName, " 2>/dev/null; then\n",
                      "  cd / && env -- ", absl::StrJoin(env_words, " "), " ", ShQuote(shim),
                      " --run-dir=", rd,
                      " --max-duration-ns=", absl::ToInt64Nanoseconds(spec.max_duration),
                      " --grace-ns=", absl::ToInt64Nanoseconds(spec.kill_grace), " -- ",
                      absl::StrJoin(argv_words, " "), " 3>&1 >/dev/null 2>>", rd, "/system_logs/",
                      shim::kShimLogName, " </dev/null | tee ", rd, "/", kLaunchLockName,
                      "/ready\n", "else\n", "  i=0\n", "  while [ ! -s ", rd, "/", kLaunchLockName,
                      "/ready ] && [ $i -lt 300 ]; do "
                      "sleep 0.1; i=$((i+1)); done\n",
                      "  cat ", rd, "/", kLaunchLockName, "/ready\n", "fi\n");
}

absl::StatusOr<RemoteRun> SshExecutor::StartShim(const LaunchSpec& spec,
                                                 const std::string& remote_dir) {
  AMLD_ASSIGN_OR_RETURN(
      CommandResult r,
      remote_.Run(absl::StrCat("exec /bin/sh ", ShQuote(remote_dir), "/", kLaunchScriptName),
                  options_.command_timeout));
  RemoteRun run;
  run.host = remote_.endpoint().host;
  run.port = remote_.endpoint().port;
  run.user = remote_.endpoint().user;
  run.remote_dir = remote_dir;
  for (absl::string_view line : absl::StrSplit(r.out, '\n', absl::SkipEmpty())) {
    if (absl::ConsumePrefix(&line, "boot ")) {
      run.boot_id = std::string(line);
    } else if (absl::ConsumePrefix(&line, "error ")) {
      return absl::FailedPreconditionError(
          absl::StrCat("amld-shim on ", remote_.Describe(), " could not start the run: ", line));
    } else if (absl::ConsumePrefix(&line, "ok ")) {
      std::vector<absl::string_view> parts = absl::StrSplit(line, ' ');
      if (parts.size() == 2 && absl::SimpleAtoi(parts[0], &run.shim_pid) &&
          absl::SimpleAtoi(parts[1], &run.shim_start_time) && !run.boot_id.empty()) {
        return run;
      }
    }
  }
  return absl::FailedPreconditionError(
      absl::StrCat("could not start amld-shim on ", remote_.Describe(), ": ", r.Describe()));
}

absl::StatusOr<std::string> SshExecutor::Launch(const LaunchSpec& spec) {
  if (spec.run_id.empty() || absl::StrContains(spec.run_id, "/") || spec.argv.empty() ||
      !spec.run_dir.is_absolute()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot launch run ", spec.run_id,
                     ": needs a run id, an absolute run folder and a command"));
  }
  AMLD_RETURN_IF_ERROR(PrepareHost());
  std::string remote_dir, shim;
  {
    absl::MutexLock lock(&setup_mu_);
    remote_dir = absl::StrCat(remote_workdir_, "/", spec.run_id);
    shim = absl::StrCat(remote_workdir_, "/", kRemoteShimDir, "/amld-shim");
  }
  AMLD_RETURN_IF_ERROR(amld::base::WriteFileAtomically(spec.run_dir / kLaunchScriptName,
                                                          LaunchScript(spec, remote_dir, shim)));
  AMLD_ASSIGN_OR_RETURN(
      CommandResult pushed,
      remote_.Rsync({"-rlpt", "--delete", absl::StrCat(spec.run_dir.string(), "/"),
                     remote_.RsyncPath(remote_dir + "/")},
                    options_.transfer_timeout));
  if (!pushed.ok()) {
    absl::MutexLock lock(&setup_mu_);
    host_ready_ = false;  // the work folder may be gone: the next launch makes it again
    return absl::FailedPreconditionError(absl::StrCat("cannot copy the run folder to ",
                                                      remote_.Describe(), ":", remote_dir, ": ",
                                                      pushed.Describe()));
  }
  absl::StatusOr<RemoteRun> started = StartShim(spec, remote_dir);
  if (!started.ok()) {
    absl::MutexLock lock(&setup_mu_);
    host_ready_ = false;  // the next launch checks the shim again
    return started.status();
  }
  std::string handle = FormatHandle(*started);
  StartFollowing(std::move(*started), spec.run_id, spec.run_dir, /*reattached=*/false);
  return handle;
}

absl::Status SshExecutor::Reattach(const std::string& run_id, const fs::path& run_dir,
                                   const std::string& handle) {
  AMLD_ASSIGN_OR_RETURN(RemoteRun remote, ParseHandle(handle));
  if (remote.host != remote_.endpoint().host || remote.port != remote_.endpoint().port) {
    return absl::FailedPreconditionError(
        absl::StrCat("run ", run_id, " was started on ", remote.host, ":", remote.port,
                     ", but its target is ", remote_.Describe(), " now"));
  }
  // The host is asked on the run's thread, so a slow or unreachable host
  // does not hold up the daemon's start.
  StartFollowing(std::move(remote), run_id, run_dir, /*reattached=*/true);
  return absl::OkStatus();
}

absl::Status SshExecutor::Cancel(const std::string& run_id) {
  absl::MutexLock lock(&mu_);
  auto it = follows_.find(run_id);
  if (it == follows_.end()) {
    return absl::NotFoundError(
        absl::StrCat("run ", run_id, " is not running on ", remote_.Describe()));
  }
  it->second->cancel = true;
  uint64_t one = 1;
  (void)!::write(it->second->wake.get(), &one, sizeof one);
  return absl::OkStatus();
}

void SshExecutor::StartFollowing(RemoteRun remote, const std::string& run_id,
                                 const fs::path& local_dir, bool reattached) {
  auto f = std::make_shared<Follow>();
  f->run_id = run_id;
  f->local_dir = local_dir;
  f->remote = std::move(remote);
  f->wake = ScopedFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  {
    absl::MutexLock lock(&mu_);
    follows_[run_id] = f;
    ++threads_;
  }
  std::thread([this, f, reattached] { FollowThread(f, reattached); }).detach();
}

// ---------------------------------------------------------------------------
// Following a run.

void SshExecutor::FollowThread(std::shared_ptr<Follow> f, bool reattached) {
  std::optional<Outcome> outcome = FollowToEnd(*f, reattached);
  ExitCallback callback;
  {
    absl::MutexLock lock(&mu_);
    auto it = follows_.find(f->run_id);
    if (it != follows_.end() && it->second == f) follows_.erase(it);
    if (outcome.has_value() && !stopping_) callback = exit_callback_;
  }
  if (callback) callback(f->run_id, std::move(*outcome));
  absl::MutexLock lock(&mu_);
  --threads_;  // the last touch of `this`
}

std::optional<SshExecutor::Outcome> SshExecutor::FollowToEnd(Follow& f, bool reattached) {
  if (reattached) {
    absl::StatusOr<Probe> probe = AskHost(f);
    if (!probe.ok()) return Lost(f, probe.status());
    if (!probe->alive) return Finish(f, *probe);
    Note(f, absl::StrCat("re-adopted: amld-shim (pid ", f.remote.shim_pid, ") still runs on ",
                         remote_.Describe()));
  }
  bool polling = false;
  bool cancel_sent = false;
  int follower_failures = 0;
  absl::Time next_tick = absl::Now() + options_.sync_interval;
  for (;;) {
    std::optional<Child> follower;
    bool multiplexed = false;
    if (!polling) {
      absl::StatusOr<Child> started = StartFollower(f, &multiplexed);
      if (started.ok()) {
        follower = std::move(*started);
      } else {
        Note(f, absl::StrCat("cannot follow the log: ", started.status().message()));
        polling = true;
      }
    }
    for (;;) {
      if (f.cancel && !cancel_sent) cancel_sent = SendCancel(f);
      Woke woke = Wait(f, follower ? &*follower : nullptr, next_tick);
      if (woke == Woke::kStop) {
        if (follower) {
          Stop(*follower);
          ReleaseFollowerSlot(multiplexed);
        }
        return std::nullopt;
      }
      if (woke == Woke::kFollowerEnded) break;
      if (woke == Woke::kTick) {
        next_tick = absl::Now() + options_.sync_interval;
        if (polling) {
          if (absl::Status s = CatchUpLog(f); !s.ok()) Note(f, std::string(s.message()));
          absl::StatusOr<Probe> probe = AskHost(f);
          if (!probe.ok()) return Lost(f, probe.status());
          if (!probe->alive) return Finish(f, *probe);
        }
        if (absl::Status s = Pull(f, /*final=*/false); !s.ok()) {
          Note(f, absl::StrCat("copying outputs back: ", s.message()));
        }
      }
    }
    // The follower ended: normally because the shim is gone (tail --pid);
    // otherwise the connection dropped or tail failed. The host decides.
    const int status = Reap(*follower);
    ReleaseFollowerSlot(multiplexed);
    absl::StatusOr<Probe> probe = AskHost(f);
    if (!probe.ok()) {
      return Lost(f, ConnectionFailed(status)
                         ? absl::UnavailableError(absl::StrCat(
                               probe.status().message(),
                               " (log follower: ", DescribeWait(status, follower->err_text), ")"))
                         : probe.status());
    }
    if (!probe->alive) return Finish(f, *probe);
    Note(f, absl::StrCat("log follower ended (", DescribeWait(status, follower->err_text),
                         "); the run goes on; following again"));
    if (!ExitedOk(status) && ++follower_failures >= kFollowerFailuresBeforePolling) {
      Note(f, absl::StrCat("copying the log every ", absl::FormatDuration(options_.sync_interval),
                           " instead"));
      polling = true;
    }
    // A pause before following again, woken early by cancel or stop.
    const absl::Time resume = absl::Now() + options_.backoff;
    while (absl::Now() < resume) {
      if (Wait(f, nullptr, resume) == Woke::kStop) return std::nullopt;
      if (f.cancel && !cancel_sent) cancel_sent = SendCancel(f);
    }
  }
}

absl::StatusOr<Child> SshExecutor::StartFollower(Follow& f, bool* multiplexed) {
  const fs::path log = f.local_dir / shim::kStdLogPath;
  ScopedFd fd(::open(log.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644));
  if (!fd.valid()) return ErrnoStatus(errno, "open", log);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return ErrnoStatus(errno, "stat", log);
  {
    absl::MutexLock lock(&mu_);
    *multiplexed = multiplexed_followers_ < kMaxMultiplexedFollowers;
    if (*multiplexed) ++multiplexed_followers_;
  }
  // Everything after the bytes the daemon has, as it is written, until the
  // shim is gone.
  const std::string command = absl::StrCat(
      "exec tail -c +", st.st_size + 1, " -F -s ", kTailPidInterval, " --pid=", f.remote.shim_pid,
      " -- ", ShQuote(absl::StrCat(f.remote.remote_dir, "/", shim::kStdLogPath)));
  absl::StatusOr<Child> child = Spawn(remote_.SshArgv(command, *multiplexed), fd.get());
  if (!child.ok()) ReleaseFollowerSlot(*multiplexed);
  return child;
}

void SshExecutor::ReleaseFollowerSlot(bool multiplexed) {
  if (!multiplexed) return;
  absl::MutexLock lock(&mu_);
  --multiplexed_followers_;
}

SshExecutor::Woke SshExecutor::Wait(Follow& f, Child* follower, absl::Time until) {
  for (;;) {
    if (f.stop) return Woke::kStop;
    pollfd fds[3] = {{f.wake.get(), POLLIN, 0}, {-1, POLLIN, 0}, {-1, POLLIN, 0}};
    if (follower != nullptr) {
      fds[1].fd = follower->pidfd.get();
      fds[2].fd = follower->err.get();
    }
    const absl::Duration left = until - absl::Now();
    if (left <= absl::ZeroDuration()) return Woke::kTick;
    int n = ::poll(fds, 3, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
    if (n < 0 && errno != EINTR) return Woke::kTick;
    if (n <= 0) continue;
    if (fds[0].revents != 0) {
      uint64_t count;
      (void)!::read(f.wake.get(), &count, sizeof count);
      return f.stop ? Woke::kStop : Woke::kWake;
    }
    if (fds[2].revents != 0) DrainStderr(*follower);
    if (fds[1].revents != 0) return Woke::kFollowerEnded;
  }
}

bool SshExecutor::SendCancel(Follow& f) {
  absl::StatusOr<CommandResult> r = remote_.Run(CancelScript(f.remote), options_.command_timeout);
  if (!r.ok()) {
    Note(f, absl::StrCat("cannot deliver the cancel yet: ", r.status().message()));
    return false;
  }
  Note(f, absl::StrCat("cancel: sent SIGTERM to amld-shim (pid ", f.remote.shim_pid, ") on ",
                       remote_.Describe()));
  return true;
}

absl::StatusOr<Probe> SshExecutor::AskHost(Follow& f) {
  AMLD_ASSIGN_OR_RETURN(CommandResult r,
                        remote_.Run(ProbeScript(f.remote), options_.command_timeout));
  return ParseProbe(r);
}

SshExecutor::Outcome SshExecutor::Lost(Follow& f, const absl::Status& why) {
  Note(f, absl::StrCat("giving up on the run: ", why.message()));
  // How the process ended is unknown: an error, not an exit status.
  return absl::UnavailableError(
      absl::StrCat("lost contact with ", remote_.Describe(), ": ", why.message()));
}

SshExecutor::Outcome SshExecutor::Finish(Follow& f, const Probe& probe) {
  if (absl::Status s = CatchUpLog(f); !s.ok()) Note(f, std::string(s.message()));
  absl::Status pulled = probe.wd_present ? Pull(f, /*final=*/true) : absl::OkStatus();
  if (!pulled.ok()) Note(f, absl::StrCat("copying outputs back: ", pulled.message()));
  const std::string where = absl::StrCat(remote_.Describe(), ":", f.remote.remote_dir);
  Outcome outcome =
      SupervisorLost(where, absl::StrCat("amld-shim is gone and left no ", shim::kExitFileName));
  if (probe.exit_json.has_value()) {
    outcome = ExitFromRecord(*probe.exit_json, where);
    absl::Status kept =
        amld::base::WriteFileAtomically(f.local_dir / shim::kExitFileName, *probe.exit_json);
    if (!kept.ok()) Note(f, std::string(kept.message()));
  }
  if (pulled.ok()) {
    // The snapshot and outputs are home now; the rest stays as a record.
    const std::string rd = ShQuote(f.remote.remote_dir);
    absl::StatusOr<CommandResult> removed = remote_.Run(
        absl::StrCat("rm -rf -- ", rd, "/wd ", rd, "/", kLaunchLockName), options_.command_timeout);
    if (!removed.ok() || !removed->ok()) {
      Note(f, absl::StrCat("cannot remove the run's wd/ on the host: ",
                           removed.ok() ? removed->Describe() : removed.status().message()));
    }
  } else if (outcome.ok() && Succeeded(*outcome)) {
    outcome->failure = absl::StrCat("the run ended, but its outputs could not be copied back from ",
                                    remote_.Describe(), ": ", pulled.message());
  }
  std::error_code ec;
  fs::remove_all(f.local_dir / kSyncTmpName, ec);
  return outcome;
}

// Appends what the host's std log has beyond the local one (after a
// follower ended or instead of one).
absl::Status SshExecutor::CatchUpLog(Follow& f) {
  const fs::path log = f.local_dir / shim::kStdLogPath;
  absl::Duration backoff = options_.backoff;
  for (int attempt = 1;; ++attempt) {
    ScopedFd fd(::open(log.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644));
    if (!fd.valid()) return ErrnoStatus(errno, "open", log);
    struct stat st;
    if (::fstat(fd.get(), &st) != 0) return ErrnoStatus(errno, "stat", log);
    const std::string command =
        absl::StrCat("exec tail -c +", st.st_size + 1, " -- ",
                     ShQuote(absl::StrCat(f.remote.remote_dir, "/", shim::kStdLogPath)));
    AMLD_ASSIGN_OR_RETURN(Child child, Spawn(remote_.SshArgv(command), fd.get()));
    if (!WaitForExit(child, options_.transfer_timeout)) ::kill(child.pid, SIGKILL);
    const int status = Reap(child);
    if (ExitedOk(status)) return absl::OkStatus();
    if (!ConnectionFailed(status) || attempt >= options_.attempts) {
      return absl::UnavailableError(absl::StrCat("copying the log from ", remote_.Describe(), ": ",
                                                 DescribeWait(status, child.err_text)));
    }
    absl::SleepFor(backoff);
    backoff *= 2;
  }
}

absl::Status SshExecutor::Pull(Follow& f, bool final) {
  const fs::path tmp = f.local_dir / kSyncTmpName;
  std::error_code ec;
  fs::create_directories(tmp, ec);
  const std::string rd = f.remote.remote_dir;
  // outputs/ and logs/: mirrored (a file the script removed goes), files
  // replaced whole by rename; temp files kept out of the watched folders.
  // The last copy compares checksums: an mtime can repeat within a second.
  std::vector<std::string> mirror = {"-rlt", "--safe-links", "--delete", "-T", tmp.string()};
  if (final) mirror.push_back("--checksum");
  mirror.insert(mirror.end(),
                {remote_.RsyncPath(rd + "/wd/outputs"), remote_.RsyncPath(rd + "/wd/logs"),
                 (f.local_dir / "wd").string() + "/"});
  // Append-only files grow in place, so a reader following them (metrics
  // ingestion) keeps its offset.
  std::vector<std::string> append = {
      "-rltR", "--append-verify", remote_.RsyncPath(rd + "/./metrics.jsonl"),
      remote_.RsyncPath(absl::StrCat(rd, "/./system_logs/", shim::kShimLogName)),
      f.local_dir.string() + "/"};
  for (const auto* args : {&mirror, &append}) {
    AMLD_ASSIGN_OR_RETURN(CommandResult r, remote_.Rsync(*args, options_.transfer_timeout));
    // 24: files vanished while copying (the script is still writing).
    if (!r.ok() && !(r.signal == 0 && r.exit_code == 24)) {
      return absl::UnavailableError(
          absl::StrCat("rsync from ", remote_.Describe(), ": ", r.Describe()));
    }
  }
  return absl::OkStatus();
}

void SshExecutor::Note(const Follow& f, const std::string& message) const {
  const fs::path path = f.local_dir / "system_logs" / kExecutorLogName;
  ScopedFd fd(::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644));
  if (!fd.valid()) return;
  std::string line =
      absl::StrCat(absl::FormatTime("%Y-%m-%d %H:%M:%E3S", absl::Now(), absl::LocalTimeZone()),
                   " ssh-executor: ", message, "\n");
  (void)amld::base::WriteAll(fd.get(), line, path);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Executor>> NewSshExecutor(const SshExecutorOptions& options) {
  if (!options.shim_path.is_absolute()) {
    return absl::InvalidArgumentError(
        absl::StrCat("amld-shim path ", options.shim_path.string(), " is not absolute"));
  }
  std::error_code ec;
  if (!fs::is_regular_file(options.shim_path, ec)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "amld-shim not found at ", options.shim_path.string(), "; install it beside amld"));
  }
  SshRemoteOptions remote;
  remote.endpoint = options.endpoint;
  remote.state_dir = options.state_dir;
  remote.connect_timeout = options.connect_timeout;
  remote.attempts = options.attempts;
  remote.backoff = options.backoff;
  AMLD_ASSIGN_OR_RETURN(SshRemote ssh, SshRemote::Create(std::move(remote)));
  return std::unique_ptr<Executor>(new SshExecutor(options, std::move(ssh)));
}

}  // namespace amld::daemon
