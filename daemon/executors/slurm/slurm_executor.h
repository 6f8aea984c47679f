// The Slurm executor: runs go to a Slurm cluster as batch jobs, through
// Slurm's own clients (sbatch, squeue, scontrol, scancel, sacct) on the
// daemon's host, which must be a submit host of the cluster.
//
// Shared work dir: the target's workdir must be the same path on the daemon's
// host and on every node (NFS, Lustre, ...). Each run gets
// <workdir>/<run_id>/ with
//   job.sh                    the batch script (slurm_job.h: BatchScript)
//   wd/                       a copy of the daemon's runs/<id>/wd (the
//                             snapshot); the process's cwd
//   user_logs/std_log.txt     sbatch --output; the shim appends the run's
//                             stdout+stderr to it
//   system_logs/              slurm.log (srun's messages), amld-shim.log
//   metrics.jsonl, exit.json  as in the daemon's run folder
// and <workdir>/.amld/amld-shim-<digest> is the supervisor the job step runs
// (a static binary, copied there once).
//
// - Launch copies wd/, writes job.sh and runs `sbatch --parsable` (arguments
//   in slurm_job.h: SbatchArgv). It returns once Slurm has the job; the
//   handle is JSON {"job_id":"1234","shared_dir":"<workdir>/<run_id>"}. The
//   run's environment reaches the job through job.sh's export lines;
//   sbatch runs with --export=ALL of a scrubbed environment (slurm_job.h:
//   SbatchEnvironment says why not --export=NONE). Not --export=NAME=value
//   lists either: they break on commas, show every value in process lists,
//   and load the login environment like NONE; and the script keeps a record
//   of exactly what the run got.
// - One poller thread serves every run of this executor. Slurm has no push
//   notification for ordinary clients, so while it has runs it asks
//   `squeue -h -t all -j IDS` once per poll_interval (one call for all runs;
//   every 0.1 s for 3 s after a submit, a cancel or a change of state),
//   copies what std_log.txt and metrics.jsonl gained into the daemon's run
//   folder (so StreamLogs follows it unchanged), and reports changes of
//   state through the progress callback ("PENDING (Resources)", "RUNNING").
//   With no runs it waits on a condition variable: no timer at all.
// - A job in a final state (or gone from squeue: then `scontrol show job`,
//   sacct where accounting is on, the jobcomp/filetxt file where Slurm
//   writes one, and finally exit.json alone) ends the run: std_log,
//   metrics, exit.json, system_logs/ and wd/outputs, wd/logs are copied back
//   into the daemon's run folder, the shared wd/ is removed (the rest stays,
//   small, for the record), and the exit callback gets
//   slurm_job.h: DecideJobEnd.
// - Cancel runs scancel on the poller thread (so a slow controller never
//   blocks the caller); the job ends CANCELLED and the run canceled.
// - Reattach takes the handle back; a job that ended meanwhile is finished
//   at the next poll, right away.
// - The destructor stops and joins the thread; jobs go on in Slurm.
// The code: slurm_executor_impl.h says which file holds what.
//
// Thread-safety: as Executor.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/executors/command_runner.h"
#include "daemon/executors/executor.h"
#include "daemon/executors/run_python.h"

namespace amld::daemon {

struct SlurmExecutorOptions {
  // The shared work dir (absolute; the same path on the nodes). Created if
  // missing.
  std::filesystem::path workdir;
  std::string partition;                 // empty: the cluster's default
  std::string account;                   // empty: the user's default
  std::vector<std::string> sbatch_args;  // extra arguments, given last
  // The daemon's amld-shim (ShimPathBesideExecutable()); copied into
  // <workdir>/.amld/ for the nodes.
  std::filesystem::path shim_path;
  // amld's Python for runs, copied into <workdir>/.amld/python-<digest>/
  // once and put first on the PYTHONPATH of runs that ask for it
  // (LaunchSpec.run_python); empty: runs get none.
  RunPython run_python;
  absl::Duration poll_interval = absl::Seconds(1);
  // Each Slurm client call is killed after this long (a hung controller).
  absl::Duration command_timeout = absl::Seconds(30);
  // How long a job Slurm calls finished may lack exit.json before the run is
  // decided without it (a shared filesystem can show files late).
  absl::Duration exit_file_wait = absl::Seconds(10);
  // The jobcomp/filetxt file; empty: asked from `scontrol show config`
  // when first needed.
  std::filesystem::path jobcomp_file;
  // Runs sbatch, squeue, scontrol, scancel and sacct; null: the system's
  // (SystemCommandRunner). Tests give a fake.
  std::shared_ptr<CommandRunner> runner;
};

// INVALID_ARGUMENT for a relative workdir or a bad argument; FAILED_PRECONDITION
// when amld-shim is missing. Does not contact Slurm.
absl::StatusOr<std::unique_ptr<Executor>> NewSlurmExecutor(const SlurmExecutorOptions& options);

}  // namespace amld::daemon
