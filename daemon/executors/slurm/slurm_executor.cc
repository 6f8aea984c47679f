#include "daemon/executors/slurm/slurm_executor.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "base/file_util.h"
#include "base/status_macros.h"
#include "daemon/executors/launch/launch_protocol.h"
#include "daemon/executors/launch_spec.h"
#include "daemon/executors/run_handle.h"
#include "daemon/executors/run_as.h"
#include "daemon/executors/shim/shim_protocol.h"
#include "daemon/executors/slurm/slurm_executor_impl.h"
#include "daemon/executors/slurm/slurm_job.h"
#include "storage/digest.h"

extern char** environ;

namespace amld::daemon {
namespace slurm {
namespace {

namespace fs = std::filesystem;
using base::ErrnoStatus;
using base::ScopedFd;

constexpr char kHandleKind[] = "a Slurm executor";

struct Handle {
  std::string job_id;
  fs::path shared_dir;
  std::optional<uid_t> uid;  // system mode: the submitter's
};

absl::StatusOr<Handle> ParseHandle(const std::string& run_id, const std::string& text) {
  AMLD_ASSIGN_OR_RETURN(RunHandle h, RunHandle::Parse(kHandleKind, run_id, text));
  absl::StatusOr<std::string> id = h.String("job_id");
  if (!id.ok() || !ParseSbatchJobId(*id)) return h.Invalid("no job_id");
  absl::StatusOr<std::string> dir = h.String("shared_dir");
  if (!dir.ok() || !fs::path(*dir).is_absolute()) return h.Invalid("no absolute shared_dir");
  Handle handle{*id, *dir, std::nullopt};
  if (h.Has("uid")) {
    absl::StatusOr<int64_t> uid = h.Int("uid");
    if (!uid.ok() || *uid < 0) return h.Invalid("a bad uid");
    handle.uid = static_cast<uid_t>(*uid);
  }
  return handle;
}

std::string EncodeHandle(const std::string& job_id, const fs::path& shared_dir,
                         const std::optional<RunAs>& run_as) {
  RunHandle h;
  h.Set("job_id", job_id).Set("shared_dir", shared_dir.string());
  if (run_as) h.Set("uid", static_cast<int64_t>(run_as->uid));
  return h.Encode();
}

// A folder the submitter's job must enter: searchable by others. The
// daemon's umask (077) would make one it creates its own alone.
absl::Status MakeReachable(const fs::path& dir, const std::optional<RunAs>& run_as,
                           bool created) {
  if (!run_as) return absl::OkStatus();
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) return ErrnoStatus(errno, "stat", dir);
  if ((st.st_mode & S_IXOTH) != 0) return absl::OkStatus();
  if (created) {
    if (::chmod(dir.c_str(), (st.st_mode & 07777) | 0711) != 0) {
      return ErrnoStatus(errno, "chmod", dir);
    }
    return absl::OkStatus();
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "the Slurm work dir ", dir.string(), " is closed to other users, so ", run_as->user,
      "'s job could not enter its run folder there: make it searchable (chmod o+x ",
      dir.string(), "; mode 0711 keeps it unlistable)"));
}

std::vector<std::pair<std::string, std::string>> ProcessEnvironment() {
  std::vector<std::pair<std::string, std::string>> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry = *e;
    size_t eq = entry.find('=');
    if (eq != std::string::npos) env.emplace_back(entry.substr(0, eq), entry.substr(eq + 1));
  }
  return env;
}

}  // namespace

SlurmExecutor::SlurmExecutor(SlurmExecutorOptions options, std::string shim_name)
    : options_(std::move(options)),
      runner_(options_.runner ? *options_.runner : SystemCommandRunner()),
      shim_name_(std::move(shim_name)) {
  thread_ = std::thread([this] { ThreadMain(); });
}

SlurmExecutor::~SlurmExecutor() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

void SlurmExecutor::SetExitCallback(ExitCallback callback) {
  absl::MutexLock lock(&mu_);
  exit_callback_ = std::move(callback);
}

void SlurmExecutor::SetProgressCallback(ProgressCallback callback) {
  absl::MutexLock lock(&mu_);
  progress_callback_ = std::move(callback);
}

std::string SlurmExecutor::Placement(const std::string& run_id, const std::string& handle) const {
  absl::StatusOr<Handle> h = ParseHandle(run_id, handle);
  if (!h.ok()) return "slurm";
  absl::MutexLock lock(&mu_);
  if (auto it = jobs_.find(run_id); it != jobs_.end() && it->second.progress.started) {
    return it->second.progress.placement;
  }
  return absl::StrCat("slurm:", h->job_id);
}

absl::Status SlurmExecutor::Reattach(const std::string& run_id, const fs::path& run_dir,
                                     const std::string& handle) {
  AMLD_ASSIGN_OR_RETURN(Handle h, ParseHandle(run_id, handle));
  {
    absl::MutexLock lock(&mu_);
    if (jobs_.count(run_id) != 0) return AlreadyWatched(run_id);
  }
  std::optional<RunAs> run_as;
  if (h.uid) {
    AMLD_ASSIGN_OR_RETURN(run_as, LookupAccount(*h.uid));
  }
  ReportWaiting(run_id, h.job_id, "re-adopted, asking Slurm");
  absl::MutexLock lock(&mu_);
  if (jobs_.count(run_id) != 0) return AlreadyWatched(run_id);
  Job job;
  job.job_id = h.job_id;
  job.run_dir = fs::absolute(run_dir).lexically_normal();
  job.shared_dir = h.shared_dir;
  job.run_as = std::move(run_as);
  jobs_.emplace(run_id, std::move(job));
  PollSoonLocked();
  return absl::OkStatus();
}

absl::StatusOr<std::string> SlurmExecutor::FindUnrecorded(const std::string& run_id,
                                                          const fs::path& run_dir,
                                                          const std::optional<RunAs>& run_as) {
  // Job ids of the jobs a command lists, one per line.
  auto ids_of = [](const CommandResult& r) {
    std::vector<int64_t> ids;
    for (absl::string_view line : absl::StrSplit(r.out, '\n', absl::SkipWhitespace())) {
      int64_t id = 0;
      if (absl::SimpleAtoi(absl::StripAsciiWhitespace(line), &id)) ids.push_back(id);
    }
    return ids;
  };
  // As the submitter (system mode), whose job it would be: a user's squeue
  // lists the jobs Slurm lets them see, and no job of another user by
  // this name is taken for theirs.
  AMLD_ASSIGN_OR_RETURN(
      CommandResult queued,
      RunSlurm({"squeue", "-h", "-t", "all", "--name", run_id, "-o", "%i"}, {}, run_as));
  if (!queued.ok()) {
    return absl::UnavailableError(
        absl::StrCat("cannot ask Slurm for a job named ", run_id, ": ", queued.Describe()));
  }
  std::vector<int64_t> ids = ids_of(queued);
  if (ids.empty()) {
    // Gone from squeue (MinJobAge): accounting, when the cluster keeps it.
    absl::StatusOr<CommandResult> accounted = RunSlurm(
        {"sacct", "-n", "-X", "-P", "-S", "now-30days", "--name", run_id, "-o", "JobID"}, {},
        run_as);
    if (accounted.ok() && accounted->ok()) ids = ids_of(*accounted);
  }
  if (ids.empty()) {
    return absl::NotFoundError(
        absl::StrCat("Slurm has no job named ", run_id, " (squeue, sacct): it was never submitted"));
  }
  const std::string job_id = absl::StrCat(*std::max_element(ids.begin(), ids.end()));
  LogForRun(run_dir, absl::StrCat("found Slurm job ", job_id,
                                  " by its name after a daemon restart; its id was never recorded"));
  // With the submitter's uid, so the polls after Reattach ask as them too.
  return EncodeHandle(job_id, options_.workdir / run_id, run_as);
}

absl::Status SlurmExecutor::Cancel(const std::string& run_id) {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(run_id);
  if (it == jobs_.end()) {
    return absl::NotFoundError(absl::StrCat("run ", run_id, " is not running here"));
  }
  it->second.cancel_pending = true;
  PollSoonLocked();
  return absl::OkStatus();
}

void SlurmExecutor::ReportWaiting(const std::string& run_id, const std::string& job_id,
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

absl::Status SlurmExecutor::AlreadyWatched(const std::string& run_id) {
  return absl::AlreadyExistsError(absl::StrCat("run ", run_id, " is already running here"));
}

void SlurmExecutor::PollSoonLocked() {
  poll_soon_ = true;
  fast_until_ = absl::Now() + kFastPollWindow;
}

absl::StatusOr<CommandResult> SlurmExecutor::RunSlurm(std::vector<std::string> argv,
                                                      std::optional<std::vector<std::string>> env,
                                                      const std::optional<RunAs>& run_as) {
  Command command;
  command.argv = std::move(argv);
  command.timeout = options_.command_timeout;
  command.env = std::move(env);
  command.run_as = run_as;
  return runner_.Run(command);
}

namespace {

// <workdir>/.amld, where the tools (amld-shim, amld-launch) and amld's
// Python for runs are installed, made if missing. Public: every submitter's
// job runs what is inside (system mode), whichever install made it first.
absl::StatusOr<fs::path> MakeToolsDir(const fs::path& workdir) {
  const fs::path dir = workdir / ".amld";
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return ErrnoStatus(ec.value(), "mkdir", dir);
  fs::permissions(dir, fs::perms(0755), ec);
  return dir;
}

}  // namespace

// Copies `source` to <workdir>/.amld/<name> unless it is there (the name
// carries the file's digest, so a file there is the right one).
absl::StatusOr<fs::path> SlurmExecutor::InstallOnSharedDirLocked(const fs::path& source,
                                                                 const std::string& name) {
  const fs::path target = options_.workdir / ".amld" / name;
  std::error_code ec;
  if (fs::exists(target, ec)) return target;
  AMLD_ASSIGN_OR_RETURN(const fs::path dir, MakeToolsDir(options_.workdir));
  const fs::path tmp = dir / absl::StrCat(name, ".tmp.", ::getpid());
  fs::copy_file(source, tmp, fs::copy_options::overwrite_existing, ec);
  if (ec) return ErrnoStatus(ec.value(), absl::StrCat("copy ", source.string(), " to"), tmp);
  fs::permissions(tmp, fs::perms(0755), ec);
  if (ec || ::rename(tmp.c_str(), target.c_str()) != 0) {
    int err = ec ? ec.value() : errno;
    fs::remove(tmp, ec);
    return ErrnoStatus(err, "install", target);
  }
  return target;
}

absl::StatusOr<fs::path> SlurmExecutor::EnsureShimOnSharedDir() {
  absl::MutexLock lock(&shim_mu_);
  return InstallOnSharedDirLocked(options_.shim_path, shim_name_);
}

// amld-launch, beside amld-shim here, for a distributed run's job.
absl::StatusOr<fs::path> SlurmExecutor::EnsureLaunchOnSharedDir() {
  const fs::path source = options_.shim_path.parent_path() / launch::kLaunchBinaryName;
  absl::MutexLock lock(&shim_mu_);
  if (launch_name_.empty()) {
    absl::StatusOr<storage::Digest> digest = storage::DigestOfFile(source);
    if (!digest.ok() || ::access(source.c_str(), X_OK) != 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot start a distributed run: ", source.string(),
                       " is not an executable (install amld-launch beside amld-shim)"));
    }
    launch_name_ = absl::StrCat(launch::kLaunchBinaryName, "-", digest->hash.substr(0, 16));
  }
  return InstallOnSharedDirLocked(source, launch_name_);
}

absl::StatusOr<fs::path> SlurmExecutor::EnsureRunPythonOnSharedDir() {
  const fs::path target =
      options_.workdir / ".amld" / RunPythonFolderName(options_.run_python);
  absl::MutexLock lock(&shim_mu_);
  std::error_code ec;
  if (fs::is_directory(target, ec)) return target;
  AMLD_RETURN_IF_ERROR(MakeToolsDir(options_.workdir).status());
  const fs::path tmp = absl::StrCat(target.string(), ".tmp.", ::getpid());
  fs::remove_all(tmp, ec);
  fs::copy(options_.run_python.dir, tmp, fs::copy_options::recursive, ec);
  if (ec) {
    return ErrnoStatus(ec.value(), absl::StrCat("copy ", options_.run_python.dir.string(), " to"),
                       tmp);
  }
  // Readable by every node's job, whoever it runs as.
  fs::permissions(tmp, fs::perms(0755), ec);
  for (auto it = fs::recursive_directory_iterator(tmp, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    fs::permissions(it->path(), it->is_directory() ? fs::perms(0755) : fs::perms(0644), ec);
  }
  // Another daemon may have put it there meanwhile: then its copy stays.
  if (::rename(tmp.c_str(), target.c_str()) != 0 && !fs::is_directory(target)) {
    const int err = errno;
    fs::remove_all(tmp, ec);
    return ErrnoStatus(err, "install", target);
  }
  fs::remove_all(tmp, ec);
  return target;
}

absl::StatusOr<std::string> SlurmExecutor::Launch(const LaunchSpec& spec) {
  AMLD_RETURN_IF_ERROR(ValidateLaunchSpec(spec));
  const fs::path run_dir = spec.run_dir.lexically_normal();  // absolute: ValidateLaunchSpec
  const fs::path shared_dir = options_.workdir / spec.run_id;
  {
    absl::MutexLock lock(&mu_);
    if (jobs_.count(spec.run_id) != 0) return AlreadyWatched(spec.run_id);
  }
  std::error_code ec;
  fs::create_directories(run_dir / "system_logs", ec);
  AMLD_RETURN_IF_ERROR(CreateRankLogs(run_dir, spec.processes));
  if (spec.run_as) {
    // Its log files, before anything appends to them: the submitter's.
    LogForRun(run_dir, absl::StrCat("submitting as ", spec.run_as->user, " (uid ",
                                    spec.run_as->uid, ")"));
    AMLD_RETURN_IF_ERROR(GiveTreeTo(run_dir, spec.run_as->uid, spec.run_as->gid));
  }
  absl::StatusOr<std::string> job_id = Submit(spec, run_dir, shared_dir);
  if (!job_id.ok()) {
    LogForRun(run_dir, absl::StrCat("not submitted: ", job_id.status().message()));
    fs::remove_all(shared_dir, ec);  // nothing of it runs
    return job_id.status();
  }
  LogForRun(run_dir,
            absl::StrCat("submitted as Slurm job ", *job_id, "; work dir ", shared_dir.string()));
  // Before the job is watched, so before any exit of it can be reported.
  ReportWaiting(spec.run_id, *job_id, "SUBMITTED");
  {
    absl::MutexLock lock(&mu_);
    Job job;
    job.job_id = *job_id;
    job.run_dir = run_dir;
    job.shared_dir = shared_dir;
    job.run_as = spec.run_as;
    jobs_.emplace(spec.run_id, std::move(job));
    PollSoonLocked();
  }
  return EncodeHandle(*job_id, shared_dir, spec.run_as);
}

SubmitSpec SlurmExecutor::SubmitSpecFor(const LaunchSpec& spec, const fs::path& shared_dir) const {
  SubmitSpec submit;
  submit.run_id = spec.run_id;
  submit.shared_run_dir = shared_dir;
  submit.max_duration = spec.max_duration;
  submit.partition = options_.partition;
  submit.account = options_.account;
  submit.cpus = spec.cpus;
  submit.gpus = spec.gpus;
  if (!spec.processes.kind.empty()) {
    // A task per process; the run's CPUs shared out among them.
    submit.nodes = spec.processes.nodes;
    submit.tasks_per_node = spec.processes.count / spec.processes.nodes;
    submit.cpus = std::max(1, spec.cpus / spec.processes.count);
    if (spec.processes.nodes > 1) {
      // Each node's share (the run manager refuses a total that does not
      // divide): --gpus alone would let Slurm put them all on one node.
      submit.gpus_per_node = spec.gpus / spec.processes.nodes;
      submit.gpus = 0;
    }
  }
  submit.extra_args = options_.sbatch_args;
  return submit;
}

absl::Status SlurmExecutor::CheckCanEverHold(const LaunchSpec& spec) {
  std::vector<std::string> argv = SbatchTestOnlyArgv(SubmitSpecFor(spec, options_.workdir));
  const std::string request = absl::StrJoin(argv.begin() + 2, argv.end() - 1, " ");
  // What fits is remembered per submitter: the cluster answers each user
  // by their own partitions and limits (system mode asks as them).
  const std::pair<int64_t, std::string> key(spec.run_as ? static_cast<int64_t>(spec.run_as->uid)
                                                        : -1,
                                            request);
  {
    absl::MutexLock lock(&mu_);
    if (fitting_requests_.contains(key)) return absl::OkStatus();
  }
  absl::StatusOr<CommandResult> r =
      RunSlurm(std::move(argv), SbatchEnvironment(ProcessEnvironment()), spec.run_as);
  // No answer about the job (no sbatch, no controller): the launch says so.
  if (!r.ok() || SlurmUnreachable(*r)) return absl::OkStatus();
  if (!r->ok()) {
    std::string said(absl::StripAsciiWhitespace(r->err.empty() ? r->out : r->err));
    absl::StrReplaceAll({{"\n", "; "}}, &said);
    return absl::InvalidArgumentError(absl::StrCat(
        "Slurm can never run this request (", request, "): ", said,
        "; ask for fewer nodes, processes, CPUs or GPUs, or submit to a target whose partition "
        "has them (`sinfo -N -l` lists each node's CPUs and GPUs)"));
  }
  absl::MutexLock lock(&mu_);
  fitting_requests_.insert(key);
  return absl::OkStatus();
}

absl::StatusOr<std::string> SlurmExecutor::Submit(const LaunchSpec& spec, const fs::path& run_dir,
                                                  const fs::path& shared_dir) {
  std::error_code ec;
  const bool created = !fs::exists(options_.workdir, ec);
  fs::create_directories(options_.workdir, ec);
  if (ec) return ErrnoStatus(ec.value(), "mkdir", options_.workdir);
  AMLD_RETURN_IF_ERROR(MakeReachable(options_.workdir, spec.run_as, created));
  AMLD_ASSIGN_OR_RETURN(fs::path shim, EnsureShimOnSharedDir());
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
  BatchScriptSpec script;
  script.run_id = spec.run_id;
  script.shared_run_dir = shared_dir;
  script.shim = shim;
  script.argv = spec.argv;
  script.env = JobEnvironment(spec.env, run_dir, shared_dir);
  if (spec.run_python && !options_.run_python.empty()) {
    AMLD_ASSIGN_OR_RETURN(fs::path python, EnsureRunPythonOnSharedDir());
    PrependToPythonPath(python.string(), &script.env);
  }
  script.max_duration = spec.max_duration;
  script.kill_grace = spec.kill_grace;
  const bool distributed = !spec.processes.kind.empty();
  if (distributed) {
    AMLD_ASSIGN_OR_RETURN(script.launch, EnsureLaunchOnSharedDir());
    script.processes = spec.processes;
    AMLD_RETURN_IF_ERROR(CreateRankLogs(shared_dir, spec.processes));
  }
  AMLD_RETURN_IF_ERROR(base::WriteFileAtomically(shared_dir / "job.sh", BatchScript(script), 0755));
  if (spec.run_as) {
    // The job runs as its submitter (sbatch below is theirs): so is every
    // file of its folder, which no other user may enter.
    AMLD_RETURN_IF_ERROR(GiveTreeTo(shared_dir, spec.run_as->uid, spec.run_as->gid));
  }

  std::vector<std::string> argv = SbatchArgv(SubmitSpecFor(spec, shared_dir));
  AMLD_ASSIGN_OR_RETURN(CommandResult result, RunSlurm(std::move(argv),
                                                       SbatchEnvironment(ProcessEnvironment()),
                                                       spec.run_as));
  if (!result.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("sbatch refused the job (", result.Describe(), ")"));
  }
  std::optional<std::string> job_id = ParseSbatchJobId(result.out);
  if (!job_id) {
    return absl::InternalError(
        absl::StrCat("sbatch printed no job id: ", absl::StripAsciiWhitespace(result.out)));
  }
  return *job_id;
}

}  // namespace slurm

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
  if (normalized.workdir.has_filename() == false)
    normalized.workdir = normalized.workdir.parent_path();
  return std::make_unique<slurm::SlurmExecutor>(
      std::move(normalized), absl::StrCat("amld-shim-", digest->hash.substr(0, 16)));
}

}  // namespace amld::daemon
