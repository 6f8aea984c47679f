// The run a command names (RunRef): registered once, resolved by the daemon.
#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <CLI/CLI.hpp>

#include "amld/v1/runs.grpc.pb.h"
#include "client/commands/command.h"
#include "client/grpc_status.h"

namespace amld::client::commands {

void AddRunArgument(CLI::App& cmd, RunRef& ref) {
  cmd.add_option("run", ref.typed,
                 "the run: its id, a unique prefix or suffix of it (3+ characters), or `last` "
                 "(your newest run)")
      ->required();
  cmd.add_option("-e,--experiment", ref.experiment, "with `last`: your newest run of EXP");
}

absl::StatusOr<amld::v1::Run> ResolveRun(const Connection& conn, const RunRef& ref) {
  auto stub = amld::v1::Runs::NewStub(conn.channel);
  grpc::ClientContext ctx;
  amld::v1::GetRunRequest req;
  req.set_run_id(ref.typed);
  req.set_experiment_name(ref.experiment);
  amld::v1::Run run;
  grpc::Status st = stub->GetRun(&ctx, req, &run);
  if (!st.ok()) return FromGrpcStatus(st, "find run " + ref.typed, conn.socket_path);
  return run;
}

void AddRunsArgument(CLI::App& cmd, RunRefs& refs) {
  cmd.add_option("runs", refs.typed,
                 "runs: ids, unique prefixes or suffixes (3+ characters), or `last`")
      ->required();
  cmd.add_option("-e,--experiment", refs.experiment, "with `last`: your newest run of EXP");
}

absl::StatusOr<std::vector<amld::v1::Run>> ResolveRuns(const Connection& conn,
                                                       const RunRefs& refs) {
  std::vector<amld::v1::Run> runs;
  for (const std::string& typed : refs.typed) {
    absl::StatusOr<amld::v1::Run> run = ResolveRun(conn, {typed, refs.experiment});
    if (!run.ok()) return run.status();
    runs.push_back(*std::move(run));
  }
  return runs;
}

}  // namespace amld::client::commands
