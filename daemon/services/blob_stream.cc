#include "daemon/services/blob_stream.h"

#include <algorithm>
#include <memory>

#include "absl/strings/str_cat.h"
#include "base/relative_path.h"
#include "base/status_macros.h"

namespace amld::daemon {

namespace pb = amld::v1;

absl::Status StreamBlob(amld::storage::ContentStore& cas, const amld::storage::Digest& digest,
                        int64_t offset, const std::string& name,
                        grpc::ServerWriter<pb::FileChunk>* writer) {
  AMLD_ASSIGN_OR_RETURN(std::unique_ptr<amld::storage::BlobReader> blob, cas.OpenBlob(digest));
  const int64_t size = blob->size();
  if (offset > size) {
    return absl::OutOfRangeError(
        absl::StrCat("offset ", offset, " is past the end of ", name, " (", size, " bytes)"));
  }
  AMLD_RETURN_IF_ERROR(blob->Seek(offset));
  pb::FileChunk chunk;
  chunk.set_total_size(size);
  do {
    std::string* data = chunk.mutable_data();
    data->resize(static_cast<size_t>(std::min<int64_t>(kStreamChunkBytes, size - offset)));
    size_t got = 0;
    if (!data->empty()) {
      AMLD_ASSIGN_OR_RETURN(got, blob->Read(data->data(), data->size()));
      if (got == 0) return absl::DataLossError(absl::StrCat(name, " ended early"));
    }
    data->resize(got);
    chunk.set_offset(offset);
    if (!writer->Write(chunk)) return absl::CancelledError("client went away");
    offset += static_cast<int64_t>(got);
    chunk.clear_total_size();
  } while (offset < size);
  return absl::OkStatus();
}

absl::StatusOr<pb::Run> ApplyRunUpdate(const ServiceDeps& deps, const std::string& run_id,
                                       const pb::UpdateRunRequest& request) {
  AMLD_ASSIGN_OR_RETURN(pb::Run run, deps.store->GetRun(run_id));
  const bool interactive_parts = request.metrics_size() > 0 || request.files_size() > 0 ||
                                 request.end_status() != pb::RunStatus::UNKNOWN;
  if (interactive_parts) {
    if (!RunManager::IsInteractive(run.config())) {
      return absl::FailedPreconditionError(absl::StrCat(
          "run ", run_id, " has a process: it logs metrics and files through its metrics file "
          "and ./outputs, and ends when its process does"));
    }
    if (amld::storage::IsTerminal(run.status())) {
      return absl::FailedPreconditionError(
          absl::StrCat("run ", run_id, " has ended; nothing more can be logged to it"));
    }
  }
  // Check everything before changing anything.
  std::vector<amld::storage::Artifact> files;
  for (const pb::RunFile& f : request.files()) {
    AMLD_RETURN_IF_ERROR(base::ValidateRelativePath(f.path(), "file path"));
    amld::storage::Digest digest = amld::storage::FromProto(f.digest());
    AMLD_RETURN_IF_ERROR(amld::storage::ValidateDigest(digest));
    if (!deps.cas->Contains(digest)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the content of ", f.path(), " (", digest.ToString(), ") is not in the CAS; upload it "
          "first (Cas.BatchUpdateBlobs or Cas.Write)"));
    }
    files.push_back({f.path(), digest});
  }
  std::vector<pb::Metric> metrics;
  for (pb::Metric m : request.metrics()) {
    if (m.name().empty() || m.value_case() == pb::Metric::VALUE_NOT_SET) {
      return absl::InvalidArgumentError("a metric needs a name and a value (number or text)");
    }
    if (!m.has_time()) {
      const int64_t ns = absl::ToUnixNanos(deps.clock->Now());
      m.mutable_time()->set_seconds(ns / 1'000'000'000);
      m.mutable_time()->set_nanos(static_cast<int32_t>(ns % 1'000'000'000));
    }
    metrics.push_back(std::move(m));
  }
  amld::storage::RunLabelChanges labels;
  labels.set_tags.assign(request.set_tags().begin(), request.set_tags().end());
  labels.remove_tags.assign(request.remove_tags().begin(), request.remove_tags().end());
  labels.add_properties.assign(request.add_properties().begin(), request.add_properties().end());
  if (request.has_display_name()) labels.display_name = request.display_name();
  AMLD_ASSIGN_OR_RETURN(run, deps.store->UpdateRunLabels(run_id, labels));
  if (!metrics.empty()) AMLD_RETURN_IF_ERROR(deps.store->AppendMetrics(run_id, metrics));
  if (!files.empty()) AMLD_RETURN_IF_ERROR(deps.store->PutArtifacts(run_id, files));
  if (request.end_status() != pb::RunStatus::UNKNOWN) {
    return deps.runs->EndInteractive(run_id, request.end_status(), request.error());
  }
  if (!metrics.empty() || !files.empty()) return deps.store->GetRun(run_id);
  return run;
}

}  // namespace amld::daemon
