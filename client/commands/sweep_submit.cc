// `aml sweep submit -f sweep.yml`: read an Azure ML sweep job YAML
// (sweep_yaml.h), snapshot trial.code as `aml run submit` does, and submit
// the sweep; the daemon runs it (closing the terminal does not stop it).
#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "amld/v1/runs.grpc.pb.h"
#include "base/status_macros.h"
#include "client/commands/command.h"
#include "client/commands/output.h"
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

absl::StatusOr<amld::v1::Run> SubmitSweep(const GlobalOptions& global, const SweepJob& job,
                                          const SweepSubmitOptions& o) {
  AMLD_ASSIGN_OR_RETURN(SourceSnapshot source, HashSourceFolder(global, job.code, o.limits));
  amld::v1::RunConfig config = job.config;
  ApplySubmitterEnv(o.env, &config);
  amld::storage::ToProto(source.snapshot.root, config.mutable_snapshot_root());
  if (source.git) *config.mutable_git() = *source.git;
  auto submit = [&]() -> absl::StatusOr<amld::v1::Run> {
    auto stub = amld::v1::Runs::NewStub(source.conn.channel);
    grpc::ClientContext ctx;
    amld::v1::SubmitRunRequest req;
    *req.mutable_config() = config;
    amld::v1::SubmitRunResponse resp;
    grpc::Status st = stub->SubmitRun(&ctx, req, &resp);
    if (!st.ok()) return FromGrpcStatus(st, "submit the sweep", source.conn.socket_path);
    return resp.run();
  };
  AMLD_RETURN_IF_ERROR(UploadSourceSnapshot(source, ::isatty(STDERR_FILENO)).status());
  absl::StatusOr<amld::v1::Run> run = submit();
  if (!run.ok() && absl::IsFailedPrecondition(run.status()) && source.trusted_earlier_upload) {
    // The daemon lost blobs it held at the last upload: ask about every one.
    AMLD_RETURN_IF_ERROR(UploadSourceSnapshot(source, ::isatty(STDERR_FILENO), false).status());
    run = submit();
  }
  KeepUntilExit(std::move(source));
  return run;
}

int RunSweepSubmit(const GlobalOptions& global, const SweepSubmitOptions& o) {
  std::ifstream in(o.file);
  if (!in) {
    return ReportError(global, absl::NotFoundError(absl::StrCat("cannot read ", o.file)));
  }
  std::stringstream text;
  text << in.rdbuf();
  absl::StatusOr<SweepJob> job = ParseSweepJob(text.str(), o.file);
  if (!job.ok()) return ReportError(global, job.status());
  absl::StatusOr<amld::v1::Run> run = SubmitSweep(global, *job, o);
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
