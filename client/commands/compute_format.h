// How `aml compute` commands print a compute target for people.
//
// Thread-safety: free functions, thread-safe.
#pragma once

#include <iosfwd>
#include <string>

#include "amld/v1/compute.pb.h"

namespace amld::client::commands {

// "local", "ssh" or "slurm".
std::string TargetKind(const amld::v1::ComputeTarget& target);
// One line of its settings: "amldtest@box:2222, workdir /srv/amld, key ~/.ssh/id";
// "partition gpu, account ml, workdir /shared/amld, sbatch --gres=gpu:1"; "this machine".
std::string TargetSummary(const amld::v1::ComputeTarget& target);
// Every setting, one "name: value" line each (`aml compute show`/`create`).
void PrintTarget(std::ostream& out, const amld::v1::ComputeTarget& target);

}  // namespace amld::client::commands
