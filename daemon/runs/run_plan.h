// Run plan: pure functions that turn a submitted RunConfig into what the
// executor runs (folders, argv, environment), and a process's end into the
// run's final status with a reason a person can act on. No I/O here, so the
// rules are tested directly.
//
// Thread-safety: free functions, thread-safe.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "amld/v1/runs.pb.h"
#include "daemon/executors/executor.h"
#include "daemon/executors/run_folder.h"

namespace amld::daemon {

using EnvList = std::vector<std::pair<std::string, std::string>>;

// The daemon's own environment (environ), minus variables that describe the
// daemon's process rather than the run's (systemd's LISTEN_*, NOTIFY_SOCKET).
EnvList CaptureDaemonEnvironment();

// "<experiment>_<unix-seconds>_<8 lower-case hex>".
std::string MakeRunId(const std::string& experiment, absl::Time now, uint32_t random_bits);

// [interpreter or "python3", script, args...] or
// ["/bin/sh", "-c", command + " " + quoted args].
std::vector<std::string> BuildArgv(const amld::v1::RunConfig& config);

// `base` + AMLD_RUN_ID, AMLD_EXPERIMENT, AMLD_COMPUTE_TARGET, AMLD_OUTPUTS_DIR, AMLD_LOGS_DIR,
// AMLD_METRICS_FILE, PYTHONUNBUFFERED=1 + the run's environment_variables
// (later ones replace earlier ones of the same name). Sorted by name.
EnvList BuildEnvironment(const EnvList& base, const std::string& run_id,
                         const amld::v1::RunConfig& config, const RunPaths& paths);

// Makes `from azureml.core import Run` in an unchanged script amld's Run,
// unless the run's environment opts out (Environment.azureml_alias_off): on
// the local target `alias_dir` (amld's azureml alias, written into the data
// dir at start; nothing when empty) goes first on PYTHONPATH in spec->env,
// which stays sorted by name; on any other target spec->run_python is set,
// and its executor puts its copy of amld's Python for runs there
// (daemon/executors/run_python.h).
void AddAzuremlAlias(const std::filesystem::path& alias_dir, const amld::v1::RunConfig& config,
                     LaunchSpec* spec);

// The processes RunConfig.distributed asks for (one, kind "", when unset);
// MPI's count is per node × nodes. The config was validated
// (ValidateRunConfig).
LaunchSpec::Processes ProcessesOf(const amld::v1::RunConfig& config);

// Everything Executor::Launch needs.
// INVALID_ARGUMENT when the run's process could never be exec'd: one
// argument or environment entry over the kernel's 128 KiB per string
// (MAX_ARG_STRLEN), or argv and the environment together over the exec limit
// (sysconf(_SC_ARG_MAX), pointers counted, room left for amld-shim's own
// arguments). Checked at submit, so such a run is refused, not failed later.
absl::Status CheckExecLimits(const LaunchSpec& spec);

LaunchSpec BuildLaunchSpec(const std::string& run_id, const amld::v1::RunConfig& config,
                           const RunPaths& paths, const EnvList& base_env,
                           absl::Duration kill_grace);

// amld.yaml's `submitter_environment: {allow: [...], deny: [...]}`: fnmatch
// patterns of variable names. A name is dropped when it matches a deny
// pattern, or when allow is not empty and it matches no allow pattern.
struct SubmitterEnvPolicy {
  std::vector<std::string> allow;
  std::vector<std::string> deny;
};

// Drops from `env->variables` what `policy` refuses, adding the names to
// left_out (kept sorted).
void FilterSubmitterEnvironment(const SubmitterEnvPolicy& policy,
                                amld::v1::SubmitterEnvironment* env);

// For a run on the local target whose config carries its submitter's
// environment (RunConfig.submitter_environment): spec->env is rebuilt on
// the submitter's variables (less the daemon-only ones, as in
// CaptureDaemonEnvironment) instead of the daemon's, and a script without
// an interpreter_path runs with the submitter's python. A config without
// one leaves `spec` as it is.
void UseSubmitterEnvironment(const std::string& run_id, const amld::v1::RunConfig& config,
                             const RunPaths& paths, LaunchSpec* spec);

// The GPUs a local run may use: CUDA_VISIBLE_DEVICES in `spec->env` becomes
// its GPU ids ("0,2"), or "" when it has none, so that a run never sees a
// device another run holds (CUDA then reports no device at all).
void SetVisibleGpus(const std::vector<int>& gpus, LaunchSpec* spec);

// The one line a local run that got no GPU on a machine with `machine_gpus`
// finds at the top of its output (with its newline): CUDA code there sees no
// device and would quietly run on the CPU; the line says how to ask.
std::string NoGpuNotice(const std::vector<int>& machine_gpus);

// The time limit a run gets: `requested` (0: none asked for), else the
// daemon's `default_seconds`; capped by `cap_seconds` (0: no cap), so a run
// asking for none under a cap gets the cap. INVALID_ARGUMENT saying the cap
// when `requested` is above it.
absl::StatusOr<int64_t> EffectiveRunDuration(int64_t requested, int64_t default_seconds,
                                             int64_t cap_seconds);

// How a run ends, as stored.
struct FinalOutcome {
  amld::v1::RunStatus::Value status = amld::v1::RunStatus::UNKNOWN;
  std::string error;  // Run.error; empty for COMPLETED
  std::optional<int> exit_code;
  std::optional<int> exit_signal;
};

// "killed by signal 9 (SIGKILL)".
std::string DescribeSignal(int signal);

// The final status from the supervisor's evidence:
//   could not start → FAILED "could not start: <launch_error>"
//   canceled        → CANCELED "canceled" (+ ": <reason>")
//   timed out       → FAILED "timed out after N s"
//   failure         → FAILED "<ExitStatus::failure>"
//   signal          → FAILED "killed by signal N (SIGX)"
//   exit code != 0  → FAILED "exit code N"
//   otherwise       → COMPLETED
// An error outcome (the supervisor vanished) → FAILED "daemon lost the run:
// <message>". A cancel that was asked for but did not reach the process (it
// ended by itself first) keeps the status the process earned.
FinalOutcome DecideOutcome(const absl::StatusOr<ExitStatus>& outcome,
                           int64_t max_run_duration_seconds, const std::string& cancel_reason);

}  // namespace amld::daemon
