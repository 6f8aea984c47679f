// `aml compute create NAME --type ssh|slurm ...`: define a compute target.
// Nothing is contacted; a target that cannot be reached fails the runs sent
// to it, with ssh's or Slurm's own message.
#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <iostream>

#include "amld/v1/compute.grpc.pb.h"
#include "client/commands/command.h"
#include "client/commands/compute_format.h"
#include "client/commands/output.h"
#include "client/grpc_status.h"

namespace amld::client::commands {
namespace {

struct CreateOptions {
  std::string name;
  std::string type;
  // ssh
  std::string host;
  int port = 0;
  std::string user;
  std::string identity_file;
  // ssh and slurm
  std::string workdir;
  // slurm
  std::string partition;
  std::string account;
  std::vector<std::string> sbatch_args;
};

constexpr char kCommandPath[] = "aml compute create";

// The target the options describe, or a usage error naming what does not
// belong to the type.
absl::StatusOr<amld::v1::ComputeTarget> BuildTarget(const CreateOptions& o) {
  amld::v1::ComputeTarget target;
  target.set_name(o.name);
  std::error_code ec;
  if (o.type == "ssh") {
    if (!o.partition.empty() || !o.account.empty() || !o.sbatch_args.empty()) {
      return absl::InvalidArgumentError(
          "--partition, --account and --sbatch-arg are for --type slurm");
    }
    if (o.host.empty()) return absl::InvalidArgumentError("--type ssh needs --host");
    auto* ssh = target.mutable_ssh();
    ssh->set_host(o.host);
    ssh->set_port(o.port);
    ssh->set_user(o.user);
    // The daemon reads the key on this machine, from its own folder.
    if (!o.identity_file.empty()) {
      ssh->set_identity_file(std::filesystem::absolute(o.identity_file, ec).string());
    }
    ssh->set_workdir(o.workdir);  // a path on the host: kept as given
    return target;
  }
  if (!o.host.empty() || o.port != 0 || !o.user.empty() || !o.identity_file.empty()) {
    return absl::InvalidArgumentError(
        "--host, --port, --user and --identity-file are for --type ssh");
  }
  if (o.workdir.empty()) {
    return absl::InvalidArgumentError(
        "--type slurm needs --workdir: a folder shared by this machine and every node");
  }
  auto* slurm = target.mutable_slurm();
  slurm->set_partition(o.partition);
  slurm->set_account(o.account);
  slurm->set_workdir(std::filesystem::absolute(o.workdir, ec).lexically_normal().string());
  for (const std::string& arg : o.sbatch_args) slurm->add_sbatch_args(arg);
  return target;
}

int RunComputeCreate(const GlobalOptions& global, const CreateOptions& o) {
  absl::StatusOr<amld::v1::ComputeTarget> target = BuildTarget(o);
  if (!target.ok())
    return ReportUsageError(global, std::string(target.status().message()), kCommandPath);
  auto conn = ConnectFromOptions(global);
  if (!conn.ok()) return ReportError(global, conn.status());
  auto stub = amld::v1::ComputeTargets::NewStub(conn->channel);
  grpc::ClientContext ctx;
  amld::v1::CreateComputeTargetRequest req;
  *req.mutable_target() = *target;
  amld::v1::ComputeTarget created;
  grpc::Status st = stub->CreateComputeTarget(&ctx, req, &created);
  if (!st.ok()) {
    return ReportError(global,
                       FromGrpcStatus(st, "create compute target " + o.name, conn->socket_path));
  }
  if (global.json()) {
    std::cout << ProtoToJson(created) << std::endl;
  } else {
    PrintTarget(std::cout, created);
  }
  return kExitOk;
}

}  // namespace

void AddComputeCreateCommand(CLI::App& compute, CommandContext& ctx) {
  auto o = std::make_shared<CreateOptions>();
  auto* cmd = compute.add_subcommand(
      "create",
      "define a compute target: an SSH host or a Slurm cluster (runs use it with -c NAME)");
  cmd->add_option("name", o->name, "the target's name (letters, digits, '-', '_', '.')")
      ->required();
  cmd->add_option("--type", o->type, "ssh or slurm")
      ->required()
      ->check(CLI::IsMember({"ssh", "slurm"}));
  cmd->add_option("--host", o->host, "ssh: host name, address or ~/.ssh/config alias");
  cmd->add_option("--port", o->port, "ssh: port (default: 22)")->check(CLI::Range(1, 65535));
  cmd->add_option("--user", o->user, "ssh: login name (default: ssh's)");
  cmd->add_option("--identity-file", o->identity_file,
                  "ssh: private key on this machine (default: ssh's keys and agent)");
  cmd->add_option("--workdir", o->workdir,
                  "ssh: folder on the host for runs (default: ~/amld); slurm: folder shared by "
                  "this machine and every node (required)");
  cmd->add_option("--partition", o->partition, "slurm: partition (default: the cluster's)");
  cmd->add_option("--account", o->account, "slurm: account to charge (default: the user's)");
  cmd->add_option("--sbatch-arg", o->sbatch_args,
                  "slurm: extra sbatch argument, e.g. --sbatch-arg=--gres=gpu:1 (repeatable)")
      ->allow_extra_args(false);
  cmd->callback([&ctx, o] { ctx.action = [&ctx, o] { return RunComputeCreate(ctx.global, *o); }; });
}

}  // namespace amld::client::commands
