#include "client/commands/compute_format.h"

#include <ostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/commands/output.h"

namespace amld::client::commands {
namespace {

void Field(std::ostream& out, const std::string& name, const std::string& value) {
  if (value.empty()) return;
  out << name << ':' << std::string(name.size() < 14 ? 14 - name.size() : 1, ' ') << value << '\n';
}

std::string SshAddress(const amld::v1::SshTarget& ssh) {
  std::string out = ssh.user().empty() ? ssh.host() : absl::StrCat(ssh.user(), "@", ssh.host());
  if (ssh.port() != 0) absl::StrAppend(&out, ":", ssh.port());
  return out;
}

}  // namespace

std::string TargetKind(const amld::v1::ComputeTarget& target) {
  if (target.has_ssh()) return "ssh";
  if (target.has_slurm()) return "slurm";
  if (target.has_local()) return "local";
  return "?";
}

std::string TargetSummary(const amld::v1::ComputeTarget& target) {
  std::vector<std::string> parts;
  if (target.has_ssh()) {
    const auto& ssh = target.ssh();
    parts.push_back(SshAddress(ssh));
    parts.push_back(absl::StrCat("workdir ", ssh.workdir().empty() ? "~/amld" : ssh.workdir()));
    if (!ssh.identity_file().empty()) parts.push_back(absl::StrCat("key ", ssh.identity_file()));
  } else if (target.has_slurm()) {
    const auto& slurm = target.slurm();
    if (!slurm.partition().empty()) parts.push_back(absl::StrCat("partition ", slurm.partition()));
    if (!slurm.account().empty()) parts.push_back(absl::StrCat("account ", slurm.account()));
    parts.push_back(absl::StrCat("workdir ", slurm.workdir()));
    if (slurm.sbatch_args_size() > 0) {
      parts.push_back(absl::StrCat("sbatch ", absl::StrJoin(slurm.sbatch_args(), " ")));
    }
  } else {
    parts.push_back("this machine");
  }
  return absl::StrJoin(parts, ", ");
}

void PrintTarget(std::ostream& out, const amld::v1::ComputeTarget& target) {
  Field(out, "name", target.name());
  Field(out, "type", TargetKind(target));
  if (target.has_ssh()) {
    const auto& ssh = target.ssh();
    Field(out, "host", ssh.host());
    Field(out, "port", ssh.port() == 0 ? "22 (ssh's default)" : std::to_string(ssh.port()));
    Field(out, "user", ssh.user().empty() ? "(ssh's default)" : ssh.user());
    Field(out, "identity file",
          ssh.identity_file().empty() ? "(ssh's default)" : ssh.identity_file());
    Field(out, "workdir", ssh.workdir().empty() ? "amld (in the login's home)" : ssh.workdir());
  } else if (target.has_slurm()) {
    const auto& slurm = target.slurm();
    Field(out, "partition",
          slurm.partition().empty() ? "(the cluster's default)" : slurm.partition());
    Field(out, "account", slurm.account().empty() ? "(the user's default)" : slurm.account());
    Field(out, "workdir", slurm.workdir());
    Field(out, "sbatch args", absl::StrJoin(slurm.sbatch_args(), " "));
  } else {
    Field(out, "runs on", "this machine (built in)");
  }
  if (target.has_created_time()) Field(out, "created", FormatTimestamp(target.created_time()));
}

}  // namespace amld::client::commands
