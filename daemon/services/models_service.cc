// Models service: registered, versioned models (proto amld/v1/models.proto)
// over the state store's models table; their files are CAS blobs, taken
// from a run's artifacts or uploaded by the client first.
#include <unistd.h>

#include <set>

#include "absl/strings/str_cat.h"
#include "amld/v1/models.grpc.pb.h"
#include "base/status_macros.h"
#include "daemon/services/blob_stream.h"
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

  grpc::Status DownloadModelFile(grpc::ServerContext*, const pb::DownloadModelFileRequest* request,
                                 grpc::ServerWriter<pb::FileChunk>* writer) override {
    return ToGrpcStatus(Download(*request, writer));
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
      *model.add_files() = f;
    }
    model.set_source_path(request.source_path());
    model.set_single_file(request.single_file());
    return deps_.store->RegisterModel(model, "", deps_.clock->Now());
  }

  absl::Status Download(const pb::DownloadModelFileRequest& request,
                        grpc::ServerWriter<pb::FileChunk>* writer) {
    if (request.offset() < 0) {
      return absl::InvalidArgumentError(absl::StrCat("offset must be >= 0, got ", request.offset()));
    }
    AMLD_ASSIGN_OR_RETURN(pb::Model model, deps_.store->GetModel(request.name(), request.version()));
    for (const pb::ModelFile& f : model.files()) {
      if (f.path() != request.path()) continue;
      return StreamBlob(*deps_.cas, amld::storage::FromProto(f.digest()), request.offset(),
                        request.path(), writer);
    }
    return absl::NotFoundError(absl::StrCat("model ", model.name(), " version ", model.version(),
                                            " has no file ", request.path()));
  }

  ServiceDeps deps_;
};

}  // namespace

std::unique_ptr<grpc::Service> NewModelsService(const ServiceDeps& deps) {
  return std::make_unique<ModelsService>(deps);
}

}  // namespace amld::daemon
