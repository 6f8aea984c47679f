// Cas service: the content-addressed store over gRPC (Remote Execution API
// style). Every blob is verified against its digest before it is kept.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "amld/v1/cas.grpc.pb.h"
#include "daemon/services/content_proof.h"
#include "daemon/services/grpc_status.h"
#include "daemon/services/services.h"
#include "base/status_macros.h"

namespace amld::daemon {
namespace {

namespace pb = amld::v1;
using amld::storage::Digest;
using amld::storage::FromProto;

// A snapshot arrives as thousands of blobs: they are synced once, by the
// SubmitRun that references them (RunManager::Submit calls SyncPending),
// not one by one (ContentStore's "Durability").
constexpr amld::storage::Durability kUploadDurability = amld::storage::Durability::kDeferred;

absl::StatusOr<Digest> CheckedDigest(const pb::Digest& proto) {
  Digest d = FromProto(proto);
  AMLD_RETURN_IF_ERROR(amld::storage::ValidateDigest(d));
  return d;
}

class CasService final : public pb::Cas::Service {
 public:
  explicit CasService(const ServiceDeps& deps) : deps_(deps) {}

  grpc::Status FindMissingBlobs(grpc::ServerContext* context,
                                const pb::FindMissingBlobsRequest* request,
                                pb::FindMissingBlobsResponse* response) override {
    std::vector<Digest> digests;
    digests.reserve(request->blob_digests_size());
    for (const pb::Digest& proto : request->blob_digests()) {
      absl::StatusOr<Digest> d = CheckedDigest(proto);
      if (!d.ok()) return ToGrpcStatus(d.status());
      digests.push_back(std::move(*d));
    }
    // System mode: also what the caller has not proved (content_proof.h).
    absl::StatusOr<std::vector<Digest>> missing =
        MissingFor(deps_, CallerUid(deps_, *context), digests);
    if (!missing.ok()) return ToGrpcStatus(missing.status());
    for (const Digest& d : *missing) amld::storage::ToProto(d, response->add_missing_blob_digests());
    return grpc::Status::OK;
  }

  grpc::Status BatchUpdateBlobs(grpc::ServerContext* context,
                                const pb::BatchUpdateBlobsRequest* request,
                                pb::BatchUpdateBlobsResponse* response) override {
    const int64_t size = static_cast<int64_t>(request->ByteSizeLong());
    if (size > kMaxBatchBytes) {
      return ToGrpcStatus(absl::InvalidArgumentError(absl::StrCat(
          "BatchUpdateBlobs request is ", size, " bytes, over the limit of ", kMaxBatchBytes,
          "; send fewer blobs per batch, and blobs this large with Write")));
    }
    std::vector<Digest> proved;
    for (const auto& item : request->requests()) {
      pb::BatchUpdateBlobsResponse::Response* out = response->add_responses();
      *out->mutable_digest() = item.digest();
      absl::Status s = StoreOne(item);
      if (s.ok()) proved.push_back(FromProto(item.digest()));
      out->set_code(static_cast<int>(s.code()));
      out->set_message(std::string(s.message()));
    }
    // Each was checked against its digest, stored before or not.
    return ToGrpcStatus(RecordProof(deps_, CallerUid(deps_, *context), proved));
  }

  grpc::Status Write(grpc::ServerContext* context, grpc::ServerReader<pb::WriteRequest>* reader,
                     pb::WriteResponse* response) override {
    return ToGrpcStatus(WriteImpl(CallerUid(deps_, *context), reader, response));
  }

  grpc::Status QueryWriteStatus(grpc::ServerContext* context,
                                const pb::QueryWriteStatusRequest* request,
                                pb::QueryWriteStatusResponse* response) override {
    absl::StatusOr<Digest> d = CheckedDigest(request->digest());
    if (!d.ok()) return ToGrpcStatus(d.status());
    bool complete = deps_.cas->Contains(*d);
    if (complete) {
      // Held, but not for a caller who never sent it (content_proof.h).
      absl::StatusOr<bool> proved = HasProof(deps_, CallerUid(deps_, *context), *d);
      if (!proved.ok()) return ToGrpcStatus(proved.status());
      if (!*proved) {
        response->set_complete(false);
        response->set_committed_size(0);
        return grpc::Status::OK;
      }
    }
    response->set_complete(complete);
    response->set_committed_size(
        complete ? d->size
                 : deps_.cas->UploadedSize(*d, UploadOwner(CallerUid(deps_, *context))));
    return grpc::Status::OK;
  }

 private:
  // Whose partial upload a Write continues: on a shared daemon each uid
  // has its own, so no one learns how much of a blob another has sent,
  // nor appends to or restarts it (storage/cas.h).
  std::string UploadOwner(uid_t caller) const {
    return deps_.access.system_mode() ? absl::StrCat("u", caller) : std::string();
  }

  absl::Status StoreOne(const pb::BatchUpdateBlobsRequest::Request& item) {
    AMLD_ASSIGN_OR_RETURN(Digest d, CheckedDigest(item.digest()));
    AMLD_RETURN_IF_ERROR(deps_.cas->PutVerified(d, item.data(), kUploadDurability));
    Count(d.size);
    return absl::OkStatus();
  }

  void Count(int64_t bytes) {
    deps_.counters->cas_blobs_uploaded.fetch_add(1, std::memory_order_relaxed);
    deps_.counters->cas_bytes_uploaded.fetch_add(bytes, std::memory_order_relaxed);
  }

  absl::Status WriteImpl(uid_t caller, grpc::ServerReader<pb::WriteRequest>* reader,
                         pb::WriteResponse* response) {
    pb::WriteRequest msg;
    if (!reader->Read(&msg)) {
      return absl::InvalidArgumentError("Write needs at least one message naming the digest");
    }
    if (!msg.has_digest()) {
      return absl::InvalidArgumentError("the first Write message must name the blob's digest");
    }
    AMLD_ASSIGN_OR_RETURN(Digest d, CheckedDigest(msg.digest()));
    AMLD_ASSIGN_OR_RETURN(std::unique_ptr<amld::storage::BlobUpload> upload,
                          deps_.cas->BeginUpload(d, kUploadDurability, UploadOwner(caller)));
    if (deps_.cas->Contains(d)) {
      AMLD_ASSIGN_OR_RETURN(bool proved, HasProof(deps_, caller, d));
      // Not theirs yet: the whole stream must hash to the digest.
      if (!proved) return ProveByStream(caller, d, std::move(msg), reader, response);
      // Already stored: nothing more to send (the client's further writes
      // fail and it reads this response).
      response->set_committed_size(d.size);
      return absl::OkStatus();
    }
    do {
      if (msg.has_digest() && FromProto(msg.digest()) != d) {
        return absl::InvalidArgumentError(
            absl::StrCat("Write messages name different digests: ", d.ToString(), " and ",
                         FromProto(msg.digest()).ToString()));
      }
      if (!msg.data().empty() || msg.write_offset() != upload->committed_size()) {
        AMLD_RETURN_IF_ERROR(upload->Append(msg.write_offset(), msg.data()));
      }
      if (msg.finish_write()) {
        AMLD_RETURN_IF_ERROR(upload->Commit());
        Count(d.size);
        AMLD_RETURN_IF_ERROR(RecordProof(deps_, caller, {d}));
        response->set_committed_size(d.size);
        return absl::OkStatus();
      }
    } while (reader->Read(&msg));
    // The client stopped without finish_write: keep what arrived for a
    // resume (QueryWriteStatus tells how much).
    response->set_committed_size(upload->committed_size());
    return absl::OkStatus();
  }

  // A Write of a blob the store holds from someone else: reads every
  // message from offset 0 and checks that they hash to `d`, then records
  // the caller's claim. Nothing is stored; a stream cut short proves
  // nothing (it starts again from 0: QueryWriteStatus said 0).
  absl::Status ProveByStream(uid_t caller, const Digest& d, pb::WriteRequest msg,
                             grpc::ServerReader<pb::WriteRequest>* reader,
                             pb::WriteResponse* response) {
    amld::storage::Sha256 hash;
    int64_t received = 0;
    do {
      if (msg.write_offset() != received) {
        return absl::InvalidArgumentError(absl::StrCat(
            "Write of ", d.ToString(), " must send it from offset 0 in order (got offset ",
            msg.write_offset(), " after ", received, " bytes)"));
      }
      hash.Update(msg.data());
      received += static_cast<int64_t>(msg.data().size());
      if (received > d.size) break;
      if (msg.finish_write()) {
        if (received != d.size || hash.FinishHex() != d.hash) break;
        AMLD_RETURN_IF_ERROR(RecordProof(deps_, caller, {d}));
        response->set_committed_size(d.size);
        return absl::OkStatus();
      }
    } while (reader->Read(&msg));
    if (received <= d.size && !msg.finish_write()) {
      response->set_committed_size(0);
      return absl::OkStatus();
    }
    return absl::InvalidArgumentError(
        absl::StrCat("the bytes sent do not match their digest ", d.ToString()));
  }

  ServiceDeps deps_;
};

}  // namespace

std::unique_ptr<grpc::Service> NewCasService(const ServiceDeps& deps) {
  return std::make_unique<CasService>(deps);
}

}  // namespace amld::daemon
