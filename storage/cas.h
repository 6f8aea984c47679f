// ContentStore: the content-addressed store (CAS) of a workspace.
//
// Layout under root:
//   objects/ab/cdef...   one file per blob, named by its SHA-256 hex, sharded
//                        by the first two hex characters; mode 0444
//   tmp/                 blobs being written (unique names), renamed into
//                        objects/ once verified and fsynced
//   uploads/<hash>-<size> partial resumable uploads (BeginUpload)
//
// Every blob is verified against its digest before it becomes visible, so a
// reader never sees a wrong or partial object. Writing the same blob twice,
// concurrently or not, is harmless: the second rename replaces identical
// bytes (dedup). The empty blob is always present (Contains() is true even
// before anything is written).
//
// Thread-safety: thread-safe; several processes may share one root.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "storage/digest.h"

namespace amld::storage {

// Sequential reader of one blob. Reading past the end returns 0 bytes. When
// the last byte is read, the content is checked against the digest, and a
// mismatch is reported as DATA_LOSS (the object is corrupt).
class BlobReader {
 public:
  virtual ~BlobReader() = default;
  virtual int64_t size() const = 0;
  // Moves the read position; INVALID_ARGUMENT past the end. Seeking skips
  // the corruption check (only a read from 0 to the end verifies).
  virtual absl::Status Seek(int64_t offset) = 0;
  // Reads up to `n` bytes into `buf`; returns how many (0 at the end).
  virtual absl::StatusOr<size_t> Read(char* buf, size_t n) = 0;
};

// A resumable upload of one blob whose digest is known up front.
class BlobUpload {
 public:
  virtual ~BlobUpload() = default;
  // Bytes already held (from an earlier, interrupted upload too).
  virtual int64_t committed_size() const = 0;
  // Appends `data`, which must start at `offset` == committed_size();
  // INVALID_ARGUMENT otherwise, or when it would exceed the digest's size.
  virtual absl::Status Append(int64_t offset, std::string_view data) = 0;
  // Verifies the whole content against the digest, fsyncs and moves it into
  // objects/. INVALID_ARGUMENT (and the partial data discarded) on mismatch
  // or when fewer than size bytes were appended.
  virtual absl::Status Commit() = 0;
};

struct GcStats {
  int64_t objects_kept = 0;
  int64_t objects_removed = 0;
  int64_t bytes_removed = 0;
};

class ContentStore {
 public:
  // Opens the store at `root`, creating its folders when missing.
  static absl::StatusOr<std::unique_ptr<ContentStore>> Open(const std::filesystem::path& root);
  virtual ~ContentStore() = default;

  const std::filesystem::path& root() const { return root_; }
  // Where the object lives (whether or not it exists).
  std::filesystem::path ObjectPath(const Digest& d) const;

  bool Contains(const Digest& d) const;
  // The digests of `digests` the store lacks, each once, in first-seen order.
  std::vector<Digest> FindMissing(absl::Span<const Digest> digests) const;

  // Stores `data`; returns its digest.
  absl::StatusOr<Digest> Put(std::string_view data);
  // Stores `data`, which must hash to `expected` (INVALID_ARGUMENT if not).
  absl::Status PutVerified(const Digest& expected, std::string_view data);
  // Stores a copy of the file at `path`, hashing while copying.
  absl::StatusOr<Digest> PutFile(const std::filesystem::path& path);

  // Reads a whole blob; NOT_FOUND when absent, DATA_LOSS when corrupt.
  absl::StatusOr<std::string> Read(const Digest& d) const;
  // Opens a blob for streaming; NOT_FOUND when absent.
  absl::StatusOr<std::unique_ptr<BlobReader>> OpenBlob(const Digest& d) const;
  // Re-hashes an object: OK, NOT_FOUND, or DATA_LOSS when it is corrupt.
  absl::Status Verify(const Digest& d) const;

  // Starts or resumes the upload of `d` (INVALID_ARGUMENT for a malformed
  // digest). If the blob is already stored, committed_size() == d.size and
  // Commit() is a no-op.
  absl::StatusOr<std::unique_ptr<BlobUpload>> BeginUpload(const Digest& d);
  // Bytes held of an interrupted upload of `d` (d.size if stored, else 0).
  int64_t UploadedSize(const Digest& d) const;

  // Removes every object not in `live`, and temp/upload files older than an
  // hour. Safe while other threads add blobs that are in `live`.
  absl::StatusOr<GcStats> CollectGarbage(const absl::flat_hash_set<Digest>& live);

 private:
  explicit ContentStore(std::filesystem::path root) : root_(std::move(root)) {}
  std::filesystem::path root_;
  friend class ContentStoreAccess;
};

}  // namespace amld::storage
