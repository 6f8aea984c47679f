#include "daemon/runs/run_plan.h"

#include <fnmatch.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/shell_quote.h"
#include "daemon/executors/run_python.h"

extern char** environ;

namespace amld::daemon {

namespace {

// Variables that describe the daemon's process (systemd's socket activation
// and notification), never a run's.
bool IsDaemonOnly(std::string_view name) {
  static const char* const kDaemonOnly[] = {"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES",
                                            "NOTIFY_SOCKET"};
  return std::any_of(std::begin(kDaemonOnly), std::end(kDaemonOnly),
                     [&](const char* d) { return name == d; });
}

}  // namespace

EnvList CaptureDaemonEnvironment() {
  EnvList env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string entry(*e);
    size_t eq = entry.find('=');
    if (eq == std::string::npos || eq == 0) continue;
    std::string name = entry.substr(0, eq);
    if (!IsDaemonOnly(name)) env.emplace_back(std::move(name), entry.substr(eq + 1));
  }
  return env;
}

std::string MakeRunId(const std::string& experiment, absl::Time now, uint32_t random_bits) {
  return absl::StrFormat("%s_%d_%08x", experiment, absl::ToUnixSeconds(now), random_bits);
}

std::vector<std::string> BuildArgv(const amld::v1::RunConfig& config) {
  std::vector<std::string> argv;
  if (!config.command().empty()) {
    std::string line = config.command();
    for (const std::string& arg : config.arguments()) {
      absl::StrAppend(&line, " ", base::ShellQuote(arg));
    }
    argv = {"/bin/sh", "-c", std::move(line)};
    return argv;
  }
  const std::string& interpreter = config.environment().interpreter_path();
  argv.push_back(interpreter.empty() ? "python3" : interpreter);
  argv.push_back(config.script());
  argv.insert(argv.end(), config.arguments().begin(), config.arguments().end());
  return argv;
}

EnvList BuildEnvironment(const EnvList& base, const std::string& run_id,
                         const amld::v1::RunConfig& config, const RunPaths& paths) {
  std::map<std::string, std::string> env(base.begin(), base.end());
  env["AMLD_RUN_ID"] = run_id;
  env["AMLD_EXPERIMENT"] = config.experiment_name();
  // The SDK refuses, by name, calls that need the daemon's socket in a run
  // on another machine.
  env["AMLD_COMPUTE_TARGET"] = config.compute_target().empty() ? "local" : config.compute_target();
  env["AMLD_OUTPUTS_DIR"] = paths.outputs.string();
  env["AMLD_LOGS_DIR"] = paths.logs.string();
  env["AMLD_METRICS_FILE"] = paths.metrics.string();
  env["PYTHONUNBUFFERED"] = "1";
  for (const auto& [name, value] : config.environment().environment_variables()) {
    env[name] = value;
  }
  return EnvList(env.begin(), env.end());
}

void AddAzuremlAlias(const std::filesystem::path& alias_dir, const amld::v1::RunConfig& config,
                     LaunchSpec* spec) {
  if (config.environment().azureml_alias_off()) return;
  if (!config.compute_target().empty() && config.compute_target() != "local") {
    spec->run_python = true;
    return;
  }
  if (!alias_dir.empty()) PrependToPythonPath(alias_dir.string(), &spec->env);
}

absl::Status CheckExecLimits(const LaunchSpec& spec) {
  constexpr size_t kMaxArgStrlen = 32 * 4096;  // MAX_ARG_STRLEN in linux/binfmts.h
  constexpr size_t kShimRoom = 8192;           // amld-shim's own flags and paths
  auto too_long = [&](std::string_view what, size_t bytes) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s is %d bytes; Linux execs at most %d bytes per argument or environment entry: pass "
        "large data in a file of the snapshot instead",
        what, bytes, kMaxArgStrlen - 1));
  };
  size_t total = 0;
  for (size_t i = 0; i < spec.argv.size(); ++i) {
    const size_t n = spec.argv[i].size() + 1;
    if (n > kMaxArgStrlen) return too_long(absl::StrCat("argument ", i), n - 1);
    total += n + sizeof(char*);
  }
  for (const auto& [name, value] : spec.env) {
    const size_t n = name.size() + value.size() + 2;
    if (n > kMaxArgStrlen) return too_long(absl::StrCat("environment variable ", name), n - 2);
    total += n + sizeof(char*);
  }
  const long arg_max = ::sysconf(_SC_ARG_MAX);
  if (arg_max > 0 && total + kShimRoom > static_cast<size_t>(arg_max)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "the run's arguments and environment take %d bytes, over the %d bytes Linux can exec "
        "(ARG_MAX, with amld's own): pass large data in a file of the snapshot instead",
        total, arg_max - static_cast<long>(kShimRoom)));
  }
  return absl::OkStatus();
}

LaunchSpec BuildLaunchSpec(const std::string& run_id, const amld::v1::RunConfig& config,
                           const RunPaths& paths, const EnvList& base_env,
                           absl::Duration kill_grace) {
  LaunchSpec spec;
  spec.run_id = run_id;
  spec.run_dir = paths.root;
  spec.argv = BuildArgv(config);
  spec.env = BuildEnvironment(base_env, run_id, config, paths);
  spec.run_env = BuildEnvironment({}, run_id, config, paths);
  spec.compute_target = config.compute_target();
  spec.cpus = std::max(1, config.resources().cpus());
  spec.gpus = std::max(0, config.resources().gpus());
  spec.max_duration = absl::Seconds(config.max_run_duration_seconds());
  spec.kill_grace = kill_grace;
  spec.processes = ProcessesOf(config);
  return spec;
}

LaunchSpec::Processes ProcessesOf(const amld::v1::RunConfig& config) {
  LaunchSpec::Processes p;
  const amld::v1::DistributedConfig& d = config.distributed();
  switch (d.config_case()) {
    case amld::v1::DistributedConfig::kPytorch:
      p.kind = "pytorch";
      p.count = d.pytorch().process_count();
      p.nodes = std::max(1, d.pytorch().node_count());
      break;
    case amld::v1::DistributedConfig::kMpi:
      p.kind = "mpi";
      p.nodes = std::max(1, d.mpi().node_count());
      p.count = d.mpi().process_count_per_node() * p.nodes;
      break;
    case amld::v1::DistributedConfig::kTensorflow:
      p.kind = "tensorflow";
      p.count = d.tensorflow().worker_count() + d.tensorflow().parameter_server_count();
      p.parameter_servers = d.tensorflow().parameter_server_count();
      break;
    case amld::v1::DistributedConfig::CONFIG_NOT_SET:
      break;
  }
  return p;
}

void FilterSubmitterEnvironment(const SubmitterEnvPolicy& policy,
                                amld::v1::SubmitterEnvironment* env) {
  auto matches = [](const std::vector<std::string>& patterns, const std::string& name) {
    return std::any_of(patterns.begin(), patterns.end(), [&](const std::string& p) {
      return ::fnmatch(p.c_str(), name.c_str(), 0) == 0;
    });
  };
  std::vector<std::string> dropped;
  for (const auto& [name, value] : env->variables()) {
    if (matches(policy.deny, name) || (!policy.allow.empty() && !matches(policy.allow, name))) {
      dropped.push_back(name);
    }
  }
  if (dropped.empty()) return;
  for (const std::string& name : dropped) env->mutable_variables()->erase(name);
  std::vector<std::string> left_out(env->left_out().begin(), env->left_out().end());
  left_out.insert(left_out.end(), dropped.begin(), dropped.end());
  std::sort(left_out.begin(), left_out.end());
  left_out.erase(std::unique(left_out.begin(), left_out.end()), left_out.end());
  env->clear_left_out();
  for (std::string& name : left_out) env->add_left_out(std::move(name));
}

void UseSubmitterEnvironment(const std::string& run_id, const amld::v1::RunConfig& config,
                             const RunPaths& paths, LaunchSpec* spec) {
  if (!config.has_submitter_environment()) return;
  const amld::v1::SubmitterEnvironment& submitter = config.submitter_environment();
  EnvList base;
  for (const auto& [name, value] : submitter.variables()) {
    if (!IsDaemonOnly(name)) base.emplace_back(name, value);
  }
  spec->env = BuildEnvironment(base, run_id, config, paths);
  if (config.command().empty() && config.environment().interpreter_path().empty() &&
      !submitter.python().empty() && !spec->argv.empty()) {
    spec->argv.front() = submitter.python();
  }
}

std::string NoGpuNotice(const std::vector<int>& machine_gpus) {
  return absl::StrCat("amld: this run has no GPU (CUDA_VISIBLE_DEVICES is empty; this machine has ",
                      machine_gpus.size(), ": ", absl::StrJoin(machine_gpus, ","),
                      "), so CUDA code runs on the CPU; ask for GPUs with `aml run submit --gpus N`, "
                      "run_config.gpus = N in the Python SDK, or resources.gpus in a job YAML\n");
}

void SetVisibleGpus(const std::vector<int>& gpus, LaunchSpec* spec) {
  constexpr char kName[] = "CUDA_VISIBLE_DEVICES";
  std::string value = absl::StrJoin(gpus, ",");
  auto before = [](const auto& entry, const char* name) { return entry.first < name; };
  auto it = std::lower_bound(spec->env.begin(), spec->env.end(), kName, before);
  if (it != spec->env.end() && it->first == kName) {
    it->second = std::move(value);
  } else {
    spec->env.insert(it, {kName, std::move(value)});
  }
}

absl::StatusOr<int64_t> EffectiveRunDuration(int64_t requested, int64_t default_seconds,
                                             int64_t cap_seconds) {
  if (cap_seconds > 0 && requested > cap_seconds) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_run_duration_seconds ", requested, " is above this daemon's limit of ", cap_seconds,
        " s; ask for at most ", cap_seconds, " (limits.max_run_duration_seconds in amld.yaml)"));
  }
  int64_t effective = requested > 0 ? requested : default_seconds;
  if (cap_seconds > 0 && (effective == 0 || effective > cap_seconds)) effective = cap_seconds;
  return effective;
}

std::string DescribeSignal(int signal) {
  const char* abbrev = ::sigabbrev_np(signal);
  if (abbrev == nullptr) return absl::StrCat("killed by signal ", signal);
  return absl::StrCat("killed by signal ", signal, " (SIG", abbrev, ")");
}

FinalOutcome DecideOutcome(const absl::StatusOr<ExitStatus>& outcome,
                           int64_t max_run_duration_seconds, const std::string& cancel_reason) {
  using amld::v1::RunStatus;
  FinalOutcome f;
  if (!outcome.ok()) {
    f.status = RunStatus::FAILED;
    f.error = absl::StrCat("daemon lost the run: ", outcome.status().message());
    return f;
  }
  const ExitStatus& e = *outcome;
  f.exit_code = e.exit_code;
  f.exit_signal = e.signal;
  if (!e.launch_error.empty()) {
    f.status = RunStatus::FAILED;
    f.error = absl::StrCat("could not start: ", e.launch_error);
  } else if (e.canceled) {
    f.status = RunStatus::CANCELED;
    f.error = cancel_reason.empty() ? "canceled" : absl::StrCat("canceled: ", cancel_reason);
  } else if (e.timed_out) {
    // As azureml: the system cancels a run that outlives its
    // max_run_duration_seconds, so it ends CANCELED (the reason says why).
    f.status = RunStatus::CANCELED;
    f.error = absl::StrCat("timed out after ", max_run_duration_seconds, " s");
  } else if (!e.failure.empty()) {
    f.status = RunStatus::FAILED;
    f.error = e.failure;
  } else if (e.signal != 0) {
    f.status = RunStatus::FAILED;
    f.error = DescribeSignal(e.signal);
  } else if (e.exit_code != 0) {
    f.status = RunStatus::FAILED;
    f.error = absl::StrCat("exit code ", e.exit_code);
  } else {
    f.status = RunStatus::COMPLETED;
  }
  return f;
}

}  // namespace amld::daemon
