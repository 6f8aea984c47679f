#include "daemon/executors/slurm/slurm_executor.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <map>
#include <optional>
#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "daemon/executors/command_runner.h"
#include "daemon/executors/shim/shim_protocol.h"
#include "daemon/executors/slurm/slurm_job.h"
#include "nlohmann/json.hpp"
#include "storage/digest.h"
#include "base/file_util.h"
#include "base/status_macros.h"

extern char** environ;

namespace amld::daemon {
namespace {

namespace fs = std::filesystem;
using base::ErrnoStatus;
using base::ScopedFd;
using slurm::JobInfo;

// For a while after a submit, a cancel or a change of state, polls come
// every kFastPoll (a job starts 0.2-1 s after sbatch, on the controller's
// 1 s cycle), then every poll_interval.
constexpr absl::Duration kFastPoll = absl::Milliseconds(100);
constexpr absl::Duration kFastPollWindow = absl::Seconds(3);
constexpr char kCollectedMarker[] = "collected";
constexpr char kExecutorLogName[] = "slurm-executor.log";  // in system_logs/

// One line, with the time, in the daemon's system_logs/slurm-executor.log:
// what a person looking at a run needs to know about its Slurm job.
void LogForRun(const fs::path& run_dir, const std::string& message) {
  std::string line = absl::StrCat(absl::FormatTime("%Y-%m-%dT%H:%M:%E3S%Ez ", absl::Now(),
                                                   absl::LocalTimeZone()),
                                  message, "\n");
  fs::path path = run_dir / "system_logs" / kExecutorLogName;
  ScopedFd fd(::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644));
  if (fd.valid()) (void)base::WriteAll(fd.get(), line, path);
}

struct Handle {
  std::string job_id;
  fs::path shared_dir;
};

std::string FormatHandle(const Handle& h) {
  nlohmann::json j = {{"job_id", h.job_id}, {"shared_dir", h.shared_dir.string()}};
  return j.dump();
}

absl::StatusOr<Handle> ParseHandle(const std::string& run_id, const std::string& text) {
  auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat(
        "handle of run ", run_id, " is not a Slurm executor handle (", why, "): ", text));
  };
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return bad("not a JSON object");
  auto id = j.find("job_id");
  auto dir = j.find("shared_dir");
  if (id == j.end() || !id->is_string() || !slurm::ParseSbatchJobId(id->get<std::string>())) {
    return bad("no job_id");
  }
  if (dir == j.end() || !dir->is_string() || !fs::path(dir->get<std::string>()).is_absolute()) {
    return bad("no absolute shared_dir");
  }
  return Handle{id->get<std::string>(), dir->get<std::string>()};
}

bool HasNul(const std::string& s) { return s.find('\0') != std::string::npos; }

std::vector<std::pair<std::string, std::string>> ProcessEnvironment() {
  std::vector<std::pair<std::string, std::string>> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry = *e;
    size_t eq = entry.find('=');
    if (eq != std::string::npos) env.emplace_back(entry.substr(0, eq), entry.substr(eq + 1));
  }
  return env;
}

absl::Status ValidateSpec(const LaunchSpec& spec) {
  auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat("cannot launch run ", spec.run_id, ": ", why));
  };
  if (spec.run_id.empty() || spec.run_id.find('/') != std::string::npos || spec.run_id[0] == '.') {
    return bad("the run id must be a plain file name");
  }
  if (spec.argv.empty() || spec.argv[0].empty()) return bad("empty command");
  for (const std::string& arg : spec.argv) {
    if (HasNul(arg)) return bad("a command argument contains a NUL byte");
  }
  for (const auto& [name, value] : spec.env) {
    if (name.empty() || name.find('=') != std::string::npos || HasNul(name) || HasNul(value)) {
      return bad(absl::StrCat("bad environment variable name \"", name, "\""));
    }
  }
  if (spec.max_duration < absl::ZeroDuration()) return bad("negative max_duration");
  if (spec.kill_grace < absl::ZeroDuration()) return bad("negative kill_grace");
  std::error_code ec;
  if (!fs::is_directory(spec.run_dir / "wd", ec)) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot launch run ", spec.run_id, ": its working folder ",
                     (spec.run_dir / "wd").string(), " does not exist; prepare it first"));
  }
  return absl::OkStatus();
}

// Appends to `to` what `from` has beyond `to`'s size: logs only grow, and
// the destination's size is the offset, so this is idempotent and resumes
// after a daemon restart. A missing `from` is nothing to copy.
absl::Status CopyGrowth(const fs::path& from, const fs::path& to) {
  ScopedFd in(::open(from.c_str(), O_RDONLY | O_CLOEXEC));
  if (!in.valid()) return errno == ENOENT ? absl::OkStatus() : ErrnoStatus(errno, "open", from);
  ScopedFd out(::open(to.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644));
  if (!out.valid()) return ErrnoStatus(errno, "open", to);
  struct stat st;
  if (::fstat(out.get(), &st) != 0) return ErrnoStatus(errno, "stat", to);
  off_t offset = st.st_size;
  char buf[128 * 1024];
  for (;;) {
    ssize_t n = ::pread(in.get(), buf, sizeof buf, offset);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, "read", from);
    if (n == 0) return absl::OkStatus();
    AMLD_RETURN_IF_ERROR(
        base::WriteAll(out.get(), std::string_view(buf, static_cast<size_t>(n)), to));
    offset += n;
  }
}

// Replaces `to` (a folder) with a copy of `from`; links stay links. A
// missing `from` leaves an empty `to`.
absl::Status ReplaceFolderWithCopy(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  fs::remove_all(to, ec);
  if (ec) return ErrnoStatus(ec.value(), "remove", to);
  if (!fs::is_directory(fs::symlink_status(from, ec))) {
    fs::create_directories(to, ec);
    return ec ? ErrnoStatus(ec.value(), "mkdir", to) : absl::OkStatus();
  }
  fs::copy(from, to, fs::copy_options::recursive | fs::copy_options::copy_symlinks, ec);
  return ec ? ErrnoStatus(ec.value(), absl::StrCat("copy ", from.string(), " to"), to)
            : absl::OkStatus();
}

absl::Status CopyFileOver(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  if (!fs::is_regular_file(fs::symlink_status(from, ec))) return absl::OkStatus();
  fs::copy_file(from, to, fs::copy_options::overwrite_existing, ec);
  return ec ? ErrnoStatus(ec.value(), absl::StrCat("copy ", from.string(), " to"), to)
            : absl::OkStatus();
}

std::optional<shim::ExitRecord> ReadExitRecord(const fs::path& shared_dir, std::string* problem) {
  fs::path path = shared_dir / shim::kExitFileName;
  absl::StatusOr<std::string> text = base::ReadFileToString(path);
  if (!text.ok()) {
    if (!absl::IsNotFound(text.status())) *problem = std::string(text.status().message());
    return std::nullopt;
  }
  std::string error;
  std::optional<shim::ExitRecord> record = shim::ParseExitRecord(*text, &error);
  if (!record) *problem = absl::StrCat(path.string(), " is unreadable: ", error);
  return record;
}

bool InvalidJobIdError(const CommandResult& r) {
  return absl::StrContains(r.err, "Invalid job id");
}

class SlurmExecutor final : public Executor {
 public:
  SlurmExecutor(SlurmExecutorOptions options, std::string shim_name)
      : options_(std::move(options)), shim_name_(std::move(shim_name)) {
    thread_ = std::thread([this] { ThreadMain(); });
  }

  ~SlurmExecutor() override {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    thread_.join();
  }

  void SetExitCallback(ExitCallback callback) override {
    absl::MutexLock lock(&mu_);
    exit_callback_ = std::move(callback);
  }

  void SetProgressCallback(ProgressCallback callback) override {
    absl::MutexLock lock(&mu_);
    progress_callback_ = std::move(callback);
  }

  absl::StatusOr<std::string> Launch(const LaunchSpec& spec) override;

  // "slurm:<job id>", and " on <nodes>" once the job was seen running.
  std::string Placement(const std::string& run_id, const std::string& handle) const override {
    absl::StatusOr<Handle> h = ParseHandle(run_id, handle);
    if (!h.ok()) return "slurm";
    absl::MutexLock lock(&mu_);
    if (auto it = jobs_.find(run_id); it != jobs_.end() && it->second.progress.started) {
      return it->second.progress.placement;
    }
    return absl::StrCat("slurm:", h->job_id);
  }

  absl::Status Reattach(const std::string& run_id, const fs::path& run_dir,
                        const std::string& handle) override {
    AMLD_ASSIGN_OR_RETURN(Handle h, ParseHandle(run_id, handle));
    {
      absl::MutexLock lock(&mu_);
      if (jobs_.count(run_id) != 0) return AlreadyWatched(run_id);
    }
    ReportWaiting(run_id, h.job_id, "re-adopted, asking Slurm");
    absl::MutexLock lock(&mu_);
    if (jobs_.count(run_id) != 0) return AlreadyWatched(run_id);
    Job job;
    job.job_id = h.job_id;
    job.run_dir = fs::absolute(run_dir).lexically_normal();
    job.shared_dir = h.shared_dir;
    jobs_.emplace(run_id, std::move(job));
    PollSoonLocked();
    return absl::OkStatus();
  }

  absl::Status Cancel(const std::string& run_id) override {
    absl::MutexLock lock(&mu_);
    auto it = jobs_.find(run_id);
    if (it == jobs_.end()) {
      return absl::NotFoundError(absl::StrCat("run ", run_id, " is not running here"));
    }
    it->second.cancel_pending = true;
    PollSoonLocked();
    return absl::OkStatus();
  }

 private:
  struct Job {
    std::string job_id;
    fs::path run_dir;     // the daemon's runs/<id>
    fs::path shared_dir;  // <workdir>/<id>
    bool cancel_pending = false;
    bool progress_sent = false;
    RunProgress progress;           // the last one reported
    std::string last_poll_problem;  // logged once per distinct problem
    std::optional<absl::Time> final_without_exit_file_since;
  };

  // Says, on the caller's thread, that the run waits in Slurm (executor.h:
  // SetProgressCallback); the poller reports what Slurm says next.
  void ReportWaiting(const std::string& run_id, const std::string& job_id,
                     const std::string& detail) {
    ProgressCallback callback;
    {
      absl::MutexLock lock(&mu_);
      callback = progress_callback_;
    }
    RunProgress waiting;
    waiting.placement = absl::StrCat("slurm:", job_id);
    waiting.detail = detail;
    if (callback) callback(run_id, waiting);
  }

  static absl::Status AlreadyWatched(const std::string& run_id) {
    return absl::AlreadyExistsError(absl::StrCat("run ", run_id, " is already running here"));
  }

  void PollSoonLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    poll_soon_ = true;
    fast_until_ = absl::Now() + kFastPollWindow;
  }

  absl::StatusOr<fs::path> EnsureShimOnSharedDir();
  absl::StatusOr<std::string> Submit(const LaunchSpec& spec, const fs::path& run_dir,
                                     const fs::path& shared_dir);
  void ThreadMain();
  void PollOnce();
  void SendCancels(const std::vector<std::pair<std::string, Job>>& jobs);
  void PollJob(const std::string& run_id, Job job, const std::map<std::string, JobInfo>& queue,
               bool queue_ok);
  std::optional<JobInfo> FinalRecordOffQueue(const Job& job, const std::string& run_id);
  std::optional<JobInfo> ScontrolJob(const std::string& job_id);
  std::optional<JobInfo> SacctJob(const std::string& job_id);
  std::string JobCompFile();
  void SendProgress(const std::string& run_id, const RunProgress& progress);
  void Finish(const std::string& run_id, const Job& job, const JobInfo& info,
              const std::optional<shim::ExitRecord>& record);
  absl::Status CopyBack(const Job& job);
  // Updates the stored copy of a job, if it is still watched.
  void UpdateJob(const std::string& run_id, const std::function<void(Job&)>& update);

  const SlurmExecutorOptions options_;
  const std::string shim_name_;  // amld-shim-<digest prefix>

  absl::Mutex shim_mu_;
  bool shim_ready_ ABSL_GUARDED_BY(shim_mu_) = false;

  mutable absl::Mutex mu_;
  ExitCallback exit_callback_ ABSL_GUARDED_BY(mu_);
  ProgressCallback progress_callback_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Job> jobs_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool poll_soon_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time fast_until_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();

  // Poller thread only.
  std::optional<std::string> jobcomp_file_;  // resolved once
  bool sacct_unavailable_ = false;
  std::thread thread_;
};

// ---------------------------------------------------------------------------
// Launch.

absl::StatusOr<fs::path> SlurmExecutor::EnsureShimOnSharedDir() {
  const fs::path dir = options_.workdir / ".amld";
  const fs::path target = dir / shim_name_;
  absl::MutexLock lock(&shim_mu_);
  std::error_code ec;
  if (shim_ready_ && fs::exists(target, ec)) return target;
  if (!fs::exists(target, ec)) {
    fs::create_directories(dir, ec);
    if (ec) return ErrnoStatus(ec.value(), "mkdir", dir);
    const fs::path tmp = dir / absl::StrCat(shim_name_, ".tmp.", ::getpid());
    fs::copy_file(options_.shim_path, tmp, fs::copy_options::overwrite_existing, ec);
    if (ec) return ErrnoStatus(ec.value(), "copy amld-shim to", tmp);
    fs::permissions(tmp, fs::perms(0755), ec);
    if (ec || ::rename(tmp.c_str(), target.c_str()) != 0) {
      int err = ec ? ec.value() : errno;
      fs::remove(tmp, ec);
      return ErrnoStatus(err, "install", target);
    }
  }
  shim_ready_ = true;
  return target;
}

absl::StatusOr<std::string> SlurmExecutor::Launch(const LaunchSpec& spec) {
  AMLD_RETURN_IF_ERROR(ValidateSpec(spec));
  const fs::path run_dir = fs::absolute(spec.run_dir).lexically_normal();
  const fs::path shared_dir = options_.workdir / spec.run_id;
  {
    absl::MutexLock lock(&mu_);
    if (jobs_.count(spec.run_id) != 0) return AlreadyWatched(spec.run_id);
  }
  std::error_code ec;
  fs::create_directories(run_dir / "system_logs", ec);
  absl::StatusOr<std::string> job_id = Submit(spec, run_dir, shared_dir);
  if (!job_id.ok()) {
    LogForRun(run_dir, absl::StrCat("not submitted: ", job_id.status().message()));
    fs::remove_all(shared_dir, ec);  // nothing of it runs
    return job_id.status();
  }
  LogForRun(run_dir, absl::StrCat("submitted as Slurm job ", *job_id, "; work dir ",
                                  shared_dir.string()));
  // Before the job is watched, so before any exit of it can be reported.
  ReportWaiting(spec.run_id, *job_id, "SUBMITTED");
  {
    absl::MutexLock lock(&mu_);
    Job job;
    job.job_id = *job_id;
    job.run_dir = run_dir;
    job.shared_dir = shared_dir;
    jobs_.emplace(spec.run_id, std::move(job));
    PollSoonLocked();
  }
  return FormatHandle(Handle{*job_id, shared_dir});
}

absl::StatusOr<std::string> SlurmExecutor::Submit(const LaunchSpec& spec, const fs::path& run_dir,
                                                  const fs::path& shared_dir) {
  AMLD_ASSIGN_OR_RETURN(fs::path shim, EnsureShimOnSharedDir());
  std::error_code ec;
  // A leftover of an earlier, failed attempt with this id.
  fs::remove_all(shared_dir, ec);
  for (const char* sub : {"user_logs", "system_logs"}) {
    fs::create_directories(shared_dir / sub, ec);
    if (ec) return ErrnoStatus(ec.value(), "mkdir", shared_dir / sub);
  }
  ScopedFd log(::open((shared_dir / shim::kStdLogPath).c_str(),
                      O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
  if (!log.valid()) return ErrnoStatus(errno, "create", shared_dir / shim::kStdLogPath);
  fs::copy(run_dir / "wd", shared_dir / "wd",
           fs::copy_options::recursive | fs::copy_options::copy_symlinks, ec);
  if (ec) {
    return ErrnoStatus(ec.value(), absl::StrCat("copy the run's files to the shared work dir"),
                       shared_dir / "wd");
  }
  slurm::BatchScriptSpec script;
  script.run_id = spec.run_id;
  script.shared_run_dir = shared_dir;
  script.shim = shim;
  script.argv = spec.argv;
  script.env = slurm::JobEnvironment(spec.env, run_dir, shared_dir);
  script.max_duration = spec.max_duration;
  script.kill_grace = spec.kill_grace;
  AMLD_RETURN_IF_ERROR(
      base::WriteFileAtomically(shared_dir / "job.sh", slurm::BatchScript(script), 0755));

  slurm::SubmitSpec submit;
  submit.run_id = spec.run_id;
  submit.shared_run_dir = shared_dir;
  submit.max_duration = spec.max_duration;
  submit.partition = options_.partition;
  submit.account = options_.account;
  submit.cpus = spec.cpus;
  submit.gpus = spec.gpus;
  submit.extra_args = options_.sbatch_args;
  std::vector<std::string> argv = slurm::SbatchArgv(submit);
  AMLD_ASSIGN_OR_RETURN(
      CommandResult result,
      RunCommand(argv, options_.command_timeout, slurm::SbatchEnvironment(ProcessEnvironment())));
  if (!result.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("sbatch refused the job (", result.Describe(), ")"));
  }
  std::optional<std::string> job_id = slurm::ParseSbatchJobId(result.out);
  if (!job_id) {
    return absl::InternalError(
        absl::StrCat("sbatch printed no job id: ", absl::StripAsciiWhitespace(result.out)));
  }
  return *job_id;
}

// ---------------------------------------------------------------------------
// The poller.

void SlurmExecutor::ThreadMain() {
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      // No runs: no timer, wait for one.
      mu_.Await(absl::Condition(
          +[](SlurmExecutor* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
            return self->stopping_ || !self->jobs_.empty();
          },
          this));
      if (stopping_) return;
      poll_soon_ = false;
    }
    PollOnce();
    absl::MutexLock lock(&mu_);
    absl::Duration delay =
        absl::Now() < fast_until_ ? std::min(kFastPoll, options_.poll_interval)
                                  : options_.poll_interval;
    mu_.AwaitWithTimeout(absl::Condition(
                             +[](SlurmExecutor* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
                               return self->stopping_ || self->poll_soon_;
                             },
                             this),
                         delay);
    if (stopping_) return;
  }
}

void SlurmExecutor::UpdateJob(const std::string& run_id,
                              const std::function<void(Job&)>& update) {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(run_id);
  if (it != jobs_.end()) update(it->second);
}

void SlurmExecutor::SendCancels(const std::vector<std::pair<std::string, Job>>& jobs) {
  for (const auto& [run_id, job] : jobs) {
    if (!job.cancel_pending) continue;
    absl::StatusOr<CommandResult> r = RunCommand({"scancel", job.job_id}, options_.command_timeout);
    // An unknown job has ended already: its end is reported as it is.
    bool done = r.ok() && (r->ok() || InvalidJobIdError(*r));
    if (done) {
      LogForRun(job.run_dir, absl::StrCat("scancel ", job.job_id, ": asked Slurm to cancel"));
    } else {
      LogForRun(job.run_dir, absl::StrCat("scancel ", job.job_id, " failed (retrying): ",
                                          r.ok() ? r->Describe() : r.status().ToString()));
    }
    UpdateJob(run_id, [&](Job& j) { j.cancel_pending = j.cancel_pending && !done; });
  }
}

void SlurmExecutor::PollOnce() {
  std::vector<std::pair<std::string, Job>> jobs;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [run_id, job] : jobs_) jobs.emplace_back(run_id, job);
  }
  if (jobs.empty()) return;
  SendCancels(jobs);
  std::vector<std::string> ids;
  for (const auto& [run_id, job] : jobs) ids.push_back(job.job_id);
  absl::StatusOr<CommandResult> r =
      RunCommand({"squeue", "-h", "-t", "all", "-j", absl::StrJoin(ids, ","), "-o",
                  slurm::kSqueueFormat},
                 options_.command_timeout);
  // A single unknown id makes squeue fail with "Invalid job id": it is not
  // in the queue any more, the same as an empty answer.
  bool queue_ok = r.ok() && (r->ok() || InvalidJobIdError(*r));
  std::map<std::string, JobInfo> queue;
  if (queue_ok && r->ok()) queue = slurm::ParseSqueue(r->out);
  for (auto& [run_id, job] : jobs) {
    if (!queue_ok) {
      std::string problem =
          absl::StrCat("squeue failed (retrying): ", r.ok() ? r->Describe() : r.status().ToString());
      if (problem != job.last_poll_problem) LogForRun(job.run_dir, problem);
      UpdateJob(run_id, [&](Job& j) { j.last_poll_problem = problem; });
    }
    PollJob(run_id, std::move(job), queue, queue_ok);
  }
}

void SlurmExecutor::PollJob(const std::string& run_id, Job job,
                            const std::map<std::string, JobInfo>& queue, bool queue_ok) {
  absl::Status synced = CopyGrowth(job.shared_dir / shim::kStdLogPath, job.run_dir / shim::kStdLogPath);
  if (synced.ok()) {
    synced = CopyGrowth(job.shared_dir / "metrics.jsonl", job.run_dir / "metrics.jsonl");
  }
  if (!synced.ok() && synced.ToString() != job.last_poll_problem) {
    LogForRun(job.run_dir, absl::StrCat("copying logs back: ", synced.ToString()));
    UpdateJob(run_id, [&](Job& j) { j.last_poll_problem = synced.ToString(); });
  }
  if (!queue_ok) return;
  std::optional<JobInfo> info;
  if (auto it = queue.find(job.job_id); it != queue.end()) info = it->second;
  if (info && !slurm::IsFinalState(info->state)) {
    SendProgress(run_id, slurm::ProgressOf(*info));
    return;
  }
  // Over: the exit code and times from scontrol while Slurm still holds the
  // job, else from what it left behind.
  if (info) {
    if (std::optional<JobInfo> full = ScontrolJob(job.job_id); full && full->state == info->state) {
      info = full;
    }
  } else {
    info = FinalRecordOffQueue(job, run_id);
  }
  std::string problem;
  std::optional<shim::ExitRecord> record = ReadExitRecord(job.shared_dir, &problem);
  if (!info && !record) {
    // Slurm forgot the job and nothing says how it ended.
    JobInfo lost;
    lost.job_id = job.job_id;
    lost.state = "UNKNOWN";
    std::string why = absl::StrCat(
        "Slurm no longer knows job ", job.job_id,
        " (it left squeue, and neither accounting nor a job-completion file has it) and "
        "amld-shim left no exit record in ",
        job.shared_dir.string(), problem.empty() ? "" : ": " + problem);
    LogForRun(job.run_dir, why);
    ExitCallback callback;
    {
      absl::MutexLock lock(&mu_);
      jobs_.erase(run_id);
      callback = exit_callback_;
    }
    if (callback) callback(run_id, absl::UnavailableError(why));
    return;
  }
  if (!info) {
    // Only the shim's record: the job finished as it says.
    info.emplace();
    info->job_id = job.job_id;
    info->state = record->exit_code == 0 && record->signal == 0 ? "COMPLETED" : "FAILED";
  }
  if (!record && slurm::HasStarted(*info) && info->state != "CANCELLED" &&
      info->state != "TIMEOUT") {
    // A shared filesystem may show exit.json late: wait a little for it.
    absl::Time now = absl::Now();
    if (!job.final_without_exit_file_since) {
      UpdateJob(run_id, [&](Job& j) { j.final_without_exit_file_since = now; });
      return;
    }
    if (now - *job.final_without_exit_file_since < options_.exit_file_wait) return;
  }
  Finish(run_id, job, *info, record);
}

std::optional<JobInfo> SlurmExecutor::ScontrolJob(const std::string& job_id) {
  absl::StatusOr<CommandResult> r =
      RunCommand({"scontrol", "show", "job", "-o", job_id}, options_.command_timeout);
  if (!r.ok() || !r->ok()) return std::nullopt;
  return slurm::ParseScontrolJob(r->out);
}

std::optional<JobInfo> SlurmExecutor::SacctJob(const std::string& job_id) {
  if (sacct_unavailable_) return std::nullopt;
  absl::StatusOr<CommandResult> r = RunCommand(
      {"sacct", "-n", "-P", "-X", "-j", job_id, "-o", "JobID,JobName,State,ExitCode,Start,End,NodeList,Reason"},
      options_.command_timeout);
  if (!r.ok()) {
    sacct_unavailable_ = absl::IsNotFound(r.status());
    return std::nullopt;
  }
  if (!r->ok()) {
    sacct_unavailable_ = absl::StrContains(r->err, "accounting storage is disabled");
    return std::nullopt;
  }
  for (absl::string_view line : absl::StrSplit(r->out, '\n', absl::SkipWhitespace())) {
    std::vector<std::string> f = absl::StrSplit(line, '|');
    if (f.size() < 8 || f[0] != job_id) continue;
    // Same shape as scontrol's line, so one parser reads both.
    return slurm::ParseScontrolJob(absl::StrCat("JobId=", f[0], " JobName=", f[1], " JobState=",
                                                f[2], " ExitCode=", f[3], " StartTime=", f[4],
                                                " EndTime=", f[5], " NodeList=", f[6],
                                                " Reason=", f[7]));
  }
  return std::nullopt;
}

std::string SlurmExecutor::JobCompFile() {
  if (!jobcomp_file_) {
    if (!options_.jobcomp_file.empty()) {
      jobcomp_file_ = options_.jobcomp_file.string();
    } else {
      absl::StatusOr<CommandResult> r =
          RunCommand({"scontrol", "show", "config"}, options_.command_timeout);
      if (!r.ok() || !r->ok()) return "";  // asked again next time
      jobcomp_file_ = slurm::JobCompFileFromConfig(r->out);
    }
  }
  return *jobcomp_file_;
}

std::optional<JobInfo> SlurmExecutor::FinalRecordOffQueue(const Job& job,
                                                           const std::string& run_id) {
  if (std::optional<JobInfo> info = ScontrolJob(job.job_id); info && slurm::IsFinalState(info->state)) {
    return info;
  }
  if (std::optional<JobInfo> info = SacctJob(job.job_id); info && slurm::IsFinalState(info->state)) {
    return info;
  }
  std::string file = JobCompFile();
  if (file.empty()) return std::nullopt;
  absl::StatusOr<std::string> text = base::ReadFileToString(file);
  if (!text.ok()) return std::nullopt;
  return slurm::FindJobCompRecord(*text, job.job_id, run_id);
}

void SlurmExecutor::SendProgress(const std::string& run_id, const RunProgress& progress) {
  ProgressCallback callback;
  fs::path run_dir;
  std::string job_id;
  {
    absl::MutexLock lock(&mu_);
    auto it = jobs_.find(run_id);
    if (it == jobs_.end()) return;
    Job& job = it->second;
    if (job.progress_sent && job.progress.started == progress.started &&
        job.progress.placement == progress.placement && job.progress.detail == progress.detail) {
      return;
    }
    job.progress_sent = true;
    job.progress = progress;
    fast_until_ = absl::Now() + kFastPollWindow;  // things are moving
    callback = progress_callback_;
    run_dir = job.run_dir;
    job_id = job.job_id;
  }
  LogForRun(run_dir, absl::StrCat("Slurm job ", job_id, ": ", progress.detail,
                                  progress.started ? ", " + progress.placement : ""));
  if (callback) callback(run_id, progress);
}

absl::Status SlurmExecutor::CopyBack(const Job& job) {
  const fs::path& from = job.shared_dir;
  const fs::path& to = job.run_dir;
  AMLD_RETURN_IF_ERROR(CopyGrowth(from / shim::kStdLogPath, to / shim::kStdLogPath));
  AMLD_RETURN_IF_ERROR(CopyGrowth(from / "metrics.jsonl", to / "metrics.jsonl"));
  AMLD_RETURN_IF_ERROR(CopyFileOver(from / shim::kExitFileName, to / shim::kExitFileName));
  AMLD_RETURN_IF_ERROR(CopyFileOver(from / "job.sh", to / "system_logs" / "slurm-job.sh"));
  std::error_code ec;
  for (fs::directory_iterator it(from / "system_logs", ec), end; !ec && it != end;
       it.increment(ec)) {
    AMLD_RETURN_IF_ERROR(CopyFileOver(it->path(), to / "system_logs" / it->path().filename()));
  }
  // Done once: after a daemon restart the marker says the copies are home.
  if (fs::exists(from / kCollectedMarker, ec)) return absl::OkStatus();
  for (const char* sub : {"outputs", "logs"}) {
    AMLD_RETURN_IF_ERROR(ReplaceFolderWithCopy(from / "wd" / sub, to / "wd" / sub));
  }
  AMLD_RETURN_IF_ERROR(base::WriteFileAtomically(from / kCollectedMarker, "collected\n"));
  // The snapshot copy and the outputs are home now; the small files stay.
  fs::remove_all(from / "wd", ec);
  return absl::OkStatus();
}

void SlurmExecutor::Finish(const std::string& run_id, const Job& job, const JobInfo& info,
                           const std::optional<shim::ExitRecord>& record) {
  // A job that ran between two polls is reported as started first, so the
  // run passes RUNNING on its way to the end.
  if (slurm::HasStarted(info)) {
    RunProgress started = slurm::ProgressOf(info);
    started.started = true;
    SendProgress(run_id, started);
  }
  ExitStatus status = slurm::DecideJobEnd(info, record);
  absl::Status copied = CopyBack(job);
  if (!copied.ok() && status.failure.empty()) {
    status.failure = absl::StrCat("the run ended but its files could not be copied back from ",
                                  job.shared_dir.string(), ": ", copied.message());
  }
  LogForRun(job.run_dir,
            absl::StrCat("Slurm job ", job.job_id, " ended ", info.state,
                         info.exit_code ? absl::StrCat(" (ExitCode ", *info.exit_code, ":",
                                                       info.exit_signal.value_or(0), ")")
                                        : "",
                         record ? "" : "; amld-shim left no exit.json",
                         copied.ok() ? "" : absl::StrCat("; copy back failed: ", copied.message())));
  ExitCallback callback;
  {
    absl::MutexLock lock(&mu_);
    jobs_.erase(run_id);
    callback = exit_callback_;
  }
  if (callback) callback(run_id, status);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Executor>> NewSlurmExecutor(const SlurmExecutorOptions& options) {
  if (!options.workdir.is_absolute()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the Slurm work dir must be an absolute path on a filesystem the nodes "
                     "share, not \"",
                     options.workdir.string(), "\""));
  }
  if (options.poll_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("the Slurm poll interval must be positive");
  }
  for (const std::string& arg : options.sbatch_args) {
    if (arg.empty() || HasNul(arg)) {
      return absl::InvalidArgumentError("an sbatch argument is empty or contains a NUL byte");
    }
  }
  absl::StatusOr<storage::Digest> digest = storage::DigestOfFile(options.shim_path);
  if (!digest.ok() || ::access(options.shim_path.c_str(), X_OK) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("amld-shim is not an executable at ", options.shim_path.string(),
                     "; build the amld-shim target or install it"));
  }
  SlurmExecutorOptions normalized = options;
  normalized.workdir = options.workdir.lexically_normal();
  if (normalized.workdir.has_filename() == false) normalized.workdir = normalized.workdir.parent_path();
  return std::make_unique<SlurmExecutor>(std::move(normalized),
                                         absl::StrCat("amld-shim-", digest->hash.substr(0, 16)));
}

}  // namespace amld::daemon
