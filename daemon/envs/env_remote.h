// Managed environments on SSH and Slurm targets: the one script, used by
// both executors, that makes a run's environment on the target itself and
// then runs the run's process in it.
//
// The run manager replaces a remote run's argv with
//   /bin/sh -c <RemoteEnvironmentScript> amld-env <argv...>
// and sets AMLD_ENV_CACHE to <run folder>/../envs. Both executors move
// paths under the daemon's run folder to the run's folder on the target
// (<workdir>/<run id>), so the cache there is <workdir>/envs: on an SSH host
// the target's workdir, on Slurm the shared workdir every node sees. The
// shim runs the script as the run's process, so its output is the first
// part of the run's std log, framed by "amld:" lines like a local build's.
//
// On the target, under <workdir>/envs:
//   <digest>                 a symlink to the build folder (published)
//   .build-<short>-XXXXXX    a build folder (mktemp), the venv
//   .lock-<digest>           flock(1)'d while one run builds the digest
// The first run to take the lock builds; others wait for it and use the
// result (N jobs of one spec on a cluster build it once). A build goes into
// a new folder and is published by renaming a symlink onto <digest>
// (atomic, and a venv cannot move once made); a failed build removes its
// folder and exits non-zero, and the next build of the digest removes what
// a killed one left (no one else can be building it: it holds the lock).
// Packages come from the daemon's settings (PipIndexOptions): find_links
// paths and index URLs must be reachable from the target.
//
// Thread-safety: free functions, thread-safe.
#pragma once

#include <string>
#include <vector>

#include "daemon/envs/env_builder.h"
#include "daemon/envs/env_spec.h"
#include "daemon/executors/executor.h"

namespace amld::daemon {

inline constexpr char kRemoteEnvCacheVar[] = "AMLD_ENV_CACHE";
// A remote build that failed exits with this code (its reason is in the
// run's std log).
inline constexpr int kRemoteBuildFailedExit = 86;

// The /bin/sh script: makes (or finds) the environment of `spec` in
// $AMLD_ENV_CACHE, activates it (PATH, VIRTUAL_ENV, no PYTHONHOME), then
// execs its arguments, with the first one replaced by the environment's
// python when `is_script` (the argv of a script run starts with its
// interpreter).
std::string RemoteEnvironmentScript(const EnvironmentSpec& spec, const EnvironmentOptions& options,
                                    bool is_script);

// `argv` wrapped: {"/bin/sh", "-c", script, "amld-env", argv...}.
std::vector<std::string> RemoteEnvironmentArgv(const EnvironmentSpec& spec,
                                               const EnvironmentOptions& options, bool is_script,
                                               const std::vector<std::string>& argv);

// Makes `launch` (a run on an SSH or Slurm target) build or find its
// environment there and run in it: its argv wrapped by
// RemoteEnvironmentArgv, AMLD_ENV_CACHE=<run_dir>/../envs in env and
// run_env (which the executor moves to the target's folder).
void UseRemoteEnvironment(const EnvironmentSpec& spec, const EnvironmentOptions& options,
                          bool is_script, LaunchSpec* launch);

}  // namespace amld::daemon
