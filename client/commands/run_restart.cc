// `aml run restart RUN`: submit a new run with the same config and the same
// snapshot as RUN (its script, arguments, environment — the submitter's
// environment it captured included —, target, tags and resources). Nothing
// is read from the source folder again, so what ran is what runs; to pick up
// edits, submit again. RUN itself is left as it is.
#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <nlohmann/json.hpp>

#include "amld/v1/runs.grpc.pb.h"
#include "client/commands/command.h"
#include "client/commands/output.h"
#include "client/grpc_status.h"

namespace amld::client::commands {
namespace {

struct RestartOptions {
  RunRef run;
  bool wait = false;
  bool quiet = false;
};

int RunRestart(const GlobalOptions& global, const RestartOptions& o) {
  auto conn = ConnectFromOptions(global);
  if (!conn.ok()) return ReportError(global, conn.status());
  auto old = ResolveRun(*conn, o.run);
  if (!old.ok()) return ReportError(global, old.status());
  auto stub = amld::v1::Runs::NewStub(conn->channel);
  grpc::ClientContext ctx;
  amld::v1::SubmitRunRequest req;
  *req.mutable_config() = old->config();
  amld::v1::SubmitRunResponse resp;
  grpc::Status st = stub->SubmitRun(&ctx, req, &resp);
  if (!st.ok()) {
    return ReportError(global,
                       FromGrpcStatus(st, "restart run " + old->id(), conn->socket_path));
  }
  const amld::v1::Run& run = resp.run();
  if (global.json() && !o.wait) {
    std::cout << nlohmann::json{{"run_id", run.id()}, {"restart_of", old->id()}}.dump(2)
              << std::endl;
    return kExitOk;
  }
  if (o.quiet) {
    std::cout << run.id() << std::endl;
  } else if (!global.json()) {
    std::cout << "restarted run " << old->id() << " as " << run.id() << " (same config and "
              << "snapshot)\n";
    if (!o.wait) std::cout << "follow it with: aml run wait " << run.id() << " --show-output\n";
  }
  if (!o.wait) return kExitOk;
  WaitOutcome outcome = FollowUntilDone(global, *conn, run.id(), !o.quiet && !global.json());
  if (!outcome.error.ok()) return ReportError(global, outcome.error);
  if (global.json() && outcome.run) std::cout << ProtoToJson(*outcome.run) << std::endl;
  return outcome.exit_code;
}

}  // namespace

void AddRunRestartCommand(CLI::App& run, CommandContext& ctx) {
  auto o = std::make_shared<RestartOptions>();
  auto* cmd = run.add_subcommand(
      "restart",
      "submit a new run with the same config and snapshot as RUN (to pick up edits of the "
      "source folder, submit again); prints the new id");
  AddRunArgument(*cmd, o->run);
  cmd->add_flag("--wait", o->wait, "stream the output and wait; exit 0 only if it COMPLETED");
  cmd->add_flag("-q,--quiet", o->quiet, "print only the new run's id");
  cmd->callback([&ctx, o] { ctx.action = [&ctx, o] { return RunRestart(ctx.global, *o); }; });
}

}  // namespace amld::client::commands
