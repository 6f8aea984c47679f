// Models service: registered, versioned models (proto amld/v1/models.proto)
// over the state store's models table; their files are CAS blobs, taken
// from a run's artifacts or uploaded by the client first. In system mode a
// model's files are content (access.h): registering needs the files' proof
// or the run's ownership, downloading is for the model's owners.
#include <unistd.h>

#include <optional>
#include <set>

#include "absl/strings/str_cat.h"
#include "amld/v1/models.grpc.pb.h"
#include "base/status_macros.h"
#include "daemon/services/blob_stream.h"
#include "daemon/services/content_proof.h"
#include "daemon/services/grpc_status.h"
#include "daemon/services/run_ids.h"
#include "daemon/services/services.h"

namespace amld::daemon {
namespace {

namespace pb = amld::v1;

template <typename T>
grpc::Status Reply(absl::StatusOr<T> result, T* response) {
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = std::move(*result);
  return grpc::Status::OK;
}

class ModelsService final : public pb::Models::Service {
 public:
  explicit ModelsService(const ServiceDeps& deps) : deps_(deps) {}

  grpc::Status RegisterModel(grpc::ServerContext* context, const pb::RegisterModelRequest* request,
                             pb::Model* response) override {
    return Reply(Register(*request, CallerUid(context)), response);
  }

  grpc::Status GetModel(grpc::ServerContext*, const pb::GetModelRequest* request,
                        pb::Model* response) override {
    return Reply(deps_.store->GetModel(request->name(), request->version()), response);
  }

  grpc::Status ListModels(grpc::ServerContext* context, const pb::ListModelsRequest* request,
                          pb::ListModelsResponse* response) override {
    std::string run_id;
    if (!request->run_id().empty()) {
      absl::StatusOr<std::string> id =
          ResolveRunId(*deps_.store, request->run_id(), CallerUid(context), "");
      if (!id.ok()) return ToGrpcStatus(id.status());
      run_id = *id;
    }
    absl::StatusOr<std::vector<pb::Model>> models =
        deps_.store->ListModels(request->name(), request->latest_only(), run_id);
    if (!models.ok()) return ToGrpcStatus(models.status());
    for (pb::Model& m : *models) *response->add_models() = std::move(m);
    return grpc::Status::OK;
  }

  grpc::Status DownloadModelFile(grpc::ServerContext* context,
                                 const pb::DownloadModelFileRequest* request,
                                 grpc::ServerWriter<pb::FileChunk>* writer) override {
    return ToGrpcStatus(Download(*request, CallerUid(context), writer));
  }

 private:
  uid_t CallerUid(const grpc::ServerContextBase* context) const {
    return amld::daemon::CallerUid(deps_, *context);
  }

  absl::StatusOr<pb::Model> Register(const pb::RegisterModelRequest& request, uid_t uid) {
    const bool from_run = !request.run_id().empty();
    if (from_run == (request.files_size() > 0)) {
      return absl::InvalidArgumentError(
          "give either run_id and run_path (a run's files) or files (uploaded to the CAS)");
    }
    pb::Model model;
    model.set_name(request.name());
    model.mutable_tags()->insert(request.tags().begin(), request.tags().end());
    model.mutable_properties()->insert(request.properties().begin(), request.properties().end());
    model.set_description(request.description());
    model.set_registered_by_uid(uid);
    AMLD_RETURN_IF_ERROR(amld::storage::ValidateModelName(model.name()));
    if (from_run) {
      AMLD_ASSIGN_OR_RETURN(std::string run_id,
                            ResolveRunId(*deps_.store, request.run_id(), uid, ""));
      if (deps_.access.system_mode()) {
        // The model's files would be the caller's to download (access.h).
        AMLD_ASSIGN_OR_RETURN(pb::Run run, deps_.store->GetRun(run_id));
        AMLD_RETURN_IF_ERROR(deps_.access.CheckRunOwner(uid, run, "register a model from"));
      }
      return deps_.store->RegisterModelFromRun(model, run_id, request.run_path(), "",
                                               deps_.clock->Now());
    }
    for (const pb::ModelFile& f : request.files()) {
      const amld::storage::Digest digest = amld::storage::FromProto(f.digest());
      AMLD_RETURN_IF_ERROR(amld::storage::ValidateDigest(digest));
      if (!deps_.cas->Contains(digest)) {
        return absl::FailedPreconditionError(absl::StrCat(
            "the content of ", f.path(), " (", digest.ToString(),
            ") is not in the CAS; upload it first (Cas.BatchUpdateBlobs or Cas.Write)"));
      }
      // On a shared daemon a digest alone names no content (content_proof.h):
      // the caller must have sent these bytes, as the CAS service tells them.
      AMLD_ASSIGN_OR_RETURN(bool proved, HasProof(deps_, uid, digest));
      if (!proved) {
        return absl::FailedPreconditionError(absl::StrCat(
            "the content of ", f.path(), " (", digest.ToString(),
            ") was never sent to this daemon by you; upload it first (Cas.FindMissingBlobs lists "
            "it as missing, then Cas.BatchUpdateBlobs or Cas.Write)"));
      }
      *model.add_files() = f;
    }
    model.set_source_path(request.source_path());
    model.set_single_file(request.single_file());
    return deps_.store->RegisterModel(model, "", deps_.clock->Now());
  }

  absl::Status Download(const pb::DownloadModelFileRequest& request, uid_t caller,
                        grpc::ServerWriter<pb::FileChunk>* writer) {
    if (request.offset() < 0) {
      return absl::InvalidArgumentError(absl::StrCat("offset must be >= 0, got ", request.offset()));
    }
    AMLD_ASSIGN_OR_RETURN(pb::Model model, deps_.store->GetModel(request.name(), request.version()));
    AMLD_RETURN_IF_ERROR(CheckReader(model, caller));
    for (const pb::ModelFile& f : model.files()) {
      if (f.path() != request.path()) continue;
      return StreamBlob(*deps_.cas, amld::storage::FromProto(f.digest()), request.offset(),
                        request.path(), writer);
    }
    return absl::NotFoundError(absl::StrCat("model ", model.name(), " version ", model.version(),
                                            " has no file ", request.path()));
  }

  // System mode: a model's files go to its owners only (access.h).
  absl::Status CheckReader(const pb::Model& model, uid_t caller) const {
    if (!deps_.access.system_mode()) return absl::OkStatus();
    std::optional<uid_t> run_owner;
    if (!model.run_id().empty()) {
      // A run deleted since leaves the registrant as the only owner.
      absl::StatusOr<pb::Run> run = deps_.store->GetRun(model.run_id());
      if (run.ok()) {
        run_owner = run->submitter_uid();
      } else if (!absl::IsNotFound(run.status())) {
        return run.status();
      }
    }
    return deps_.access.CheckModelReader(caller, model, run_owner);
  }

  ServiceDeps deps_;
};

}  // namespace

std::unique_ptr<grpc::Service> NewModelsService(const ServiceDeps& deps) {
  return std::make_unique<ModelsService>(deps);
}

}  // namespace amld::daemon
