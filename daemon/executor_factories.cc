#include "daemon/executor_factories.h"

#include <string>

#include "daemon/executors/slurm/slurm_executor.h"
#include "daemon/executors/slurm/slurm_target.h"
#include "daemon/executors/ssh/ssh_executor.h"
#include "daemon/executors/ssh/ssh_target.h"

namespace amld::daemon {
namespace {

SshExecutorOptions SshOptions(const ExecutorFactoryOptions& options,
                              const amld::v1::ComputeTarget& target) {
  const amld::v1::SshTarget& ssh = target.ssh();
  SshExecutorOptions o;
  o.endpoint = SshEndpoint{ssh.host(), ssh.port(), ssh.user(), ssh.identity_file()};
  o.workdir = ssh.workdir();
  o.shim_path = options.shim_path;
  o.run_python = options.run_python;
  o.state_dir = options.data_dir / "ssh";
  return o;
}

ExecutorFactory SshFactory(const ExecutorFactoryOptions& options) {
  return [options](
             const amld::v1::ComputeTarget& target) -> absl::StatusOr<std::unique_ptr<Executor>> {
    return NewSshExecutor(SshOptions(options, target));
  };
}

AccountExecutorFactory SshAsFactory(const ExecutorFactoryOptions& options) {
  return [options](const amld::v1::ComputeTarget& target,
                   const RunAs& account) -> absl::StatusOr<std::unique_ptr<Executor>> {
    SshExecutorOptions o = SshOptions(options, target);
    o.state_dir = options.data_dir / "ssh-users" / std::to_string(account.uid);
    o.run_as = account;
    return NewSshExecutor(o);
  };
}

ExecutorFactory SlurmFactory(const ExecutorFactoryOptions& options) {
  return [options](
             const amld::v1::ComputeTarget& target) -> absl::StatusOr<std::unique_ptr<Executor>> {
    const amld::v1::SlurmTarget& slurm = target.slurm();
    SlurmExecutorOptions o;
    o.workdir = slurm.workdir();
    o.partition = slurm.partition();
    o.account = slurm.account();
    o.sbatch_args.assign(slurm.sbatch_args().begin(), slurm.sbatch_args().end());
    o.shim_path = options.shim_path;
    o.run_python = options.run_python;
    return NewSlurmExecutor(o);
  };
}

}  // namespace

ExecutorFactories MakeExecutorFactories(const ExecutorFactoryOptions& options) {
  ExecutorFactories factories;
  factories.ssh = SshFactory(options);
  if (options.system_mode) factories.ssh_as = SshAsFactory(options);
  factories.slurm = SlurmFactory(options);
  factories.validate_ssh = ValidateSshTarget;
  factories.validate_slurm = ValidateSlurmTarget;
  return factories;
}

}  // namespace amld::daemon
