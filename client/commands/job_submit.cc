#include "client/commands/job_submit.h"

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "amld/v1/environments.grpc.pb.h"
#include "amld/v1/runs.grpc.pb.h"
#include "base/status_macros.h"
#include "client/commands/source_snapshot.h"
#include "client/grpc_status.h"

namespace amld::client::commands {
namespace {

// The registered environment `ref` names, with the job's own variables
// (environment_variables of the YAML) on top of its own.
absl::Status ResolveEnvironment(const Connection& conn, const EnvironmentRef& ref,
                                amld::v1::RunConfig& config) {
  auto stub = amld::v1::Environments::NewStub(conn.channel);
  grpc::ClientContext ctx;
  amld::v1::GetEnvironmentRequest req;
  req.set_name(ref.name);
  req.set_version(ref.version);
  amld::v1::RegisteredEnvironment found;
  grpc::Status st = stub->GetEnvironment(&ctx, req, &found);
  if (!st.ok()) {
    return FromGrpcStatus(st, absl::StrCat("get environment ", ref.name,
                                           ref.version.empty() ? "" : ":" + ref.version),
                          conn.socket_path);
  }
  amld::v1::Environment env = found.environment();
  for (const auto& [k, v] : config.environment().environment_variables()) {
    (*env.mutable_environment_variables())[k] = v;
  }
  *config.mutable_environment() = std::move(env);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> ReadJobFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

absl::StatusOr<amld::v1::Run> SubmitYamlJob(const GlobalOptions& global, JobFile job,
                                            const SnapshotLimits& limits,
                                            const std::string& what) {
  AMLD_ASSIGN_OR_RETURN(SourceSnapshot source, HashSourceFolder(global, job.code, limits));
  amld::v1::RunConfig& config = job.config;
  if (job.environment_ref) {
    AMLD_RETURN_IF_ERROR(ResolveEnvironment(source.conn, *job.environment_ref, config));
  }
  amld::storage::ToProto(source.snapshot.root, config.mutable_snapshot_root());
  if (source.git) *config.mutable_git() = *source.git;
  auto submit = [&]() -> absl::StatusOr<amld::v1::Run> {
    auto stub = amld::v1::Runs::NewStub(source.conn.channel);
    grpc::ClientContext ctx;
    amld::v1::SubmitRunRequest req;
    *req.mutable_config() = config;
    amld::v1::SubmitRunResponse resp;
    grpc::Status st = stub->SubmitRun(&ctx, req, &resp);
    if (!st.ok()) return FromGrpcStatus(st, "submit " + what, source.conn.socket_path);
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

}  // namespace amld::client::commands
