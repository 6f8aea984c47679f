// SnapshotUploader: puts a locally hashed snapshot into the daemon's CAS,
// sending only what the daemon lacks (Remote Execution API style):
//   1. FindMissingBlobs over every directory and file digest, in batches;
//   2. small missing blobs in BatchUpdateBlobs calls, each request kept
//      under the daemon's max_batch_bytes;
//   3. large missing blobs through Cas.Write in 1 MiB chunks; an
//      interrupted stream resumes from QueryWriteStatus.committed_size.
// Folders the daemon is known to hold with everything below them
// (UploaderOptions.present_dirs, remembered from the last upload of the same
// root to the same daemon) are not asked about, nor is anything below them:
// a resubmit after one edit asks about the few folders on the edited path.
// A file is read when it is sent; if it no longer hashes to its digest (it
// changed after hashing) the daemon refuses it and the upload fails saying
// so.
//
// Uploads run parallel_uploads jobs (batches, streams) at once.
//
// Thread-safety: one Upload() at a time per instance; the channel may be
// shared.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "storage/snapshot/snapshot.h"

namespace grpc {
class Channel;
}

namespace amld::client {

struct UploadStats {
  int64_t files_total = 0;           // regular files in the snapshot
  int64_t files_uploaded = 0;        // file blobs the daemon lacked and got
  int64_t directories_total = 0;     // distinct directory blobs
  int64_t directories_uploaded = 0;  // directory blobs the daemon lacked and got
  int64_t bytes_uploaded = 0;        // blob bytes sent (file and directory)
  int64_t bytes_total = 0;           // file bytes in the snapshot
};

struct UploadProgress {
  int64_t bytes_done = 0;
  int64_t bytes_to_send = 0;  // bytes of the missing blobs
  int64_t blobs_done = 0;
  int64_t blobs_to_send = 0;
};

struct UploaderOptions {
  // Named in errors when the daemon stops answering.
  std::filesystem::path socket_path;
  // The daemon's limit on one BatchUpdateBlobs request (DaemonInfo).
  int64_t max_batch_bytes = 4 << 20;
  // Blobs up to this size go in batches; larger ones are streamed.
  int64_t max_batched_blob_bytes = 1 << 20;
  // Bytes per Cas.Write message.
  int64_t write_chunk_bytes = 1 << 20;
  // Digests per FindMissingBlobs request.
  int find_missing_batch = 10000;
  // Attempts per streamed blob before giving up (each resumes).
  int write_attempts = 5;
  // Batches and streams in flight at once (over one channel).
  int parallel_uploads = 4;
  // Called after each batch or chunk, one call at a time (from any of the
  // upload threads); may be empty.
  std::function<void(const UploadProgress&)> on_progress;
  // Directory digests the daemon holds with every blob below them; may be
  // null (ask about every blob). Must outlive Upload().
  const absl::flat_hash_set<amld::storage::Digest>* present_dirs = nullptr;
};

class SnapshotUploader {
 public:
  SnapshotUploader(std::shared_ptr<grpc::Channel> channel, UploaderOptions options);
  ~SnapshotUploader();
  SnapshotUploader(const SnapshotUploader&) = delete;
  SnapshotUploader& operator=(const SnapshotUploader&) = delete;

  // Uploads what the daemon lacks of `snapshot`. Errors keep the daemon's
  // code (e.g. INVALID_ARGUMENT for a file that changed while uploading).
  absl::StatusOr<UploadStats> Upload(const amld::storage::Snapshot& snapshot);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace amld::client
