#include "daemon/executors/ssh/ssh_target.h"

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "daemon/executors/executor_registry.h"

namespace amld::daemon {

absl::Status ValidateSshTarget(const amld::v1::ComputeTarget& target) {
  const std::string& name = target.name();
  const amld::v1::SshTarget& ssh = target.ssh();
  if (ssh.host().empty()) return InvalidComputeTarget(name, "an ssh target needs a host (--host)");
  if (ssh.host().size() > 255 || HasSpaceOrControl(ssh.host()) || ssh.host().front() == '-' ||
      absl::StrContains(ssh.host(), "@")) {
    return InvalidComputeTarget(
        name, absl::StrCat("host \"", absl::CHexEscape(ssh.host()),
                           "\" is not a host name or address (no spaces, no leading "
                           "'-', and give the login name as the user, not user@host)"));
  }
  if (ssh.port() < 0 || ssh.port() > 65535) {
    return InvalidComputeTarget(
        name, absl::StrCat("port ", ssh.port(), " is outside 1..65535 (0: ssh's default)"));
  }
  if (HasSpaceOrControl(ssh.user()) || absl::StartsWith(ssh.user(), "-") ||
      absl::StrContains(ssh.user(), "@")) {
    return InvalidComputeTarget(
        name, absl::StrCat("user \"", absl::CHexEscape(ssh.user()), "\" is not a login name"));
  }
  if (!ssh.identity_file().empty() &&
      (ssh.identity_file().front() != '/' || HasLineBreakOrNul(ssh.identity_file()))) {
    return InvalidComputeTarget(
        name, absl::StrCat("identity file \"", absl::CHexEscape(ssh.identity_file()),
                           "\" must be an absolute path on the daemon's machine"));
  }
  if (HasLineBreakOrNul(ssh.workdir())) {
    return InvalidComputeTarget(name, "workdir must not contain line breaks or NUL");
  }
  return absl::OkStatus();
}

}  // namespace amld::daemon
