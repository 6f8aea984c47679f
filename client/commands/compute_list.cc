// `aml compute list`: every compute target, "local" included.
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

int RunComputeList(const GlobalOptions& global) {
  auto conn = ConnectFromOptions(global);
  if (!conn.ok()) return ReportError(global, conn.status());
  auto stub = amld::v1::ComputeTargets::NewStub(conn->channel);
  grpc::ClientContext ctx;
  amld::v1::ListComputeTargetsResponse resp;
  grpc::Status st = stub->ListComputeTargets(&ctx, amld::v1::ListComputeTargetsRequest(), &resp);
  if (!st.ok()) {
    return ReportError(global, FromGrpcStatus(st, "list compute targets", conn->socket_path));
  }
  if (global.json()) {
    std::cout << ProtoToJson(resp) << std::endl;
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& t : resp.targets()) {
    rows.push_back({t.name(), TargetKind(t), TargetSummary(t)});
  }
  PrintTable(std::cout, {"NAME", "TYPE", "WHERE"}, rows);
  return kExitOk;
}

}  // namespace

void AddComputeListCommand(CLI::App& compute, CommandContext& ctx) {
  auto* cmd = compute.add_subcommand("list", "list compute targets by name");
  cmd->callback([&ctx] { ctx.action = [&ctx] { return RunComputeList(ctx.global); }; });
}

}  // namespace amld::client::commands
