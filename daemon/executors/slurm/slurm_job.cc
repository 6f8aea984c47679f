#include "daemon/executors/slurm/slurm_job.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "base/shell_quote.h"
#include "daemon/executors/exit_status.h"

namespace amld::daemon::slurm {
namespace {

namespace fs = std::filesystem;

constexpr const char* kFinalStates[] = {
    "COMPLETED", "FAILED",      "CANCELLED", "TIMEOUT",      "NODE_FAIL", "PREEMPTED",
    "BOOT_FAIL", "DEADLINE",    "OUT_OF_MEMORY", "SPECIAL_EXIT", "REVOKED"};

// States of a job that has not started running yet.
constexpr const char* kWaitingStates[] = {"PENDING",       "CONFIGURING",  "REQUEUED",
                                          "REQUEUE_HOLD",  "REQUEUE_FED",  "RESV_DEL_HOLD",
                                          "RESIZING"};

bool OneOf(const std::string& s, const auto& list) {
  return std::find_if(std::begin(list), std::end(list),
                      [&](const char* x) { return s == x; }) != std::end(list);
}

// "CANCELLED by 0" (scontrol's JobState never has it, squeue's %T neither;
// sacct does) → "CANCELLED".
std::string BareState(absl::string_view state) {
  return std::string(absl::StripAsciiWhitespace(state.substr(0, state.find(' '))));
}

// Slurm's times are local, "2026-11-26T14:44:41"; "Unknown", "None", "N/A"
// and "(null)" mean no time.
std::optional<absl::Time> ParseSlurmTime(const std::string& text) {
  absl::Time t;
  std::string err;
  if (!absl::ParseTime("%Y-%m-%dT%H:%M:%S", text, absl::LocalTimeZone(), &t, &err)) {
    return std::nullopt;
  }
  return t;
}

// "3:0" → (3, 0).
void ParseExitCode(const std::string& text, JobInfo* job) {
  std::pair<std::string, std::string> parts = absl::StrSplit(text, absl::MaxSplits(':', 1));
  int code = 0, sig = 0;
  if (absl::SimpleAtoi(parts.first, &code) && absl::SimpleAtoi(parts.second, &sig)) {
    job->exit_code = code;
    job->exit_signal = sig;
  }
}

// Key=Value pairs separated by spaces, the first of each key kept (values
// with spaces, such as a WorkDir, only spoil keys that come after them, and
// the keys read here come first in both formats).
std::map<std::string, std::string> KeyValues(absl::string_view line) {
  std::map<std::string, std::string> kv;
  for (absl::string_view token : absl::StrSplit(line, ' ', absl::SkipEmpty())) {
    size_t eq = token.find('=');
    if (eq == absl::string_view::npos || eq == 0) continue;
    kv.emplace(std::string(token.substr(0, eq)), std::string(token.substr(eq + 1)));
  }
  return kv;
}

JobInfo FromKeyValues(const std::map<std::string, std::string>& kv) {
  auto get = [&](const char* key) -> std::string {
    auto it = kv.find(key);
    return it == kv.end() ? "" : it->second;
  };
  JobInfo job;
  job.job_id = get("JobId");
  job.name = kv.count("JobName") ? get("JobName") : get("Name");
  job.state = BareState(get("JobState"));
  job.reason = get("Reason");
  job.nodes = get("NodeList");
  if (job.nodes == "(null)") job.nodes.clear();
  ParseExitCode(get("ExitCode"), &job);
  job.start_time = ParseSlurmTime(get("StartTime"));
  job.end_time = ParseSlurmTime(get("EndTime"));
  // A pending job's StartTime is the scheduler's estimate, not a start.
  if (!HasStarted(job)) job.start_time.reset();
  return job;
}

bool IsShellName(const std::string& name) {
  if (name.empty() || absl::ascii_isdigit(static_cast<unsigned char>(name[0]))) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

bool DroppedFromJob(const std::string& name) {
  static constexpr const char* kHostBound[] = {
      "HOSTNAME",      "PWD", "OLDPWD", "SHLVL", "_", "XDG_RUNTIME_DIR", "DBUS_SESSION_BUS_ADDRESS",
      "SSH_AUTH_SOCK", "DISPLAY", "WAYLAND_DISPLAY"};
  return absl::StartsWith(name, "SLURM_") || absl::StartsWith(name, "SLURMD_") ||
         absl::StartsWith(name, "SRUN_") || OneOf(name, kHostBound);
}

std::string PathArg(const fs::path& p) { return p.string(); }

}  // namespace

bool IsFinalState(const std::string& state) { return OneOf(state, kFinalStates); }

bool HasStarted(const JobInfo& job) {
  if (job.state.empty() || OneOf(job.state, kWaitingStates)) return false;
  // A final job started if it has nodes or a start time (one canceled while
  // pending has neither).
  if (IsFinalState(job.state)) return !job.nodes.empty();
  return true;  // RUNNING, COMPLETING, SUSPENDED, STOPPED, SIGNALING, ...
}

std::map<std::string, JobInfo> ParseSqueue(const std::string& out) {
  std::map<std::string, JobInfo> jobs;
  for (absl::string_view line : absl::StrSplit(out, '\n', absl::SkipWhitespace())) {
    std::vector<std::string> f = absl::StrSplit(absl::StripAsciiWhitespace(line), '|');
    if (f.size() < 4 || f[0].empty() || f[1].empty()) continue;
    JobInfo job;
    job.job_id = f[0];
    job.state = BareState(f[1]);
    job.reason = f[2];
    job.nodes = f[3];
    if (f.size() > 4) job.name = f[4];
    jobs[job.job_id] = std::move(job);
  }
  return jobs;
}

std::optional<JobInfo> ParseScontrolJob(const std::string& out) {
  for (absl::string_view line : absl::StrSplit(out, '\n', absl::SkipWhitespace())) {
    std::map<std::string, std::string> kv = KeyValues(line);
    if (kv.count("JobId") == 0 || kv.count("JobState") == 0) continue;
    return FromKeyValues(kv);
  }
  return std::nullopt;
}

std::optional<JobInfo> FindJobCompRecord(const std::string& file_text, const std::string& job_id,
                                         const std::string& job_name) {
  std::optional<JobInfo> found;
  const std::string id_token = absl::StrCat("JobId=", job_id, " ");
  for (absl::string_view line : absl::StrSplit(file_text, '\n', absl::SkipWhitespace())) {
    if (!absl::StartsWith(line, id_token)) continue;
    JobInfo job = FromKeyValues(KeyValues(line));
    if (job.job_id == job_id && job.name == job_name) found = std::move(job);
  }
  return found;
}

std::string JobCompFileFromConfig(const std::string& scontrol_show_config) {
  std::string type, loc;
  for (absl::string_view line : absl::StrSplit(scontrol_show_config, '\n')) {
    std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(line, absl::MaxSplits('=', 1));
    absl::string_view key = absl::StripAsciiWhitespace(kv.first);
    absl::string_view value = absl::StripAsciiWhitespace(kv.second);
    if (key == "JobCompType") type = std::string(value);
    if (key == "JobCompLoc") loc = std::string(value);
  }
  return type == "jobcomp/filetxt" && absl::StartsWith(loc, "/") ? loc : "";
}

int64_t TimeLimitMinutes(absl::Duration max_duration) {
  if (max_duration <= absl::ZeroDuration() || max_duration == absl::InfiniteDuration()) return 0;
  int64_t seconds = absl::ToInt64Seconds(absl::Ceil(max_duration, absl::Seconds(1)));
  return std::max<int64_t>(1, (seconds + 59) / 60);
}

std::vector<std::pair<std::string, std::string>> JobEnvironment(
    const std::vector<std::pair<std::string, std::string>>& run_env,
    const fs::path& daemon_run_dir, const fs::path& shared_run_dir) {
  const std::string from = daemon_run_dir.lexically_normal().string();
  const std::string to = shared_run_dir.lexically_normal().string();
  std::vector<std::pair<std::string, std::string>> env;
  for (const auto& [name, value] : run_env) {
    if (DroppedFromJob(name)) continue;
    std::string v = value;
    if (absl::StartsWith(name, "AMLD_") && absl::StartsWith(v, from) &&
        (v.size() == from.size() || v[from.size()] == '/')) {
      v = to + v.substr(from.size());
    }
    env.emplace_back(name, std::move(v));
  }
  return env;
}

std::string BatchScript(const BatchScriptSpec& spec) {
  const fs::path& dir = spec.shared_run_dir;
  const bool distributed = !spec.processes.kind.empty();
  std::string s = absl::StrCat(
      "#!/bin/sh\n"
      "# amld run ",
      spec.run_id,
      ": the batch script amld's Slurm executor submitted.\n"
      "# sbatch ran with --export=ALL of a scrubbed environment (PATH, HOME, USER,\n"
      "# SLURM_CONF, SBATCH_*, ...); the run's own environment is exported here.\n"
      "# srun is found before the run's PATH replaces the submit environment's.\n"
      "srun=$(command -v srun) || { echo \"amld: srun is not in PATH on $(hostname)\" >&2; exit 127; }\n");
  if (distributed) {
    absl::StrAppend(
        &s,
        "# Each node's address (NodeAddr), in node order: the first is MASTER_ADDR.\n"
        "scontrol=$(command -v scontrol) || { echo \"amld: scontrol is not in PATH on $(hostname)\" >&2; exit 127; }\n"
        "hosts=\n"
        "for n in $(\"$scontrol\" show hostnames \"$SLURM_JOB_NODELIST\"); do\n"
        "  a=$(\"$scontrol\" show node -o \"$n\" | sed -n 's/.* NodeAddr=\\([^ ]*\\).*/\\1/p')\n"
        "  hosts=\"$hosts${hosts:+,}${a:-$n}\"\n"
        "done\n");
  }
  std::vector<std::string> odd_names;  // not shell identifiers: passed through env(1)
  for (const auto& [name, value] : spec.env) {
    if (!IsShellName(name)) {
      odd_names.push_back(base::ShellQuote(absl::StrCat(name, "=", value)));
      continue;
    }
    absl::StrAppend(&s, "export ", name, "=", base::ShellQuote(value), "\n");
  }
  absl::StrAppend(&s,
                  "# srun's step inherits this environment.\n"
                  "export SLURM_EXPORT_ENV=ALL\n"
                  "exec ");
  if (!odd_names.empty()) {
    absl::StrAppend(&s, "/usr/bin/env");
    for (const std::string& n : odd_names) absl::StrAppend(&s, " ", n);
    absl::StrAppend(&s, " ");
  }
  const std::string shim_log = PathArg(dir / "system_logs" / shim::kShimLogName);
  const int64_t max_duration_ns = spec.max_duration > absl::ZeroDuration() &&
                                          spec.max_duration != absl::InfiniteDuration()
                                      ? absl::ToInt64Nanoseconds(spec.max_duration)
                                      : 0;
  const int64_t grace_ns = absl::ToInt64Nanoseconds(spec.kill_grace);
  if (!distributed) {
    absl::StrAppend(&s, "\"$srun\" --nodes=1 --ntasks=1 --input=none --open-mode=append",
                    " --output=", base::ShellQuote(shim_log), " --error=", base::ShellQuote(shim_log),
                    " \\\n  ");
  }
  absl::StrAppend(&s, base::ShellQuote(PathArg(spec.shim)), " --foreground --run-dir=",
                  base::ShellQuote(PathArg(dir)), " --max-duration-ns=", max_duration_ns,
                  " --grace-ns=", grace_ns, " -- \\\n ");
  if (distributed) {
    const LaunchSpec::Processes& p = spec.processes;
    absl::StrAppend(&s, " ", base::ShellQuote(PathArg(spec.launch)), " --kind=", p.kind,
                    " --processes=", p.count, " --nodes=", p.nodes,
                    p.parameter_servers > 0 ? absl::StrCat(" --parameter-servers=", p.parameter_servers) : "",
                    " --run-dir=", base::ShellQuote(PathArg(dir)), " --grace-ns=", grace_ns,
                    " \"--srun=$srun\" \"--hosts=$hosts\" -- \\\n ");
  }
  for (const std::string& arg : spec.argv) absl::StrAppend(&s, " ", base::ShellQuote(arg));
  if (distributed) {
    // The shim is the batch step's process: its messages go to its log.
    absl::StrAppend(&s, " \\\n  >>", base::ShellQuote(shim_log), " 2>&1\n");
  } else {
    absl::StrAppend(&s, " \\\n  2>>", base::ShellQuote(PathArg(dir / "system_logs" / "slurm.log")), "\n");
  }
  return s;
}

// What the job asks of the cluster: --time, --partition, --account, --nodes
// and --ntasks-per-node, --cpus-per-task, --gpus, then the target's args.
static void AppendRequestArgs(const SubmitSpec& spec, std::vector<std::string>* argv) {
  if (int64_t minutes = TimeLimitMinutes(spec.max_duration); minutes > 0) {
    argv->push_back(absl::StrCat("--time=", minutes));
  }
  if (!spec.partition.empty()) argv->push_back(absl::StrCat("--partition=", spec.partition));
  if (!spec.account.empty()) argv->push_back(absl::StrCat("--account=", spec.account));
  if (spec.tasks_per_node > 0) {
    argv->push_back(absl::StrCat("--nodes=", spec.nodes));
    argv->push_back(absl::StrCat("--ntasks-per-node=", spec.tasks_per_node));
  }
  if (spec.cpus > 1) argv->push_back(absl::StrCat("--cpus-per-task=", spec.cpus));
  if (spec.gpus > 0) argv->push_back(absl::StrCat("--gpus=", spec.gpus));
  if (spec.gpus_per_node > 0) argv->push_back(absl::StrCat("--gpus-per-node=", spec.gpus_per_node));
  argv->insert(argv->end(), spec.extra_args.begin(), spec.extra_args.end());
}

std::vector<std::string> SbatchArgv(const SubmitSpec& spec) {
  const fs::path& dir = spec.shared_run_dir;
  std::vector<std::string> argv = {
      "sbatch",
      "--parsable",
      absl::StrCat("--job-name=", spec.run_id),
      absl::StrCat("--output=", PathArg(dir / shim::kStdLogPath)),
      "--open-mode=append",
      absl::StrCat("--chdir=", PathArg(dir / "wd")),
      "--export=ALL",
      "--no-requeue",
  };
  AppendRequestArgs(spec, &argv);
  argv.push_back(PathArg(dir / "job.sh"));
  return argv;
}

std::vector<std::string> SbatchTestOnlyArgv(const SubmitSpec& spec) {
  std::vector<std::string> argv = {"sbatch", "--test-only"};
  AppendRequestArgs(spec, &argv);
  argv.push_back("--wrap=true");
  return argv;
}

bool SlurmUnreachable(const CommandResult& r) {
  const std::string said = absl::StrCat(r.out, r.err);
  for (const char* words : {"Unable to contact slurm controller", "Socket timed out",
                            "Connection refused", "Zero Bytes were transmitted",
                            "Communication connection failure", "Transport endpoint"}) {
    if (absl::StrContains(said, words)) return true;
  }
  return false;
}

std::vector<std::string> SbatchEnvironment(
    const std::vector<std::pair<std::string, std::string>>& daemon_env) {
  static constexpr const char* kKept[] = {"PATH", "HOME", "USER", "LOGNAME",
                                          "LANG", "TZ",   "SLURM_CONF"};
  std::vector<std::string> env;
  for (const auto& [name, value] : daemon_env) {
    if (OneOf(name, kKept) || absl::StartsWith(name, "LC_") || absl::StartsWith(name, "SBATCH_")) {
      env.push_back(absl::StrCat(name, "=", value));
    }
  }
  return env;
}

std::optional<std::string> ParseSbatchJobId(const std::string& out) {
  absl::string_view text = absl::StripAsciiWhitespace(out);
  // Only the last line: sbatch may print warnings before it.
  if (size_t nl = text.rfind('\n'); nl != absl::string_view::npos) text = text.substr(nl + 1);
  absl::string_view id = text.substr(0, text.find(';'));
  uint64_t n = 0;
  if (id.empty() || !absl::SimpleAtoi(id, &n)) return std::nullopt;
  return std::string(id);
}

RunProgress ProgressOf(const JobInfo& job) {
  RunProgress p;
  p.started = HasStarted(job);
  p.placement = absl::StrCat("slurm:", job.job_id);
  if (p.started && !job.nodes.empty()) absl::StrAppend(&p.placement, " on ", job.nodes);
  p.detail = job.state;
  if (!job.reason.empty() && job.reason != "None") absl::StrAppend(&p.detail, " (", job.reason, ")");
  return p;
}

ExitStatus DecideJobEnd(const JobInfo& job, const std::optional<shim::ExitRecord>& record) {
  ExitStatus e;
  if (record) {
    e = ExitStatusFromRecord(*record);
    // Only Slurm's CANCELLED is a cancel: a SIGTERM the shim got from
    // elsewhere (a node's shutdown) is not.
    e.canceled = false;
  } else {
    e.exit_code = job.exit_code.value_or(0);
    e.signal = job.exit_signal.value_or(0);
    if (job.start_time) e.start_time = *job.start_time;
    if (job.end_time) e.end_time = *job.end_time;
  }
  const std::string reason =
      job.reason.empty() || job.reason == "None" ? "" : absl::StrCat(" (", job.reason, ")");
  if (job.state == "TIMEOUT") {
    e.timed_out = true;
  } else if (job.state == "CANCELLED") {
    e.canceled = true;
  } else if (job.state == "COMPLETED" || job.state == "FAILED") {
    if (!record && (e.exit_code != 0 || e.signal != 0)) {
      e.failure = absl::StrCat("Slurm job ", job.job_id, " ended ", job.state, " with exit code ",
                               e.exit_code, ":", e.signal,
                               " before amld-shim recorded how the run ended; see "
                               "system_logs/slurm.log and system_logs/amld-shim.log");
    }
  } else if (job.state == "OUT_OF_MEMORY") {
    e.failure = absl::StrCat("out of memory: Slurm ended job ", job.job_id, " OUT_OF_MEMORY");
  } else {
    e.failure = absl::StrCat("Slurm ended job ", job.job_id, " ", job.state, reason);
  }
  return e;
}

}  // namespace amld::daemon::slurm
