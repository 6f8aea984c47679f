// `aml run submit`: hash the source folder (or take the daemon's tree of a
// watched one), upload what the daemon lacks, submit the run (ScriptRunConfig +
// Experiment.submit), optionally wait.
#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <nlohmann/json.hpp>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "amld/v1/runs.grpc.pb.h"
#include "client/commands/command.h"
#include "client/commands/job_submit.h"
#include "client/commands/job_yaml.h"
#include "client/commands/options.h"
#include "client/commands/output.h"
#include "client/commands/source_snapshot.h"
#include "client/grpc_status.h"
#include "client/run_config_builder.h"
#include "base/status_macros.h"

namespace amld::client::commands {
namespace {

struct SubmitOptions {
  SubmitSpec spec;
  std::vector<std::string> script_and_args;
  bool wait = false;
  bool quiet = false;
  SnapshotLimits limits;
  std::string job_file;  // -f: an Azure ML command job YAML instead of the flags
  SubmitterEnvOptions env;
};

absl::Status CheckScriptIncluded(const amld::storage::Snapshot& snapshot,
                                 const std::filesystem::path& source_dir,
                                 const std::string& script) {
  for (const auto& f : snapshot.files) {
    if (f.rel_path == script) return absl::OkStatus();
  }
  std::error_code ec;
  if (std::filesystem::exists(source_dir / script, ec)) {
    return absl::FailedPreconditionError(
        absl::StrCat("the script ", script, " is left out of the snapshot of ", source_dir.string(),
                     " (an ignore rule, or not a regular file): change .amlignore/.gitignore"));
  }
  return absl::NotFoundError(absl::StrCat("the script ", script, " does not exist in ",
                                          source_dir.string(),
                                          ": give its path relative to the source folder (-s)"));
}

absl::StatusOr<amld::v1::Run> Submit(const Connection& conn, const amld::v1::RunConfig& config) {
  auto stub = amld::v1::Runs::NewStub(conn.channel);
  grpc::ClientContext ctx;
  amld::v1::SubmitRunRequest req;
  *req.mutable_config() = config;
  amld::v1::SubmitRunResponse resp;
  grpc::Status st = stub->SubmitRun(&ctx, req, &resp);
  if (!st.ok()) return FromGrpcStatus(st, "submit the run", conn.socket_path);
  return resp.run();
}

// Moves SCRIPT [ARGS...] (or, with --command, ARGS...) into the spec.
void TakePositionals(SubmitOptions& o) {
  if (!o.spec.command.empty()) {
    o.spec.arguments = o.script_and_args;
  } else if (!o.script_and_args.empty()) {
    o.spec.script = o.script_and_args.front();
    o.spec.arguments.assign(o.script_and_args.begin() + 1, o.script_and_args.end());
  }
}

// The connected daemon, the hashed source folder and the finished config.
struct PreparedRun {
  SourceSnapshot source;
  amld::v1::RunConfig config;
};

absl::StatusOr<PreparedRun> Prepare(const GlobalOptions& global, const SubmitSpec& spec,
                                    const SnapshotLimits& limits, amld::v1::RunConfig config) {
  AMLD_ASSIGN_OR_RETURN(SourceSnapshot source, HashSourceFolder(global, spec.source_dir, limits));
  // A watched folder's file list stays in the daemon, which checks the
  // script itself at submit.
  if (!config.script().empty() && !source.taken_by_daemon()) {
    AMLD_RETURN_IF_ERROR(CheckScriptIncluded(source.snapshot, spec.source_dir, config.script()));
  }
  amld::storage::ToProto(source.snapshot.root, config.mutable_snapshot_root());
  if (source.git) *config.mutable_git() = *source.git;
  return PreparedRun{std::move(source), std::move(config)};
}

// --output json: one object with the id, the upload stats and the run (its
// final state with --wait).
int PrintJson(const GlobalOptions& global, const PreparedRun& p, const UploadStats& stats,
              const amld::v1::Run& run, bool wait) {
  WaitOutcome outcome;
  outcome.exit_code = kExitOk;
  outcome.run = run;
  if (wait) outcome = FollowUntilDone(global, p.source.conn, run.id(), /*show_output=*/true);
  nlohmann::json j = {{"run_id", run.id()},
                      {"experiment", run.config().experiment_name()},
                      {"snapshot_root", p.source.snapshot.root.ToString()},
                      {"upload", UploadStatsJson(stats)},
                      {"snapshot_source", SnapshotSourceJson(p.source)}};
  if (outcome.run) j["run"] = nlohmann::json::parse(ProtoToJson(*outcome.run));
  if (!outcome.error.ok()) {
    std::cerr << "aml: " << outcome.error.message() << std::endl;
    j["error"] = {{"code", std::string(StatusCodeName(outcome.error.code()))},
                  {"message", std::string(outcome.error.message())}};
  }
  std::cout << j.dump(2) << std::endl;
  return outcome.exit_code;
}

void PrintText(const SourceSnapshot& source, const UploadStats& stats, const amld::v1::Run& run,
               bool quiet, bool wait) {
  if (quiet) {
    std::cout << run.id() << std::endl;
    return;
  }
  std::cout << "submitted run " << run.id() << " (experiment " << run.config().experiment_name()
            << ")\n";
  if (source.watched) {
    std::cout << "snapshot from amld's watch of the folder: " << stats.files_total << " files ("
              << HumanBytes(stats.bytes_total) << "), nothing uploaded" << std::endl;
  } else if (source.ingested) {
    std::cout << "snapshot read by amld from the folder: " << stats.files_total << " files ("
              << HumanBytes(stats.bytes_total) << "), " << source.ingested->files_read()
              << " read, nothing uploaded" << std::endl;
  } else {
    std::cout << "uploaded " << stats.files_uploaded << " of " << stats.files_total << " files and "
              << stats.directories_uploaded << " of " << stats.directories_total << " directories ("
              << HumanBytes(stats.bytes_uploaded) << ")" << std::endl;
  }
  if (!wait) std::cout << "follow it with: aml run wait " << run.id() << " --show-output\n";
}

// `aml run submit -f job.yml`: the run is the YAML's; the flags that would
// say the same thing again are refused rather than silently ignored.
int RunSubmitJobFile(const GlobalOptions& global, const SubmitOptions& o) {
  if (!o.script_and_args.empty()) {
    return ReportUsageError(global, "-f takes the script and arguments from the job's command; "
                            "give no SCRIPT or ARGS", "aml run submit");
  }
  absl::StatusOr<std::string> text = ReadJobFile(o.job_file);
  if (!text.ok()) return ReportError(global, text.status());
  absl::StatusOr<JobFile> job = ParseCommandJob(*text, o.job_file);
  if (!job.ok()) return ReportError(global, job.status());
  ApplySubmitterEnv(o.env, &job->config);
  absl::StatusOr<amld::v1::Run> run = SubmitYamlJob(
      global, *std::move(job), o.limits,
      "the run");
  if (!run.ok()) return ReportError(global, run.status());
  if (global.json() && !o.wait) {
    std::cout << ProtoToJson(*run) << std::endl;
    return kExitOk;
  }
  if (o.quiet) {
    std::cout << run->id() << std::endl;
  } else if (!global.json()) {
    std::cout << "submitted run " << run->id() << " (experiment "
              << run->config().experiment_name() << ")\n";
    if (!o.wait) std::cout << "follow it with: aml run wait " << run->id() << " --show-output\n";
  }
  if (!o.wait) return kExitOk;
  auto conn = ConnectFromOptions(global);
  if (!conn.ok()) return ReportError(global, conn.status());
  WaitOutcome outcome = FollowUntilDone(global, *conn, run->id(), !o.quiet && !global.json());
  if (!outcome.error.ok()) return ReportError(global, outcome.error);
  if (global.json() && outcome.run) std::cout << ProtoToJson(*outcome.run) << std::endl;
  return outcome.exit_code;
}

int RunSubmit(const GlobalOptions& global, SubmitOptions& o) {
  if (!o.job_file.empty()) return RunSubmitJobFile(global, o);
  TakePositionals(o);
  auto config = BuildRunConfig(o.spec);
  if (!config.ok()) {
    return ReportUsageError(global, std::string(config.status().message()), "aml run submit");
  }
  ApplySubmitterEnv(o.env, &*config);
  auto prepared = Prepare(global, o.spec, o.limits, *std::move(config));
  if (!prepared.ok()) return ReportError(global, prepared.status());
  auto stats = UploadSourceSnapshot(prepared->source, ::isatty(STDERR_FILENO) && !o.quiet);
  if (!stats.ok()) return ReportError(global, stats.status());
  const absl::Time submit_started = absl::Now();
  auto run = Submit(prepared->source.conn, prepared->config);
  prepared->source.submit_time = absl::Now() - submit_started;
  if (!run.ok() && absl::IsFailedPrecondition(run.status()) &&
      prepared->source.trusted_earlier_upload) {
    // The daemon lost blobs it held at the last upload (a reset store, a
    // garbage collection): upload again, asking about every blob.
    stats = UploadSourceSnapshot(prepared->source, ::isatty(STDERR_FILENO) && !o.quiet,
                                 /*trust_earlier_upload=*/false);
    if (!stats.ok()) return ReportError(global, stats.status());
    run = Submit(prepared->source.conn, prepared->config);
  }
  if (!run.ok()) return ReportError(global, run.status());

  // The snapshot (10,000 files, their stat cache entries) is not freed: the
  // process ends right after, and freeing it took 3-13 ms of a 60 ms resubmit.
  const PreparedRun& p = KeepUntilExit(*std::move(prepared));
  if (global.json()) return PrintJson(global, p, *stats, *run, o.wait);
  PrintText(p.source, *stats, *run, o.quiet, o.wait);
  if (!o.wait) return kExitOk;
  WaitOutcome outcome = FollowUntilDone(global, p.source.conn, run->id(), !o.quiet);
  if (!outcome.error.ok()) return ReportError(global, outcome.error);
  return outcome.exit_code;
}

}  // namespace

void AddRunSubmitCommand(CLI::App& run, CommandContext& ctx) {
  auto o = std::make_shared<SubmitOptions>();
  auto* cmd =
      run.add_subcommand("submit",
                         "submit a script (or --command) from a source folder; prints the run id.\n"
                         "  aml run submit [options] SCRIPT [-- ARGS...]\n"
                         "  aml run submit [options] --command \"CMD\" [-- ARGS...]");
  cmd->add_option("-e,--experiment", o->spec.experiment,
                  "experiment name (default: the source folder's name)");
  cmd->add_option("-s,--source-dir", o->spec.source_dir, "folder to snapshot (default: .)");
  cmd->add_option("-c,--compute", o->spec.compute_target, "compute target (default: local)");
  cmd->add_option("--interpreter", o->spec.interpreter,
                  "Python interpreter for the script (default: the python3 on your PATH; with "
                  "--daemon-env or on a remote target, python3 on the target's PATH)");
  cmd->add_option("--max-duration", o->spec.max_duration_seconds,
                  "stop the run as CANCELED after this long: 90, 90s, 15m, 1h30m or 1:30:00 (0: "
                  "no limit)")
      ->transform(Duration());
  cmd->add_option("--priority", o->spec.priority,
                  "-100..100: among queued runs the highest starts first (default 0)");
  cmd->add_option("--cpus", o->spec.cpus, "CPU slots the run holds (default 1)")
      ->check(AtLeast(0));
  cmd->add_option("--gpus", o->spec.gpus,
                  "GPUs the run gets to itself, through CUDA_VISIBLE_DEVICES (default: amld.yaml's "
                  "default_gpus, else 0)")
      ->check(AtLeast(0));
  cmd->add_option("--tag", o->spec.tags, "a tag KEY=VALUE (repeatable)")->allow_extra_args(false);
  cmd->add_option("--env", o->spec.env, "an environment variable NAME=VALUE (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--command", o->spec.command, "a shell command line to run instead of SCRIPT");
  cmd->add_flag("--wait", o->wait, "stream the output and wait; exit 0 only if it COMPLETED");
  auto* file = cmd->add_option("-f,--file", o->job_file,
                               "an Azure ML command job YAML (code, command, environment, "
                               "distribution, resources, limits) instead of SCRIPT and flags");
  cmd->add_flag("-q,--quiet", o->quiet, "print only the run id");
  AddSubmitterEnvOptions(*cmd, o->env);
  AddSnapshotLimitOptions(*cmd, o->limits);
  // The job file says all of these itself.
  for (const char* flag : {"-e", "-s", "-c", "--interpreter", "--max-duration", "--priority",
                           "--cpus", "--gpus", "--tag", "--env", "--command"}) {
    file->excludes(cmd->get_option(flag));
  }
  cmd->add_option("script", o->script_and_args, "SCRIPT [-- ARGS...]");
  cmd->callback([&ctx, o] {
    ctx.action = [&ctx, o] {
      o->script_and_args.insert(o->script_and_args.end(), ctx.passthrough_args.begin(),
                                ctx.passthrough_args.end());
      return RunSubmit(ctx.global, *o);
    };
  });
}

}  // namespace amld::client::commands
