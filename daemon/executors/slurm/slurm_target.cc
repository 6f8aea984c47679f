#include "daemon/executors/slurm/slurm_target.h"

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "daemon/executors/executor_registry.h"

namespace amld::daemon {

absl::Status ValidateSlurmTarget(const amld::v1::ComputeTarget& target) {
  const std::string& name = target.name();
  const amld::v1::SlurmTarget& slurm = target.slurm();
  if (slurm.workdir().empty() || slurm.workdir().front() != '/' ||
      HasLineBreakOrNul(slurm.workdir())) {
    return InvalidComputeTarget(
        name,
        "a slurm target needs --workdir: the absolute path of a folder that is the "
        "same on this machine and on every node (a shared filesystem)");
  }
  for (const std::string* field : {&slurm.partition(), &slurm.account()}) {
    if (HasSpaceOrControl(*field) || absl::StartsWith(*field, "-")) {
      return InvalidComputeTarget(name,
                                  absl::StrCat("partition or account \"", absl::CHexEscape(*field),
                                               "\" is not a Slurm name"));
    }
  }
  for (const std::string& arg : slurm.sbatch_args()) {
    if (arg.empty() || HasLineBreakOrNul(arg)) {
      return InvalidComputeTarget(name,
                                  "sbatch arguments must be non-empty and free of line breaks");
    }
  }
  return absl::OkStatus();
}

}  // namespace amld::daemon
