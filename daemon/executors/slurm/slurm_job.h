// The pure half of the Slurm executor: what amld writes for Slurm (the batch
// script, sbatch's arguments) and how it reads Slurm's answers (squeue,
// scontrol, the jobcomp/filetxt record) into a run's progress and end. No
// I/O here, so every rule is tested without a cluster
// (tests/daemon/executors/slurm/slurm_job_test.cc).
//
// Thread-safety: free functions, thread-safe.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "daemon/executors/command_runner.h"
#include "daemon/executors/executor.h"
#include "daemon/executors/shim/shim_protocol.h"

namespace amld::daemon::slurm {

// What one of Slurm's clients said about a job. Fields a source does not
// give stay empty / unset.
struct JobInfo {
  std::string job_id;
  std::string name;    // the job name: amld uses the run id
  std::string state;   // "PENDING", "RUNNING", "COMPLETED", "TIMEOUT", ...
  std::string reason;  // "Resources", "JobHeldUser", "None", ...
  std::string nodes;   // "node-[1-2]"; empty while pending
  std::optional<int> exit_code;    // from ExitCode=code:signal
  std::optional<int> exit_signal;
  std::optional<absl::Time> start_time;  // unset when it never started
  std::optional<absl::Time> end_time;
};

// Slurm's final job states (the job will not run again).
bool IsFinalState(const std::string& state);
// States of a job whose processes have started (and may still run).
bool HasStarted(const JobInfo& job);

// `squeue -h -t all -j IDS -o '<kSqueueFormat>'` → jobs by id; lines that do
// not parse are skipped.
inline constexpr char kSqueueFormat[] = "%i|%T|%r|%N|%j";
std::map<std::string, JobInfo> ParseSqueue(const std::string& out);

// `scontrol show job -o ID` (one line of Key=Value pairs); nullopt when it
// names no job. Times are Slurm's local time (the daemon's time zone).
std::optional<JobInfo> ParseScontrolJob(const std::string& out);

// The last line of a jobcomp/filetxt file for `job_id` whose name is
// `job_name` (job ids restart when a cluster's state is wiped, names do
// not repeat). nullopt when there is none.
std::optional<JobInfo> FindJobCompRecord(const std::string& file_text, const std::string& job_id,
                                         const std::string& job_name);

// JobCompLoc from `scontrol show config` when JobCompType is
// jobcomp/filetxt; empty otherwise.
std::string JobCompFileFromConfig(const std::string& scontrol_show_config);

// sbatch's --time in whole minutes: max_duration rounded up, at least 1;
// 0 means "no limit" (no --time: the partition's default applies).
int64_t TimeLimitMinutes(absl::Duration max_duration);

// The run's environment as the job gets it: AMLD_* paths that point into
// the daemon's run folder are moved to the shared one, and variables that
// belong to the daemon's host, session or own Slurm allocation are dropped
// (SLURM_*, SLURMD_*, SRUN_*, HOSTNAME, PWD, OLDPWD, SHLVL, _,
// XDG_RUNTIME_DIR, DBUS_SESSION_BUS_ADDRESS, SSH_AUTH_SOCK, DISPLAY,
// WAYLAND_DISPLAY): Slurm sets the job's own.
std::vector<std::pair<std::string, std::string>> JobEnvironment(
    const std::vector<std::pair<std::string, std::string>>& run_env,
    const std::filesystem::path& daemon_run_dir, const std::filesystem::path& shared_run_dir);

struct BatchScriptSpec {
  std::string run_id;
  std::filesystem::path shared_run_dir;  // <workdir>/<run_id>
  std::filesystem::path shim;            // amld-shim, reachable from the nodes
  std::vector<std::string> argv;
  std::vector<std::pair<std::string, std::string>> env;  // JobEnvironment()
  absl::Duration max_duration = absl::ZeroDuration();
  absl::Duration kill_grace = absl::Seconds(10);
  // A distributed run (processes.kind not ""): amld-launch, reachable from
  // the nodes, starts its processes on the job's nodes.
  LaunchSpec::Processes processes;
  std::filesystem::path launch;
};

// The batch script (/bin/sh): finds srun (before the run's PATH replaces
// the submit environment's), exports the run's environment, then execs
// srun, which starts amld-shim --foreground as the job's one task; the shim
// runs the process in wd/, appends its output to user_logs/std_log.txt,
// enforces max_duration to the second and writes exit.json. srun's own
// messages go to system_logs/slurm.log, the shim's to
// system_logs/amld-shim.log.
// A distributed run's script also finds scontrol and each node's address
// (NodeAddr, in the order of SLURM_JOB_NODELIST), and runs amld-shim itself
// in the batch step with `amld-launch --srun=... --hosts=...` as the
// process: srun then starts the processes as the job's tasks on every node
// (launch_protocol.h), and scancel or the time limit reach them all.
std::string BatchScript(const BatchScriptSpec& spec);

struct SubmitSpec {
  std::string run_id;
  std::filesystem::path shared_run_dir;
  absl::Duration max_duration = absl::ZeroDuration();
  std::string partition;  // empty: the cluster's default
  std::string account;    // empty: the user's default
  int cpus = 1;           // --cpus-per-task when more than 1 (per process)
  int gpus = 0;           // --gpus when any (the job's total)
  int gpus_per_node = 0;  // a run on several nodes: --gpus-per-node instead
  int nodes = 1;          // a distributed run: --nodes
  int tasks_per_node = 0; // a distributed run: --ntasks-per-node; 0: one task
  std::vector<std::string> extra_args;  // the target's sbatch args, last
};

// sbatch's argv: --parsable, --job-name=<run id>, --output/--open-mode into
// user_logs/std_log.txt, --chdir=wd, --export=ALL (of SbatchEnvironment),
// --no-requeue (a run never runs twice), --time, --partition, --account,
// --cpus-per-task and --gpus from the run's resources, --nodes and
// --ntasks-per-node for a distributed run, the extra args, and
// the script (<shared_run_dir>/job.sh).
std::vector<std::string> SbatchArgv(const SubmitSpec& spec);

// `sbatch --test-only` with the same request as SbatchArgv and a trivial
// script: Slurm's own answer to whether the cluster can ever run the job
// ("allocation failure: Node count specification invalid", "... More
// processors requested than permitted", "Invalid generic resource (gres)
// specification", "Invalid partition name specified").
std::vector<std::string> SbatchTestOnlyArgv(const SubmitSpec& spec);
// Whether a Slurm client's failure says the controller could not be
// reached (a passing condition, not an answer about the job).
bool SlurmUnreachable(const CommandResult& r);

// The environment sbatch runs with, and so (--export=ALL) the one the job
// starts from before job.sh exports the run's: only what Slurm's client
// itself reads from the daemon's environment (PATH, HOME, USER, LOGNAME,
// LANG, LC_*, TZ, SLURM_CONF, SBATCH_*). Why not --export=NONE: in Slurm
// 22.05 NONE (and any variable list) makes slurmd load the user's login
// environment on the node (SLURM_GET_USER_ENV=1, `su - user -c env`) before
// the job starts — +1.5 s per job on the test machine — and mixes it into
// the run's; why not sbatch's default: its environment is the daemon's.
std::vector<std::string> SbatchEnvironment(
    const std::vector<std::pair<std::string, std::string>>& daemon_env);

// The job id from `sbatch --parsable` output ("1234" or "1234;cluster").
std::optional<std::string> ParseSbatchJobId(const std::string& out);

// The progress to show while the job is not over: started or not, the
// placement ("slurm:1234", "slurm:1234 on node-7") and Slurm's words
// ("PENDING (Resources)", "RUNNING").
RunProgress ProgressOf(const JobInfo& job);

// How the run ended, from Slurm's final record of the job and the shim's
// exit.json when there is one (nullopt when it left none):
//   TIMEOUT        → timed_out (Slurm's time limit)
//   CANCELLED      → canceled (scancel, by amld or anyone)
//   COMPLETED/FAILED with exit.json → exit.json (the shim's own timeout,
//                    exit code, signal, launch error); a SIGTERM the shim
//                    got from elsewhere is not a cancel
//   COMPLETED/FAILED without it → Slurm's ExitCode, with a failure saying
//                    the supervisor left no record when it is not 0:0
//   OUT_OF_MEMORY, NODE_FAIL, PREEMPTED, BOOT_FAIL, DEADLINE, ... → failure
//                    "Slurm ended job N <STATE> (<reason>)"
// The exit code and signal come from exit.json when there is one.
ExitStatus DecideJobEnd(const JobInfo& job, const std::optional<shim::ExitRecord>& record);

}  // namespace amld::daemon::slurm
