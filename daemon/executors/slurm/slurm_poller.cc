// The Slurm executor's poller: one thread for all of an executor's jobs
// (slurm_executor_impl.h).
#include <algorithm>
#include <map>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "base/file_util.h"
#include "daemon/executors/slurm/slurm_executor_impl.h"

namespace amld::daemon::slurm {

namespace fs = std::filesystem;

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
    absl::Duration delay = absl::Now() < fast_until_ ? std::min(kFastPoll, options_.poll_interval)
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

void SlurmExecutor::UpdateJob(const std::string& run_id, const std::function<void(Job&)>& update) {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(run_id);
  if (it != jobs_.end()) update(it->second);
}

void SlurmExecutor::SendCancels(const std::vector<std::pair<std::string, Job>>& jobs) {
  for (const auto& [run_id, job] : jobs) {
    if (!job.cancel_pending) continue;
    absl::StatusOr<CommandResult> r = RunSlurm({"scancel", job.job_id}, {}, job.run_as);
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
  // One squeue per submitter (system mode: each asks as its own user, who
  // may see only their jobs), so a single one in user mode.
  std::map<int64_t, std::vector<std::pair<std::string, Job>>> by_user;
  for (auto& entry : jobs) {
    const Job& job = entry.second;
    by_user[job.run_as ? static_cast<int64_t>(job.run_as->uid) : -1].push_back(std::move(entry));
  }
  for (auto& [uid, user_jobs] : by_user) {
    std::vector<std::string> ids;
    for (const auto& [run_id, job] : user_jobs) ids.push_back(job.job_id);
    absl::StatusOr<CommandResult> r =
        RunSlurm({"squeue", "-h", "-t", "all", "-j", absl::StrJoin(ids, ","), "-o", kSqueueFormat},
                 {}, user_jobs.front().second.run_as);
    // A single unknown id makes squeue fail with "Invalid job id": it is
    // not in the queue any more, the same as an empty answer.
    bool queue_ok = r.ok() && (r->ok() || InvalidJobIdError(*r));
    std::map<std::string, JobInfo> queue;
    if (queue_ok && r->ok()) queue = ParseSqueue(r->out);
    for (auto& [run_id, job] : user_jobs) {
      if (!queue_ok) {
        std::string problem = absl::StrCat("squeue failed (retrying): ",
                                           r.ok() ? r->Describe() : r.status().ToString());
        if (problem != job.last_poll_problem) LogForRun(job.run_dir, problem);
        UpdateJob(run_id, [&](Job& j) { j.last_poll_problem = problem; });
      }
      PollJob(run_id, std::move(job), queue, queue_ok);
    }
  }
}

void SlurmExecutor::PollJob(const std::string& run_id, Job job,
                            const std::map<std::string, JobInfo>& queue, bool queue_ok) {
  absl::Status synced = CopyLogsGrowth(job.shared_dir, job.run_dir);
  if (synced.ok()) synced = CopyNewUploads(job.shared_dir, job.run_dir);
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
  if (info && !IsFinalState(info->state)) {
    SendProgress(run_id, ProgressOf(*info));
    return;
  }
  // Over: the exit code and times from scontrol while Slurm still holds the
  // job, else from what it left behind.
  if (info) {
    if (std::optional<JobInfo> full = ScontrolJob(job); full && full->state == info->state) {
      info = full;
    }
  } else {
    info = FinalRecordOffQueue(job, run_id);
  }
  std::string problem;
  std::optional<shim::ExitRecord> record = ReadExitRecord(job.shared_dir, &problem);
  if (!info && !record) {
    FinishLost(run_id, job, problem);
    return;
  }
  if (!info) {
    // Only the shim's record: the job finished as it says.
    info.emplace();
    info->job_id = job.job_id;
    info->state = record->exit_code == 0 && record->signal == 0 ? "COMPLETED" : "FAILED";
  }
  if (!record && HasStarted(*info) && info->state != "CANCELLED" && info->state != "TIMEOUT") {
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

std::optional<JobInfo> SlurmExecutor::ScontrolJob(const Job& job) {
  absl::StatusOr<CommandResult> r =
      RunSlurm({"scontrol", "show", "job", "-o", job.job_id}, {}, job.run_as);
  if (!r.ok() || !r->ok()) return std::nullopt;
  return ParseScontrolJob(r->out);
}

std::optional<JobInfo> SlurmExecutor::SacctJob(const Job& job) {
  if (sacct_unavailable_) return std::nullopt;
  const std::string& job_id = job.job_id;
  absl::StatusOr<CommandResult> r =
      RunSlurm({"sacct", "-n", "-P", "-X", "-j", job_id, "-o",
                "JobID,JobName,State,ExitCode,Start,End,NodeList,Reason"},
               {}, job.run_as);
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
    return ParseScontrolJob(absl::StrCat("JobId=", f[0], " JobName=", f[1], " JobState=", f[2],
                                         " ExitCode=", f[3], " StartTime=", f[4], " EndTime=", f[5],
                                         " NodeList=", f[6], " Reason=", f[7]));
  }
  return std::nullopt;
}

std::string SlurmExecutor::JobCompFile() {
  if (!jobcomp_file_) {
    if (!options_.jobcomp_file.empty()) {
      jobcomp_file_ = options_.jobcomp_file.string();
    } else {
      absl::StatusOr<CommandResult> r = RunSlurm({"scontrol", "show", "config"});
      if (!r.ok() || !r->ok()) return "";  // asked again next time
      jobcomp_file_ = JobCompFileFromConfig(r->out);
    }
  }
  return *jobcomp_file_;
}

std::optional<JobInfo> SlurmExecutor::FinalRecordOffQueue(const Job& job,
                                                          const std::string& run_id) {
  if (std::optional<JobInfo> info = ScontrolJob(job); info && IsFinalState(info->state)) {
    return info;
  }
  if (std::optional<JobInfo> info = SacctJob(job); info && IsFinalState(info->state)) {
    return info;
  }
  std::string file = JobCompFile();
  if (file.empty()) return std::nullopt;
  absl::StatusOr<std::string> text = base::ReadFileToString(file);
  if (!text.ok()) return std::nullopt;
  return FindJobCompRecord(*text, job.job_id, run_id);
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

}  // namespace amld::daemon::slurm
