// The Slurm executor: a job's end, and the files it shares with the nodes
// (slurm_executor_impl.h).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/file_util.h"
#include "base/status_macros.h"
#include "daemon/executors/exit_status.h"
#include "daemon/executors/launch/launch_protocol.h"
#include "daemon/executors/run_as.h"
#include "daemon/executors/slurm/slurm_executor_impl.h"

namespace amld::daemon::slurm {

namespace fs = std::filesystem;
using base::ErrnoStatus;
using base::ScopedFd;

constexpr char kCollectedMarker[] = "collected";
constexpr char kExecutorLogName[] = "slurm-executor.log";  // in system_logs/

// One line, with the time, in the daemon's system_logs/slurm-executor.log:
// what a person looking at a run needs to know about its Slurm job.
void LogForRun(const fs::path& run_dir, const std::string& message) {
  std::string line =
      absl::StrCat(absl::FormatTime("%Y-%m-%dT%H:%M:%E3S%Ez ", absl::Now(), absl::LocalTimeZone()),
                   message, "\n");
  fs::path path = run_dir / "system_logs" / kExecutorLogName;
  ScopedFd fd(::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644));
  if (fd.valid()) (void)base::WriteAll(fd.get(), line, path);
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

absl::Status CopyLogsGrowth(const fs::path& shared_dir, const fs::path& run_dir) {
  AMLD_RETURN_IF_ERROR(CopyGrowth(shared_dir / shim::kStdLogPath, run_dir / shim::kStdLogPath));
  const std::string rank0 = launch::RankLogPath(0);
  std::error_code ec;
  for (fs::directory_iterator it(shared_dir / "user_logs", ec), end; !ec && it != end;
       it.increment(ec)) {
    const std::string rel = absl::StrCat("user_logs/", it->path().filename().string());
    if (!absl::StartsWith(rel, "user_logs/std_log_process_") || rel == rank0) continue;
    AMLD_RETURN_IF_ERROR(CopyGrowth(it->path(), run_dir / rel));
  }
  return absl::OkStatus();
}

absl::Status CopyNewUploads(const fs::path& shared_dir, const fs::path& run_dir) {
  const fs::path from = shared_dir / "uploads";
  std::error_code ec;
  if (!fs::is_directory(fs::symlink_status(from, ec))) return absl::OkStatus();
  for (fs::recursive_directory_iterator it(from, ec), end; !ec && it != end; it.increment(ec)) {
    if (!it->is_regular_file(ec) || it->is_symlink(ec)) continue;
    const fs::path to = run_dir / "uploads" / it->path().lexically_relative(from);
    const auto size = it->file_size(ec);
    const auto time = it->last_write_time(ec);
    std::error_code to_ec;
    if (fs::is_regular_file(to, to_ec) && fs::file_size(to, to_ec) == size &&
        fs::last_write_time(to, to_ec) == time && !to_ec) {
      continue;
    }
    fs::create_directories(to.parent_path(), ec);
    if (ec) return ErrnoStatus(ec.value(), "mkdir", to.parent_path());
    fs::copy_file(it->path(), to, fs::copy_options::overwrite_existing, ec);
    if (ec) return ErrnoStatus(ec.value(), absl::StrCat("copy ", it->path().string(), " to"), to);
    fs::last_write_time(to, time, to_ec);  // else copied again next time: harmless
  }
  return ec ? ErrnoStatus(ec.value(), "read", from) : absl::OkStatus();
}

namespace {

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

}  // namespace

std::optional<shim::ExitRecord> ReadExitRecord(const fs::path& shared_dir, std::string* problem) {
  fs::path path = shared_dir / shim::kExitFileName;
  absl::StatusOr<std::string> text = base::ReadFileToString(path);
  if (!text.ok()) {
    if (!absl::IsNotFound(text.status())) *problem = std::string(text.status().message());
    return std::nullopt;
  }
  std::string error;
  std::optional<shim::ExitRecord> record = shim::ParseExitRecord(*text, &error);
  if (!record) {
    *problem =
        absl::StrCat(path.string(), " is unreadable: ", error, "; the run's exit code is lost");
  }
  return record;
}

bool InvalidJobIdError(const CommandResult& r) {
  return absl::StrContains(r.err, "Invalid job id");
}

absl::Status SlurmExecutor::CopyBack(const Job& job) {
  const fs::path& from = job.shared_dir;
  const fs::path& to = job.run_dir;
  AMLD_RETURN_IF_ERROR(CopyLogsGrowth(from, to));
  AMLD_RETURN_IF_ERROR(CopyNewUploads(from, to));
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
  if (HasStarted(info)) {
    RunProgress started = ProgressOf(info);
    started.started = true;
    SendProgress(run_id, started);
  }
  ExitStatus status = DecideJobEnd(info, record);
  absl::Status copied = CopyBack(job);
  if (!copied.ok() && status.failure.empty()) {
    status.failure = absl::StrCat("the run ended but its files could not be copied back from ",
                                  job.shared_dir.string(), ": ", copied.message());
  }
  NameFailedProcess(job.run_dir, &status);
  LogForRun(
      job.run_dir,
      absl::StrCat("Slurm job ", job.job_id, " ended ", info.state,
                   info.exit_code ? absl::StrCat(" (ExitCode ", *info.exit_code, ":",
                                                 info.exit_signal.value_or(0), ")")
                                  : "",
                   record ? "" : "; amld-shim left no exit.json",
                   copied.ok() ? "" : absl::StrCat("; copy back failed: ", copied.message())));
  if (job.run_as) {
    // What was copied back is the daemon's (root's) so far: the submitter's,
    // as every file of their run folder is.
    if (absl::Status given = GiveTreeTo(job.run_dir, job.run_as->uid, job.run_as->gid);
        !given.ok() && status.failure.empty()) {
      status.failure = absl::StrCat("the run ended but its files could not be given to ",
                                    job.run_as->user, ": ", given.message());
    }
  }
  ExitCallback callback;
  {
    absl::MutexLock lock(&mu_);
    jobs_.erase(run_id);
    callback = exit_callback_;
  }
  if (callback) callback(run_id, status);
}

void SlurmExecutor::FinishLost(const std::string& run_id, const Job& job,
                               const std::string& problem) {
  // Slurm forgot the job and nothing says how it ended.
  std::string why =
      absl::StrCat("Slurm no longer knows job ", job.job_id,
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
}

}  // namespace amld::daemon::slurm
