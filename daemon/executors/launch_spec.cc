#include "daemon/executors/launch_spec.h"

#include <filesystem>
#include <string>
#include <system_error>

#include "absl/strings/str_cat.h"

namespace amld::daemon {

bool HasNul(std::string_view s) { return s.find('\0') != std::string_view::npos; }

absl::Status ValidateLaunchSpec(const LaunchSpec& spec) {
  auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat("cannot launch run ", spec.run_id, ": ", why));
  };
  if (spec.run_id.empty()) return bad("empty run id");
  // The id names the run's folder on every target.
  if (spec.run_id.find('/') != std::string::npos || spec.run_id[0] == '.' || HasNul(spec.run_id)) {
    return bad("the run id must be a plain file name");
  }
  if (spec.argv.empty() || spec.argv[0].empty()) return bad("empty command");
  for (const std::string& arg : spec.argv) {
    if (HasNul(arg)) return bad("a command argument contains a NUL byte");
  }
  for (const auto& [name, value] : spec.env) {
    if (name.empty() || name.find('=') != std::string::npos || HasNul(name) || HasNul(value)) {
      return bad(absl::StrCat("bad environment variable name \"", name, "\""));
    }
  }
  if (spec.max_duration < absl::ZeroDuration()) return bad("negative max_duration");
  if (spec.kill_grace < absl::ZeroDuration()) return bad("negative kill_grace");
  if (HasNul(spec.run_dir.string())) return bad("run_dir contains a NUL byte");
  if (!spec.run_dir.is_absolute()) return bad("the run folder must be an absolute path");
  std::error_code ec;
  if (!std::filesystem::is_directory(spec.run_dir / "wd", ec)) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot launch run ", spec.run_id, ": its working folder ",
                     (spec.run_dir / "wd").string(), " does not exist; prepare it first"));
  }
  return absl::OkStatus();
}

}  // namespace amld::daemon
