// What the settings of a slurm compute target (amld.v1.SlurmTarget) must
// look like before the target is stored: the workdir is where job scripts
// and run folders go on the shared filesystem, and partition, account and
// sbatch arguments become sbatch's arguments (slurm_job.h), so each is
// refused here when sbatch would misread it, saying which `aml compute
// create` flag to change. Nothing is checked against the cluster.
//
// Thread-safety: a pure function.
#pragma once

#include "absl/status/status.h"
#include "amld/v1/compute.pb.h"

namespace amld::daemon {

// OK when `target.slurm()` is well-formed: an absolute workdir without line
// breaks, a partition and an account without spaces or a leading '-', and
// sbatch arguments that are non-empty and free of line breaks.
// INVALID_ARGUMENT "compute target "NAME": ..." otherwise.
absl::Status ValidateSlurmTarget(const amld::v1::ComputeTarget& target);

}  // namespace amld::daemon
