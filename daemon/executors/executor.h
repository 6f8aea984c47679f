// Executor: the one interface between the scheduler and the places runs
// execute (this machine now; SSH hosts and Slurm later). The scheduler never
// touches processes itself.
//
// A run's folder (prepared by the daemon before Launch):
//   <run_dir>/wd/                   the materialized snapshot; the process's
//                                   cwd; ./outputs and ./logs live here
//   <run_dir>/user_logs/std_log.txt stdout+stderr, interleaved as written
//   <run_dir>/system_logs/          executor messages
//   <run_dir>/metrics.jsonl         AMLD_METRICS_FILE
//   <run_dir>/exit.json             written atomically by the supervisor
//
// Thread-safety: implementations are thread-safe. The exit callback is
// called from an executor-owned thread, once per launched or re-attached
// run, and must not block for long.
#pragma once

#include <functional>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/executors/run_as.h"

namespace amld::daemon {

struct LaunchSpec {
  std::string run_id;
  std::filesystem::path run_dir;
  // argv[0] is looked up in PATH of `env` when it has no '/'.
  std::vector<std::string> argv;
  // The complete environment of the process (the daemon composes it).
  std::vector<std::pair<std::string, std::string>> env;
  // Only what amld and the run's config set (AMLD_*, PYTHONUNBUFFERED, the
  // config's environment_variables), without the daemon's own environment:
  // what executors whose process runs on another machine (ssh) add to that
  // machine's login environment. Paths in it name the daemon's run folder
  // (run_dir); such executors rewrite that prefix to their own folder.
  std::vector<std::pair<std::string, std::string>> run_env;
  // The compute target's name (RunConfig.compute_target); "" means local.
  std::string compute_target;
  // The run's ResourceRequest: CPUs (at least 1) and GPUs. The local
  // executor's share is assigned by the daemon (CUDA_VISIBLE_DEVICES);
  // executors of clusters ask their scheduler for them (Slurm:
  // --cpus-per-task, --gpus).
  int cpus = 1;
  int gpus = 0;
  // Wall-clock limit from the start of the process; zero means none.
  absl::Duration max_duration = absl::ZeroDuration();
  // Between SIGTERM and SIGKILL on cancel or timeout.
  absl::Duration kill_grace = absl::Seconds(10);
  // Several processes for the run (RunConfig.distributed), started by
  // amld-launch under the supervisor (launch/launch_protocol.h). `kind` ""
  // means one process: argv itself.
  struct Processes {
    std::string kind;  // "pytorch", "tensorflow", "mpi"
    int count = 1;     // every process, parameter servers included
    int parameter_servers = 0;
    int nodes = 1;     // count / nodes on each (only Slurm takes more than 1)
  } processes;
  // Put amld's Python for runs (run_python.h) first on the process's
  // PYTHONPATH on the target: the SSH and Slurm executors install their copy
  // of it there. A local run's `env` already names the daemon's folder.
  bool run_python = false;
  // System mode: the submitter's account, which the run, its supervisor and
  // every file of its folder belong to (run_as.h); `env` already carries
  // its HOME, USER and LOGNAME. nullopt (user mode): the daemon's own user.
  // Executors that cannot run as another user refuse a spec with one.
  std::optional<RunAs> run_as;
};

// How a run's process ended, from the supervisor's exit file.
struct ExitStatus {
  int exit_code = 0;      // meaningful when signal == 0
  int signal = 0;         // the signal that ended the process, or 0
  bool timed_out = false; // ended because max_duration passed
  bool canceled = false;  // ended because Cancel() was called
  absl::Time start_time;
  absl::Time end_time;
  // Set when the process could not be started at all (e.g. "exec python3:
  // No such file or directory"); then exit_code is 127.
  std::string launch_error;
  // Set when the executor knows the run failed for a reason neither the exit
  // code nor a signal tells (e.g. "Slurm ended job 12 NODE_FAIL"); the run
  // is FAILED with this as its error.
  std::string failure;
};

// What an executor learned about a run between Launch and its end, for
// executors whose Launch only hands the run to another scheduler (Slurm):
// the run may wait in that scheduler's queue before its process starts.
struct RunProgress {
  bool started = false;   // the process runs (or ran); before: still waiting
  std::string placement;  // where, e.g. "slurm:1234" or "slurm:1234 on node-7"
  std::string detail;     // that scheduler's words, e.g. "PENDING (Resources)"
};

class Executor {
 public:
  // `run_id` and the outcome: the exit status, or an error when the
  // supervisor vanished without writing one ("supervisor lost").
  using ExitCallback =
      std::function<void(const std::string& run_id, absl::StatusOr<ExitStatus> outcome)>;

  virtual ~Executor() = default;

  // Must be called before the first Launch/Reattach.
  virtual void SetExitCallback(ExitCallback callback) = 0;

  // Called (from an executor-owned thread, quickly, like the exit callback)
  // each time a launched or re-attached run's RunProgress changes; never
  // after its exit callback. Executors whose process runs as soon as Launch
  // returns (local) never call it. One whose runs may wait elsewhere first
  // (Slurm) calls it with started == false from inside Launch and Reattach,
  // on the caller's thread, before they return: the daemon then keeps the
  // run STARTING until a progress with started == true. Set it before the
  // first Launch/Reattach.
  using ProgressCallback =
      std::function<void(const std::string& run_id, const RunProgress& progress)>;
  virtual void SetProgressCallback(ProgressCallback callback) {}

  // Where the run with this handle runs, for Run.placement: "local",
  // "ssh:user@host:port", "slurm:1234". Called when the run is recorded
  // RUNNING (after Launch, or after Reattach of a run launched earlier).
  virtual std::string Placement(const std::string& run_id, const std::string& handle) const {
    return "local";
  }

  // At submit: OK unless the target can never hold the run's request
  // (nodes, processes per node, CPUs, GPUs, partition) — then
  // INVALID_ARGUMENT saying what it has and what to ask for. May ask the
  // target; a target that cannot be asked now (unreachable) is OK here and
  // the launch reports it. `spec` is the run's as Launch would get it, but
  // its run folder does not exist yet. Default: OK (the local target's
  // capacity is the scheduler's to check).
  virtual absl::Status CheckCanEverHold(const LaunchSpec& spec) { return absl::OkStatus(); }

  // Starts the run under its supervisor and returns once the process is
  // started. Returns an opaque handle the daemon persists for Reattach.
  virtual absl::StatusOr<std::string> Launch(const LaunchSpec& spec) = 0;

  // Takes back a run launched by an earlier daemon process from its handle.
  // If it ended meanwhile, the callback fires promptly with its exit status.
  virtual absl::Status Reattach(const std::string& run_id, const std::filesystem::path& run_dir,
                                const std::string& handle) = 0;

  // For a run the store holds as launched or launching but without a
  // handle (the daemon died between starting it and recording the handle,
  // or could not record it): looks for it where this executor starts runs —
  // a Slurm job named after the run, an SSH run's supervisor — and returns
  // a handle to Reattach with. NOT_FOUND when nothing of the run was
  // started there; UNIMPLEMENTED when this executor cannot tell (local).
  // `run_as`: the run's submitter in system mode (as LaunchSpec::run_as),
  // as whom the executor asks (Slurm: squeue as them, and the handle says
  // so, so the polls after Reattach ask as them too).
  virtual absl::StatusOr<std::string> FindUnrecorded(const std::string& run_id,
                                                     const std::filesystem::path& run_dir,
                                                     const std::optional<RunAs>& run_as) {
    return absl::UnimplementedError("this executor cannot look for a run it did not record");
  }

  // Stops the run: SIGTERM to its whole process group, SIGKILL after the
  // grace period. Returns at once; the callback reports the end (canceled).
  // NOT_FOUND when the executor does not know the run.
  virtual absl::Status Cancel(const std::string& run_id) = 0;
};

}  // namespace amld::daemon
