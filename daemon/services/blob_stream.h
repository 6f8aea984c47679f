// What the services that stream stored files share: one CAS blob as
// FileChunk messages from an offset (Runs.DownloadFile,
// Models.DownloadModelFile), and Runs.UpdateRun's work (run_updates.cc).
//
// Thread-safety: stateless functions; thread-safe where their arguments are.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "amld/v1/runs.pb.h"
#include "daemon/services/services.h"
#include "grpcpp/support/sync_stream.h"
#include "storage/cas.h"

namespace amld::daemon {

// Streams the blob `digest` from `offset` in kStreamChunkBytes chunks (the
// first carries total_size). OUT_OF_RANGE when offset is past its end
// (`name` says which file); DATA_LOSS when the stored bytes are short or
// corrupt; CANCELLED when the client went away.
absl::Status StreamBlob(amld::storage::ContentStore& cas, const amld::storage::Digest& digest,
                        int64_t offset, const std::string& name,
                        grpc::ServerWriter<amld::v1::FileChunk>* writer);

// Runs.UpdateRun of the run `run_id` (already resolved): labels for any run;
// metrics, files and the end for interactive runs only (see runs.proto).
absl::StatusOr<amld::v1::Run> ApplyRunUpdate(const ServiceDeps& deps, const std::string& run_id,
                                             const amld::v1::UpdateRunRequest& request);

}  // namespace amld::daemon
