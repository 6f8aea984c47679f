#include "daemon/executors/launch_spec.h"

#include <filesystem>
#include <string>
#include <system_error>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "base/file_util.h"
#include "daemon/executors/launch/launch_protocol.h"
#include "daemon/executors/shim/shim_protocol.h"

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

absl::Status CreateRankLogs(const std::filesystem::path& run_dir,
                            const LaunchSpec::Processes& processes) {
  if (processes.kind.empty()) return absl::OkStatus();
  std::error_code ec;
  std::filesystem::create_directories(run_dir / "user_logs", ec);
  if (ec) return base::ErrnoStatus(ec.value(), "create", run_dir / "user_logs");
  for (int rank = 0; rank < processes.count; ++rank) {
    const std::filesystem::path log =
        run_dir / (rank == 0 ? shim::kStdLogPath : launch::RankLogPath(rank));
    base::ScopedFd fd(::open(log.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644));
    if (!fd.valid()) return base::ErrnoStatus(errno, "create", log);
  }
  const std::filesystem::path rank0 = run_dir / launch::RankLogPath(0);
  if (::link((run_dir / shim::kStdLogPath).c_str(), rank0.c_str()) != 0 && errno != EEXIST) {
    return base::ErrnoStatus(errno, "link", rank0);
  }
  return absl::OkStatus();
}

}  // namespace amld::daemon
