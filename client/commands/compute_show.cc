// `aml compute show NAME`: every setting of one compute target.
#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "amld/v1/compute.grpc.pb.h"
#include "client/commands/command.h"
#include "client/commands/compute_format.h"
#include "client/commands/output.h"
#include "client/grpc_status.h"

namespace amld::client::commands {
namespace {

int RunComputeShow(const GlobalOptions& global, const std::string& name) {
  auto conn = ConnectFromOptions(global);
  if (!conn.ok()) return ReportError(global, conn.status());
  auto stub = amld::v1::ComputeTargets::NewStub(conn->channel);
  grpc::ClientContext ctx;
  amld::v1::GetComputeTargetRequest req;
  req.set_name(name);
  amld::v1::ComputeTarget target;
  grpc::Status st = stub->GetComputeTarget(&ctx, req, &target);
  if (!st.ok()) {
    return ReportError(global,
                       FromGrpcStatus(st, "show compute target " + name, conn->socket_path));
  }
  if (global.json()) {
    std::cout << ProtoToJson(target) << std::endl;
  } else {
    PrintTarget(std::cout, target);
  }
  return kExitOk;
}

}  // namespace

void AddComputeShowCommand(CLI::App& compute, CommandContext& ctx) {
  auto name = std::make_shared<std::string>();
  auto* cmd = compute.add_subcommand("show", "show a compute target's settings");
  cmd->add_option("name", *name, "the target's name")->required();
  cmd->callback(
      [&ctx, name] { ctx.action = [&ctx, name] { return RunComputeShow(ctx.global, *name); }; });
}

}  // namespace amld::client::commands
