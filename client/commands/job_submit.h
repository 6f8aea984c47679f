// Submitting a job read from a YAML file (`aml run submit -f job.yml`,
// `aml sweep submit -f sweep.yml`): snapshot its code folder as `aml run
// submit` does, resolve the registered environment it names, submit, and
// print or wait.
//
// Thread-safety: call from the command's thread.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "amld/v1/runs.pb.h"
#include "client/commands/command.h"
#include "client/commands/snapshot_limits.h"
#include "client/commands/yaml_reader.h"

namespace amld::client::commands {

// Reads the file at `path` whole; NOT_FOUND saying so when it cannot.
absl::StatusOr<std::string> ReadJobFile(const std::string& path);

// Snapshots job.code, puts the registered environment in the config (its
// variables overridden by the job's environment_variables), and submits.
// `what` names the job in errors ("the run", "the sweep").
absl::StatusOr<amld::v1::Run> SubmitYamlJob(const GlobalOptions& global, JobFile job,
                                            const SnapshotLimits& limits, const std::string& what);

}  // namespace amld::client::commands
