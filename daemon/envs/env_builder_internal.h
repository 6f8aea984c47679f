// What env_builder.cc, env_build_steps.cc and env_builder_leases.cc share;
// nothing outside daemon/envs includes it.
#ifndef AMLD_DAEMON_ENVS_ENV_BUILDER_INTERNAL_H_
#define AMLD_DAEMON_ENVS_ENV_BUILDER_INTERNAL_H_

#include <optional>

#include "absl/status/statusor.h"
#include "base/fs_identity.h"
#include "daemon/executors/run_as.h"

namespace amld::daemon::envs_internal {

// Names in a cache folder that are not environments: a build in progress,
// and the link that publishes a finished one under its digest.
inline constexpr char kBuildPrefix[] = ".build-";
inline constexpr char kLinkPrefix[] = ".link-";

// Takes `who`'s file rights on this thread while it lives (nothing when
// `who` is unset or the daemon is not root).
absl::StatusOr<base::ScopedFsIdentity> ActAs(const std::optional<RunAs>& who);

}  // namespace amld::daemon::envs_internal

#endif  // AMLD_DAEMON_ENVS_ENV_BUILDER_INTERNAL_H_
