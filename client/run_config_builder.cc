#include "client/run_config_builder.h"

#include <algorithm>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/status_macros.h"

namespace amld::client {

std::string DefaultExperimentName(const std::filesystem::path& source_dir) {
  std::error_code ec;
  std::filesystem::path resolved =
      std::filesystem::weakly_canonical(std::filesystem::absolute(source_dir, ec), ec);
  if (ec) resolved = std::filesystem::absolute(source_dir).lexically_normal();
  std::string base = resolved.filename().string();
  if (base.empty()) base = resolved.parent_path().filename().string();  // trailing '/'
  std::string name;
  for (char c : base) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.';
    name.push_back(ok ? c : '_');
  }
  if (name.size() > 128) name.resize(128);
  if (name.empty() || name == "." || name == "..") return "default";
  return name;
}

absl::StatusOr<std::pair<std::string, std::string>> ParseKeyValue(std::string_view flag,
                                                                  std::string_view text) {
  const size_t eq = text.find('=');
  if (eq == std::string_view::npos || eq == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(flag), " expects KEY=VALUE, got \"", std::string(text), "\""));
  }
  return std::make_pair(std::string(text.substr(0, eq)), std::string(text.substr(eq + 1)));
}

absl::StatusOr<std::string> NormalizeScriptPath(std::string_view script) {
  if (script.empty()) return absl::InvalidArgumentError("the script path is empty");
  if (script.front() == '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("the script must be a path relative to the source folder (-s), got \"",
                     std::string(script), "\""));
  }
  std::vector<std::string> parts;
  for (absl::string_view part :
       absl::StrSplit(absl::string_view(script.data(), script.size()), '/', absl::SkipEmpty())) {
    if (part == ".") continue;
    if (part == "..") {
      if (parts.empty()) {
        return absl::InvalidArgumentError(absl::StrCat("the script \"", std::string(script),
                                                       "\" is outside the source folder (-s)"));
      }
      parts.pop_back();
      continue;
    }
    parts.emplace_back(part);
  }
  if (parts.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the script \"", std::string(script), "\" names the source folder itself"));
  }
  return absl::StrJoin(parts, "/");
}

absl::StatusOr<amld::v1::RunConfig> BuildRunConfig(const SubmitSpec& spec) {
  if (spec.script.empty() == spec.command.empty()) {
    return absl::InvalidArgumentError(spec.script.empty()
                                          ? "give a SCRIPT to run or --command \"...\""
                                          : "give either a SCRIPT or --command, not both");
  }
  if (spec.max_duration_seconds < 0) {
    return absl::InvalidArgumentError("--max-duration must be 0 (no limit) or more seconds");
  }
  if (spec.priority < -100 || spec.priority > 100) {
    return absl::InvalidArgumentError("--priority must be between -100 and 100");
  }
  if (spec.cpus < 0 || spec.gpus < -1) {
    return absl::InvalidArgumentError("--cpus and --gpus must be 0 or more");
  }
  amld::v1::RunConfig config;
  config.set_experiment_name(spec.experiment.empty() ? DefaultExperimentName(spec.source_dir)
                                                     : spec.experiment);
  if (!spec.script.empty()) {
    AMLD_ASSIGN_OR_RETURN(std::string script, NormalizeScriptPath(spec.script));
    config.set_script(std::move(script));
  } else {
    config.set_command(spec.command);
  }
  for (const auto& arg : spec.arguments) config.add_arguments(arg);
  config.set_compute_target(spec.compute_target);
  config.set_max_run_duration_seconds(spec.max_duration_seconds);
  config.set_priority(spec.priority);
  // An explicit --gpus 0 is a request too: no GPU, whatever the daemon's default.
  if (spec.cpus > 0 || spec.gpus >= 0) {
    config.mutable_resources()->set_cpus(spec.cpus);
    config.mutable_resources()->set_gpus(std::max(spec.gpus, 0));
  }
  for (const auto& tag : spec.tags) {
    AMLD_ASSIGN_OR_RETURN(auto kv, ParseKeyValue("--tag", tag));
    (*config.mutable_tags())[kv.first] = kv.second;
  }
  if (!spec.interpreter.empty() || !spec.env.empty()) {
    auto* env = config.mutable_environment();
    env->set_user_managed_dependencies(true);
    env->set_interpreter_path(spec.interpreter);
    for (const auto& var : spec.env) {
      AMLD_ASSIGN_OR_RETURN(auto kv, ParseKeyValue("--env", var));
      (*env->mutable_environment_variables())[kv.first] = kv.second;
    }
  }
  return config;
}

}  // namespace amld::client
