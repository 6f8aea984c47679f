// Runs service: submit, read, watch, cancel runs and read their files.
#include <unistd.h>

#include <functional>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "amld/v1/runs.grpc.pb.h"
#include "daemon/services/blob_stream.h"
#include "daemon/services/content_proof.h"
#include "daemon/services/grpc_status.h"
#include "daemon/services/run_ids.h"
#include "daemon/services/run_streams.h"
#include "daemon/executors/run_folder.h"
#include "daemon/services/services.h"
#include "daemon/runs/submit_validation.h"
#include "daemon/sweeps/sweep_controller.h"
#include "base/file_names.h"
#include "base/status_macros.h"

namespace amld::daemon {
namespace {

using amld::v1::Run;
namespace pb = amld::v1;

// ---------------------------------------------------------------------------

class RunsService final : public pb::Runs::Service {
 public:
  explicit RunsService(const ServiceDeps& deps) : deps_(deps) {}

  grpc::Status SubmitRun(grpc::ServerContext* context, const pb::SubmitRunRequest* request,
                         pb::SubmitRunResponse* response) override {
    const uid_t uid = CallerUid(context);
    if (request->config().has_snapshot_root()) {
      // System mode: only content the caller sent (content_proof.h).
      absl::Status proved = CheckSnapshotProof(
          deps_, uid, amld::storage::FromProto(request->config().snapshot_root()));
      if (!proved.ok()) return ToGrpcStatus(proved);
    }
    absl::StatusOr<Run> run = absl::UnimplementedError("this daemon runs no sweeps");
    if (!request->parent_run_id().empty() && !request->config().interactive()) {
      run = absl::InvalidArgumentError(
          "parent_run_id is for interactive runs (child_run); a sweep makes its own children");
    } else if (!request->config().has_sweep()) {
      RunManager::SubmitOptions options;
      if (!request->parent_run_id().empty()) {
        absl::StatusOr<std::string> parent = Resolve(context, request->parent_run_id());
        if (!parent.ok()) return ToGrpcStatus(parent.status());
        options.parent_run_id = *parent;
      }
      run = deps_.runs->Submit(request->config(), uid, options);
    } else if (deps_.sweeps != nullptr) {
      run = deps_.sweeps->Submit(request->config(), uid);
    }
    if (!run.ok()) return ToGrpcStatus(run.status());
    *response->mutable_run() = std::move(*run);
    return grpc::Status::OK;
  }

  grpc::Status GetRun(grpc::ServerContext* context, const pb::GetRunRequest* request,
                      Run* response) override {
    absl::StatusOr<std::string> id =
        Resolve(context, request->run_id(), request->experiment_name());
    if (!id.ok()) return ToGrpcStatus(id.status());
    absl::StatusOr<Run> run = deps_.store->GetRun(*id);
    if (!run.ok()) return ToGrpcStatus(run.status());
    const uid_t caller = CallerUid(context);
    deps_.access.RedactForCaller(caller, deps_.access.IsAdmin(caller), &*run);
    *response = std::move(*run);
    return grpc::Status::OK;
  }

  grpc::Status ListRuns(grpc::ServerContext* context, const pb::ListRunsRequest* request,
                        pb::ListRunsResponse* response) override {
    if (request->page_size() < 0) {
      return ToGrpcStatus(absl::InvalidArgumentError(
          absl::StrCat("page_size must be >= 0, got ", request->page_size())));
    }
    amld::storage::RunFilter filter;
    filter.experiment_name = request->experiment_name();
    for (int s : request->statuses())
      filter.statuses.push_back(static_cast<amld::storage::RunStatus>(s));
    if (request->has_submitter_uid()) filter.submitter_uid = request->submitter_uid();
    filter.parent_run_id = request->parent_run_id();
    filter.page_size = request->page_size() == 0 ? 50 : std::min(request->page_size(), 1000);
    filter.page_token = request->page_token();
    absl::StatusOr<amld::storage::RunPage> page = deps_.store->ListRuns(filter);
    if (!page.ok()) return ToGrpcStatus(page.status());
    const uid_t caller = CallerUid(context);
    const bool admin = deps_.access.IsAdmin(caller);
    for (Run& run : page->runs) {
      deps_.access.RedactForCaller(caller, admin, &run);
      *response->add_runs() = std::move(run);
    }
    response->set_next_page_token(page->next_page_token);
    return grpc::Status::OK;
  }

  grpc::Status WaitRun(grpc::ServerContext* context, const pb::WaitRunRequest* request,
                       grpc::ServerWriter<pb::WaitRunResponse>* writer) override {
    absl::StatusOr<std::string> id = Resolve(context, request->run_id());
    if (!id.ok()) return ToGrpcStatus(id.status());
    const uid_t caller = CallerUid(context);
    const bool admin = deps_.access.IsAdmin(caller);
    return ServeWaitRun(
        deps_, *id,
        [this, caller, admin](Run* run) { deps_.access.RedactForCaller(caller, admin, run); },
        context, writer);
  }

  grpc::Status CancelRun(grpc::ServerContext* context, const pb::CancelRunRequest* request,
                         Run* response) override {
    absl::StatusOr<std::string> id = ResolveOwned(context, request->run_id(), "cancel");
    if (!id.ok()) return ToGrpcStatus(id.status());
    absl::StatusOr<Run> run = deps_.runs->Cancel(*id, request->reason());
    if (!run.ok()) return ToGrpcStatus(run.status());
    *response = std::move(*run);
    return grpc::Status::OK;
  }

  grpc::Status DeleteRun(grpc::ServerContext* context, const pb::DeleteRunRequest* request,
                         pb::DeleteRunResponse* response) override {
    absl::StatusOr<std::string> id = Resolve(context, request->run_id());
    if (!id.ok()) return ToGrpcStatus(id.status());
    absl::StatusOr<std::vector<std::string>> deleted = deps_.runs->Delete(*id, CallerUid(context));
    if (!deleted.ok()) return ToGrpcStatus(deleted.status());
    for (std::string& d : *deleted) response->add_deleted_run_ids(std::move(d));
    return grpc::Status::OK;
  }

  grpc::Status StreamLogs(grpc::ServerContext* context, const pb::StreamLogsRequest* request,
                          grpc::ServerWriter<pb::LogChunk>* writer) override {
    pb::StreamLogsRequest resolved = *request;
    absl::StatusOr<std::string> id = ResolveOwned(context, request->run_id(), "read the logs of");
    if (!id.ok()) return ToGrpcStatus(id.status());
    resolved.set_run_id(*id);
    return ServeLogStream(deps_, resolved, context, writer);
  }

  grpc::Status ListFiles(grpc::ServerContext* context, const pb::ListFilesRequest* request,
                         pb::ListFilesResponse* response) override {
    pb::ListFilesRequest resolved = *request;
    absl::StatusOr<std::string> id = ResolveOwned(context, request->run_id(), "list the files of");
    if (!id.ok()) return ToGrpcStatus(id.status());
    resolved.set_run_id(*id);
    absl::Status s = ListFilesImpl(resolved, response);
    return ToGrpcStatus(s);
  }

  grpc::Status DownloadFile(grpc::ServerContext* context, const pb::DownloadFileRequest* request,
                            grpc::ServerWriter<pb::FileChunk>* writer) override {
    pb::DownloadFileRequest resolved = *request;
    absl::StatusOr<std::string> id = ResolveOwned(context, request->run_id(), "download from");
    if (!id.ok()) return ToGrpcStatus(id.status());
    resolved.set_run_id(*id);
    return ToGrpcStatus(DownloadFileImpl(resolved, writer));
  }

  grpc::Status UpdateRun(grpc::ServerContext* context, const pb::UpdateRunRequest* request,
                         Run* response) override {
    absl::StatusOr<std::string> id = Resolve(context, request->run_id());
    if (!id.ok()) return ToGrpcStatus(id.status());
    absl::StatusOr<Run> run = ApplyRunUpdate(deps_, *id, *request);
    if (!run.ok()) return ToGrpcStatus(run.status());
    *response = std::move(*run);
    return grpc::Status::OK;
  }

  grpc::Status GetMetrics(grpc::ServerContext* context, const pb::GetMetricsRequest* request,
                          pb::GetMetricsResponse* response) override {
    absl::StatusOr<std::string> id = ResolveOwned(context, request->run_id(), "read the metrics of");
    if (!id.ok()) return ToGrpcStatus(id.status());
    absl::StatusOr<Run> run = deps_.store->GetRun(*id);
    if (!run.ok()) return ToGrpcStatus(run.status());
    std::vector<std::string> names(request->names().begin(), request->names().end());
    absl::StatusOr<std::vector<pb::Metric>> metrics = deps_.store->GetMetrics(run->id(), names);
    if (!metrics.ok()) return ToGrpcStatus(metrics.status());
    for (pb::Metric& m : *metrics) *response->add_metrics() = std::move(m);
    return grpc::Status::OK;
  }

 private:
  uid_t CallerUid(const grpc::ServerContextBase* context) const {
    return amld::daemon::CallerUid(deps_, *context);
  }

  // Resolve, then PERMISSION_DENIED unless the caller may `action` the run
  // (its submitter or an admin in system mode; access.h).
  absl::StatusOr<std::string> ResolveOwned(const grpc::ServerContextBase* context,
                                           const std::string& typed, std::string_view action) {
    AMLD_ASSIGN_OR_RETURN(std::string id, Resolve(context, typed));
    if (!deps_.access.system_mode()) return id;
    AMLD_ASSIGN_OR_RETURN(Run run, deps_.store->GetRun(id));
    AMLD_RETURN_IF_ERROR(deps_.access.CheckRunOwner(CallerUid(context), run, action));
    return id;
  }

  // The full id of the run a request names, however it was typed (run_ids.h).
  absl::StatusOr<std::string> Resolve(const grpc::ServerContextBase* context,
                                      const std::string& typed,
                                      const std::string& experiment = "") {
    return ResolveRunId(*deps_.store, typed, CallerUid(context), experiment);
  }

  absl::Status ListFilesImpl(const pb::ListFilesRequest& request, pb::ListFilesResponse* response) {
    AMLD_RETURN_IF_ERROR(deps_.store->GetRun(request.run_id()).status());
    const std::string& prefix =
        request.prefix_bytes().empty() ? request.prefix() : request.prefix_bytes();
    AMLD_ASSIGN_OR_RETURN(std::vector<amld::storage::Artifact> artifacts,
                          deps_.store->ListArtifacts(request.run_id(), prefix));
    for (const amld::storage::Artifact& a : artifacts) {
      pb::RunFile* f = response->add_files();
      // A run names its files with any bytes; a proto3 string holds only
      // UTF-8 (one bad name would make the whole response unreadable).
      if (base::IsValidUtf8(a.path)) {
        f->set_path(a.path);
      } else {
        f->set_path(base::EscapeName(a.path));
        f->set_path_bytes(a.path);
      }
      amld::storage::ToProto(a.digest, f->mutable_digest());
    }
    return absl::OkStatus();
  }

  absl::StatusOr<amld::storage::Artifact> FindArtifact(const std::string& run_id,
                                                       const std::string& path) {
    AMLD_RETURN_IF_ERROR(base::ValidateRelativePath(path, "path"));
    const std::string shown = base::EscapeName(path);
    AMLD_RETURN_IF_ERROR(deps_.store->GetRun(run_id).status());
    absl::StatusOr<amld::storage::Artifact> artifact = deps_.store->GetArtifact(run_id, path);
    if (artifact.ok() || artifact.status().code() != absl::StatusCode::kNotFound) return artifact;
    if (IsSymlinkInRun(deps_.runs->PathsFor(run_id), path)) {
      return absl::InvalidArgumentError(
          absl::StrCat(shown,
                       " is or passes through a symbolic link; links in a run are never stored or "
                       "served"));
    }
    return absl::NotFoundError(absl::StrCat("run ", run_id, " has no stored file ", shown,
                                            "; files are stored shortly after they are written (aml run files ",
                                            run_id, " lists them)"));
  }

  absl::Status DownloadFileImpl(const pb::DownloadFileRequest& request,
                                grpc::ServerWriter<pb::FileChunk>* writer) {
    AMLD_RETURN_IF_ERROR(CheckStreamOffset(request.offset()));
    const std::string& path = request.path_bytes().empty() ? request.path() : request.path_bytes();
    AMLD_ASSIGN_OR_RETURN(amld::storage::Artifact artifact, FindArtifact(request.run_id(), path));
    return StreamBlob(*deps_.cas, artifact.digest, request.offset(), base::EscapeName(path),
                      writer);
  }

  ServiceDeps deps_;
};

}  // namespace

std::unique_ptr<grpc::Service> NewRunsService(const ServiceDeps& deps) {
  return std::make_unique<RunsService>(deps);
}

}  // namespace amld::daemon
