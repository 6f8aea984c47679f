// `aml compute delete NAME`: remove a compute target. Refused while a run
// that has not ended uses it; finished runs keep its name.
#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <nlohmann/json.hpp>

#include "amld/v1/compute.grpc.pb.h"
#include "client/commands/command.h"
#include "client/grpc_status.h"

namespace amld::client::commands {
namespace {

int RunComputeDelete(const GlobalOptions& global, const std::string& name) {
  auto conn = ConnectFromOptions(global);
  if (!conn.ok()) return ReportError(global, conn.status());
  auto stub = amld::v1::ComputeTargets::NewStub(conn->channel);
  grpc::ClientContext ctx;
  amld::v1::DeleteComputeTargetRequest req;
  req.set_name(name);
  amld::v1::DeleteComputeTargetResponse resp;
  grpc::Status st = stub->DeleteComputeTarget(&ctx, req, &resp);
  if (!st.ok()) {
    return ReportError(global,
                       FromGrpcStatus(st, "delete compute target " + name, conn->socket_path));
  }
  if (global.json()) {
    std::cout << nlohmann::json{{"deleted", name}}.dump(2) << std::endl;
  } else {
    std::cout << "compute target " << name << " deleted" << std::endl;
  }
  return kExitOk;
}

}  // namespace

void AddComputeDeleteCommand(CLI::App& compute, CommandContext& ctx) {
  auto name = std::make_shared<std::string>();
  auto* cmd = compute.add_subcommand("delete", "remove a compute target (not while a run uses it)");
  cmd->add_option("name", *name, "the target's name")->required();
  cmd->callback(
      [&ctx, name] { ctx.action = [&ctx, name] { return RunComputeDelete(ctx.global, *name); }; });
}

}  // namespace amld::client::commands
