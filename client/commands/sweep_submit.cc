// `aml sweep submit -f sweep.yml`: read an Azure ML sweep job YAML
// (sweep_yaml.h), snapshot trial.code as `aml run submit` does, and submit
// the sweep; the daemon runs it (closing the terminal does not stop it).
#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "amld/v1/runs.grpc.pb.h"
#include "client/commands/command.h"
#include "client/commands/output.h"
#include "client/commands/job_submit.h"
#include "client/commands/source_snapshot.h"
#include "client/commands/sweep_yaml.h"
#include "client/grpc_status.h"

namespace amld::client::commands {
namespace {

struct SweepSubmitOptions {
  std::string file;
  bool wait = false;
  SnapshotLimits limits;
  SubmitterEnvOptions env;
};

int RunSweepSubmit(const GlobalOptions& global, const SweepSubmitOptions& o) {
  absl::StatusOr<std::string> text = ReadJobFile(o.file);
  if (!text.ok()) return ReportError(global, text.status());
  absl::StatusOr<JobFile> job = ParseSweepJob(*text, o.file);
  if (!job.ok()) return ReportError(global, job.status());
  ApplySubmitterEnv(o.env, &job->config);
  absl::StatusOr<amld::v1::Run> run = SubmitYamlJob(
      global, *std::move(job), o.limits,
      "the sweep");
  if (!run.ok()) return ReportError(global, run.status());
  if (!o.wait) {
    if (global.json()) {
      std::cout << ProtoToJson(*run) << std::endl;
    } else {
      std::cout << "submitted sweep " << run->id() << " (experiment "
                << run->config().experiment_name() << ")\n"
                << "see it with: aml sweep show " << run->id() << std::endl;
    }
    return kExitOk;
  }
  auto conn = ConnectFromOptions(global);
  if (!conn.ok()) return ReportError(global, conn.status());
  WaitOutcome outcome = FollowUntilDone(global, *conn, run->id(), /*show_output=*/false);
  if (!outcome.error.ok()) return ReportError(global, outcome.error);
  if (global.json() && outcome.run) std::cout << ProtoToJson(*outcome.run) << std::endl;
  if (!global.json()) std::cout << "sweep " << run->id() << " ended; see: aml sweep show "
                                << run->id() << std::endl;
  return outcome.exit_code;
}

}  // namespace

void AddSweepSubmitCommand(CLI::App& sweep, CommandContext& ctx) {
  auto o = std::make_shared<SweepSubmitOptions>();
  auto* cmd = sweep.add_subcommand(
      "submit", "submit a hyperparameter sweep from an Azure ML sweep job YAML; prints its id");
  cmd->add_option("-f,--file", o->file, "the sweep job YAML (type: sweep)")->required();
  cmd->add_flag("--wait", o->wait, "wait until the sweep has ended");
  AddSubmitterEnvOptions(*cmd, o->env);
  AddSnapshotLimitOptions(*cmd, o->limits);
  cmd->callback([&ctx, o] { ctx.action = [&ctx, o] { return RunSweepSubmit(ctx.global, *o); }; });
}

}  // namespace amld::client::commands
