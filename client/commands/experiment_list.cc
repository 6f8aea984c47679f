// `aml experiment list`: every experiment with its run count.
#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "amld/v1/experiments.grpc.pb.h"
#include "client/commands/command.h"
#include "client/commands/output.h"
#include "client/grpc_status.h"

namespace amld::client::commands {
namespace {

int RunExperimentList(const GlobalOptions& global) {
  auto conn = ConnectFromOptions(global);
  if (!conn.ok()) return ReportError(global, conn.status());
  auto stub = amld::v1::Experiments::NewStub(conn->channel);
  grpc::ClientContext ctx;
  amld::v1::ListExperimentsResponse resp;
  grpc::Status st = stub->ListExperiments(&ctx, amld::v1::ListExperimentsRequest(), &resp);
  if (!st.ok()) {
    return ReportError(global, FromGrpcStatus(st, "list experiments", conn->socket_path));
  }
  if (global.json()) {
    std::cout << ProtoToJson(resp) << std::endl;
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& e : resp.experiments()) {
    rows.push_back({e.name(), std::to_string(e.run_count()), FormatTimestamp(e.last_run_time()),
                    FormatTimestamp(e.created_time())});
  }
  PrintTable(std::cout, {"EXPERIMENT", "RUNS", "LAST RUN", "CREATED"}, rows);
  return kExitOk;
}

}  // namespace

void AddExperimentListCommand(CLI::App& experiment, CommandContext& ctx) {
  auto* cmd = experiment.add_subcommand("list", "list experiments by name");
  cmd->callback([&ctx] { ctx.action = [&ctx] { return RunExperimentList(ctx.global); }; });
}

}  // namespace amld::client::commands
