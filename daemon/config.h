// The daemon's config file, amld.yaml: the local target's capacity, the
// cancel grace period and limits on runs. `amld --config PATH` names it;
// without that flag <data dir>/amld.yaml is read when it exists. Flags given
// on the command line override the file.
//
//   max_concurrent_runs: 2      # runs at once (default: number of cores)
//   cpus: 8                     # CPU slots runs draw on (default: cores)
//   gpus: [0, 1]                # GPU ids for CUDA_VISIBLE_DEVICES (default: none)
//   default_gpus: 1             # GPUs of a local run that asks for none (default 0)
//   kill_grace_seconds: 10      # SIGTERM → SIGKILL on cancel and timeout
//   keep_finished_run_folders: 20  # run folders kept after their runs end,
//                                  # the newest; older ones are removed (their
//                                  # files stay stored). 0: remove each at
//                                  # once; -1: keep all
//   limits:
//     default_run_duration_seconds: 3600  # for runs that set none (0: none)
//     max_run_duration_seconds: 86400     # longest a run may ask for (0: no cap)
//   environments:               # managed environments (daemon/envs/env_builder.h)
//     index_url: https://pypi.example/simple  # pip --index-url (default: pip's config)
//     extra_index_urls: [...]   # pip --extra-index-url, each
//     find_links: [/srv/wheels] # pip --find-links, each
//     no_index: true            # pip --no-index: only find_links
//     conda_path: /opt/micromamba/bin/micromamba  # for conda packages beyond python, pip
//     build_timeout_seconds: 3600  # one build step at most
//     cache_budget: 20GiB       # built environments kept, least recently used
//                               # removed first (default 20GiB; 0: no budget)
//     build_user: amld-build    # system mode: the account that builds the shared
//                               # cache (hash-pinned specs); "" or no such
//                               # account: each user's cache builds them
//   web:                        # the web view (daemon/web/web_server.h)
//     enabled: true             # serve from the start (default: from the first `aml ui`)
//     address: 127.0.0.1        # where to listen (default); another address
//                               # serves the pages, behind their token, beyond this machine
//     port: 8265                # default 0: a free port, chosen when it starts
//   per_user:                   # caps per submitting user (0: none)
//     max_running_runs: 2       # runs holding a slot at once
//     max_gpus: 1               # GPUs held at once
//   admin_group: amld-admin     # system mode: its members (and root) may
//                               # cancel and read every user's runs and
//                               # manage compute targets (daemon/services/access.h)
//   users_manage_targets: false # system mode: true lets every user create
//                               # and delete compute targets
//
// Every key is optional; each is read into the options struct of the part
// that uses it (DaemonOptions, daemon.h). Anything else — an unknown key, a value of the
// wrong type, a negative number (other than keep_finished_run_folders: -1),
// a repeated GPU id, a repeated key, a default above the cap — is an error
// "<file>:<line>:<column>: <what is wrong>", and the daemon does not start.
//
// Thread-safety: free functions, thread-safe.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "daemon/daemon.h"

namespace amld::daemon {

// Parses amld.yaml's text onto `options`: each setting the file has replaces
// the value there (in the sub-struct that owns it, e.g. options->runs.cpus);
// the rest stay as they are. `source` names the text in errors (usually the
// path). INVALID_ARGUMENT "<source>:<line>:<column>: ..." for anything
// wrong; `options` may then be partly changed (the daemon does not start).
absl::Status ParseDaemonConfig(const std::string& text, const std::string& source,
                               DaemonOptions* options);

// Reads and parses a config file onto `options`. NOT_FOUND when it does not
// exist; errors name the file.
absl::Status LoadDaemonConfigFile(const std::filesystem::path& path, DaemonOptions* options);

// The file to read: `explicit_path` when given (it must exist), else
// <data_dir>/amld.yaml when it exists, else none.
std::optional<std::filesystem::path> ConfigFileToRead(const std::filesystem::path& explicit_path,
                                                      const std::filesystem::path& data_dir);

// Checks the settings once the file and the flags (main.cc, applied after
// the file) are in: the file's bounds for values that came from flags, and
// what no single value shows (the default duration above the cap).
// INVALID_ARGUMENT saying what to change.
absl::Status CheckDaemonOptions(const DaemonOptions& options);

// "0,1" → {0, 1}; "" → {} (the --gpus flag). INVALID_ARGUMENT for anything
// but distinct non-negative integers.
absl::StatusOr<std::vector<int>> ParseGpuList(const std::string& text);

}  // namespace amld::daemon
