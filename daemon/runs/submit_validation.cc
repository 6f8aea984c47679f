#include "daemon/runs/submit_validation.h"

#include <algorithm>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "storage/snapshot/snapshot.h"
#include "storage/state/state_store.h"
#include "base/status_macros.h"
#include "daemon/executors/launch/launch_protocol.h"

namespace amld::daemon {
namespace {

using amld::storage::Digest;

// Listed in the FAILED_PRECONDITION message; more would not fit in the
// trailers a client accepts (8 KiB by default). Clients learn the full set
// from FindMissingBlobs.
constexpr size_t kMaxListedMissing = 32;

std::string Quoted(std::string_view s) {
  return absl::StrCat("\"", absl::CHexEscape(absl::string_view(s.data(), s.size())), "\"");
}

absl::Status ValidateEnvName(const std::string& name) {
  if (name.empty()) {
    return absl::InvalidArgumentError("environment variable names must not be empty");
  }
  if (name.find('=') != std::string::npos || name.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("environment variable name ", Quoted(name), " must not contain '=' or NUL"));
  }
  if (name == "CUDA_VISIBLE_DEVICES") {
    return absl::InvalidArgumentError(
        "environment variable CUDA_VISIBLE_DEVICES is set by amld to the GPUs the run is given; "
        "ask for GPUs with resources.gpus (aml run submit --gpus N) instead");
  }
  if (absl::StartsWith(name, "AMLD_")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "environment variable ", name, " is reserved: names starting with AMLD_ are set by amld"));
  }
  return absl::OkStatus();
}

// The counts of RunConfig.distributed, as azureml checks them, and what one
// machine can hold. Which targets take several nodes is RunManager's check
// (it knows the target): only Slurm's.
absl::Status ValidateDistributed(const amld::v1::DistributedConfig& d) {
  using amld::v1::DistributedConfig;
  auto at_least_one = [](const char* config, const char* field, int value) {
    return value >= 1 ? absl::OkStatus()
                      : absl::InvalidArgumentError(absl::StrCat(
                            config, ".", field, " must be at least 1, got ", value));
  };
  int nodes = 1;
  int processes = 1;
  switch (d.config_case()) {
    case DistributedConfig::kPytorch: {
      const amld::v1::PyTorchConfiguration& p = d.pytorch();
      AMLD_RETURN_IF_ERROR(at_least_one("PyTorchConfiguration", "process_count", p.process_count()));
      AMLD_RETURN_IF_ERROR(at_least_one("PyTorchConfiguration", "node_count", p.node_count()));
      if (p.process_count() % p.node_count() != 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "PyTorchConfiguration.process_count ", p.process_count(),
            " is not a whole number of processes per node for node_count ", p.node_count()));
      }
      if (!p.communication_backend().empty() && p.communication_backend() != "nccl" &&
          p.communication_backend() != "gloo") {
        return absl::InvalidArgumentError(
            absl::StrCat("PyTorchConfiguration.communication_backend must be \"nccl\" or "
                         "\"gloo\", got \"",
                         p.communication_backend(), "\""));
      }
      nodes = p.node_count();
      processes = p.process_count();
      break;
    }
    case DistributedConfig::kMpi:
      AMLD_RETURN_IF_ERROR(at_least_one("MpiConfiguration", "process_count_per_node",
                                        d.mpi().process_count_per_node()));
      AMLD_RETURN_IF_ERROR(at_least_one("MpiConfiguration", "node_count", d.mpi().node_count()));
      nodes = d.mpi().node_count();
      processes = d.mpi().process_count_per_node() * nodes;
      break;
    case DistributedConfig::kTensorflow:
      AMLD_RETURN_IF_ERROR(at_least_one("TensorflowConfiguration", "worker_count",
                                        d.tensorflow().worker_count()));
      if (d.tensorflow().parameter_server_count() < 0) {
        return absl::InvalidArgumentError(
            "TensorflowConfiguration.parameter_server_count must not be negative");
      }
      processes = d.tensorflow().worker_count() + d.tensorflow().parameter_server_count();
      break;
    case DistributedConfig::CONFIG_NOT_SET:
      return absl::OkStatus();
  }
  if (processes / nodes > launch::kMaxProcesses) {
    return absl::InvalidArgumentError(absl::StrCat("a run of ", processes / nodes,
                                                   " processes on one machine is too many; at "
                                                   "most ",
                                                   launch::kMaxProcesses));
  }
  return absl::OkStatus();
}

absl::Status ValidateUnsupported(const amld::v1::RunConfig& config) {
  std::vector<std::string> unsupported;
  if (!config.environment().docker_base_image().empty()) {
    unsupported.push_back("environment.docker_base_image");
  }
  if (unsupported.empty()) return absl::OkStatus();
  return absl::UnimplementedError(absl::StrCat(
      "this daemon does not support ", absl::StrJoin(unsupported, ", "), " yet; remove ",
      unsupported.size() == 1 ? "it" : "them", " to run as a single local process"));
}

}  // namespace

absl::Status ValidateRunConfig(const amld::v1::RunConfig& config) {
  AMLD_RETURN_IF_ERROR(amld::storage::ValidateExperimentName(config.experiment_name()));
  const bool has_script = !config.script().empty();
  const bool has_command = !config.command().empty();
  if (has_script == has_command) {
    return absl::InvalidArgumentError(
        has_script ? "set either script or command, not both"
                   : "nothing to run: set script (a file in the source folder) or command");
  }
  if (has_script) AMLD_RETURN_IF_ERROR(base::ValidateRelativePath(config.script(), "script"));
  if (config.command().find('\0') != std::string::npos) {
    return absl::InvalidArgumentError("command must not contain NUL");
  }
  for (const std::string& arg : config.arguments()) {
    if (arg.find('\0') != std::string::npos) {
      return absl::InvalidArgumentError("arguments must not contain NUL");
    }
  }
  for (const auto& [name, value] : config.environment().environment_variables()) {
    AMLD_RETURN_IF_ERROR(ValidateEnvName(name));
    if (value.find('\0') != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("environment variable ", name, " has a NUL in its value"));
    }
  }
  // The submitter's variables come from a real environment, so only what
  // exec could not pass is refused; AMLD_* and CUDA_VISIBLE_DEVICES are
  // replaced by the daemon's values when the run starts.
  for (const auto& [name, value] : config.submitter_environment().variables()) {
    if (name.empty() || name.find_first_of(std::string_view("=\0", 2)) != std::string::npos ||
        value.find('\0') != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          "submitter_environment has a variable exec cannot pass: ", Quoted(name)));
    }
  }
  if (config.submitter_environment().python().find('\0') != std::string::npos) {
    return absl::InvalidArgumentError("submitter_environment.python must not contain NUL");
  }
  if (config.environment().interpreter_path().find('\0') != std::string::npos) {
    return absl::InvalidArgumentError("environment.interpreter_path must not contain NUL");
  }
  if (config.max_run_duration_seconds() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_run_duration_seconds must be 0 (no limit) or positive, got ",
                     config.max_run_duration_seconds()));
  }
  if (config.priority() < kMinPriority || config.priority() > kMaxPriority) {
    return absl::InvalidArgumentError(absl::StrCat("priority must be between ", kMinPriority,
                                                   " and ", kMaxPriority, ", got ",
                                                   config.priority()));
  }
  if (config.resources().cpus() < 0 || config.resources().gpus() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("resources must not be negative, got cpus ", config.resources().cpus(),
                     " and gpus ", config.resources().gpus()));
  }
  if (!config.has_snapshot_root()) {
    return absl::InvalidArgumentError("snapshot_root is not set: upload the source folder first");
  }
  AMLD_RETURN_IF_ERROR(
      amld::storage::ValidateDigest(amld::storage::FromProto(config.snapshot_root())));
  // The compute target is checked against the defined targets by
  // RunManager::Submit (StateStore::GetComputeTarget: NOT_FOUND).
  AMLD_RETURN_IF_ERROR(ValidateDistributed(config.distributed()));
  return ValidateUnsupported(config);
}

// Folders of checked trees remembered at most (about 100 bytes each).
constexpr size_t kMaxRememberedDirs = 500000;

absl::Status SnapshotChecker::CheckTreeComplete(const Digest& root) {
  absl::StatusOr<std::vector<Digest>> missing;
  {
    absl::MutexLock lock(&mu_);
    if (complete_roots_.contains(root)) return absl::OkStatus();
    // Bounded: past this many folders, start over.
    if (complete_dirs_.size() > kMaxRememberedDirs) complete_dirs_.clear();
    missing = amld::storage::FindMissingInTree(*cas_, root, &complete_dirs_);
  }
  if (!missing.ok()) {
    return absl::Status(missing.status().code(),
                        absl::StrCat("snapshot ", root.ToString(),
                                     " cannot be read: ", missing.status().message()));
  }
  if (!missing->empty()) {
    std::vector<std::string> listed;
    for (size_t i = 0; i < missing->size() && i < kMaxListedMissing; ++i) {
      listed.push_back((*missing)[i].ToString());
    }
    std::string more = missing->size() > kMaxListedMissing
                           ? absl::StrCat(" and ", missing->size() - kMaxListedMissing,
                                          " more (FindMissingBlobs lists them all)")
                           : "";
    return absl::FailedPreconditionError(
        absl::StrCat("snapshot ", root.ToString(), " is missing ", missing->size(),
                     " blob(s); upload them and resubmit: ", absl::StrJoin(listed, ", "), more));
  }
  absl::MutexLock lock(&mu_);
  complete_roots_.insert(root);
  return absl::OkStatus();
}

absl::Status SnapshotChecker::Check(const amld::v1::RunConfig& config) {
  const Digest root = amld::storage::FromProto(config.snapshot_root());
  AMLD_RETURN_IF_ERROR(CheckTreeComplete(root));
  if (config.script().empty()) return absl::OkStatus();
  absl::StatusOr<amld::v1::FileNode> file = amld::storage::LookupFile(*cas_, root, config.script());
  if (file.ok()) return absl::OkStatus();
  if (file.status().code() == absl::StatusCode::kNotFound) {
    return absl::FailedPreconditionError(absl::StrCat(
        "script ", Quoted(config.script()),
        " is not a file in the snapshot; give its path relative to the source folder"));
  }
  return file.status();
}

void SnapshotChecker::ForgetAll() {
  absl::MutexLock lock(&mu_);
  complete_roots_.clear();
  complete_dirs_.clear();
}

}  // namespace amld::daemon
