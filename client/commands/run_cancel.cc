// `aml run cancel`: ask the daemon to stop a run (SIGTERM to its process
// group, SIGKILL after the grace period). Returns at once; `aml run wait`
// follows it to CANCELED.
#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "amld/v1/runs.grpc.pb.h"
#include "client/commands/command.h"
#include "client/commands/output.h"
#include "client/grpc_status.h"

namespace amld::client::commands {
namespace {

struct CancelOptions {
  RunRef run;
  std::string reason;
};

int RunCancel(const GlobalOptions& global, const CancelOptions& o) {
  auto conn = ConnectFromOptions(global);
  if (!conn.ok()) return ReportError(global, conn.status());
  auto found = ResolveRun(*conn, o.run);
  if (!found.ok()) return ReportError(global, found.status());
  auto stub = amld::v1::Runs::NewStub(conn->channel);
  grpc::ClientContext ctx;
  amld::v1::CancelRunRequest req;
  req.set_run_id(found->id());
  req.set_reason(o.reason.empty() ? "canceled with aml run cancel" : o.reason);
  amld::v1::Run run;
  grpc::Status st = stub->CancelRun(&ctx, req, &run);
  if (!st.ok()) {
    return ReportError(global, FromGrpcStatus(st, "cancel run " + found->id(), conn->socket_path));
  }
  if (global.json()) {
    std::cout << ProtoToJson(run) << std::endl;
  } else {
    std::cout << "run " << run.id() << ": " << StatusWithError(run) << std::endl;
  }
  return kExitOk;
}

}  // namespace

void AddRunCancelCommand(CLI::App& run, CommandContext& ctx) {
  auto o = std::make_shared<CancelOptions>();
  auto* cmd = run.add_subcommand("cancel", "stop a run (it ends CANCELED)");
  AddRunArgument(*cmd, o->run);
  cmd->add_option("--reason", o->reason, "why, recorded with the run");
  cmd->callback([&ctx, o] { ctx.action = [&ctx, o] { return RunCancel(ctx.global, *o); }; });
}

}  // namespace amld::client::commands
