// ContentStore: the content-addressed store (CAS) of a workspace.
//
// Layout under root:
//   objects/ab/cdef...   one file per blob, named by its SHA-256 hex, sharded
//                        by the first two hex characters; mode 0400
//   tmp/                 blobs being written (unique names), renamed into
//                        objects/ once verified and fsynced
//   uploads/<hash>-<size>[-<owner>] partial resumable uploads (BeginUpload)
//
// Every blob is verified against its digest before it becomes visible, so a
// reader never sees a wrong or partial object. Writing the same blob twice,
// concurrently or not, is harmless: the second rename replaces identical
// bytes (dedup). The empty blob is always present (Contains() is true even
// before anything is written).
//
// An object is identified on disk by its hash; its size must match the
// digest's, so {hash, wrong size} is absent (NOT_FOUND), not corrupt.
// Corruption on disk (bytes changed after the rename) is caught by re-hashing
// on every full read and reported as DATA_LOSS; it is never repaired silently
// (Put of a blob whose object exists with the right size is a no-op).
//
// Resumable uploads and concurrency: the partial data of an upload of D lives
// in uploads/<hash>-<size>, and the BlobUpload that uses it holds an
// exclusive flock on it. The lock dies with its process, so a partial file
// left by a killed daemon is resumed by the next BeginUpload, from any
// ContentStore object. Uploads given an owner (a caller's key: the Cas
// service passes the uid on a daemon several users share) have their own
// partial file, uploads/<hash>-<size>-<owner>: how much of a blob one owner
// has sent is never seen, continued or restarted by another. A second,
// concurrent upload of the same digest and owner does
// not wait for the lock (a stalled client must not block another); it writes
// to its own file in tmp/ from offset 0 instead. Both may commit: the second
// rename replaces identical bytes. We chose this over "one private file per
// upload, resume best-effort" because resuming after a restart is the common
// case worth guaranteeing, and over "wait for the lock" because waits across
// clients turn one stuck stream into many.
//
// Durability: by default (Durability::kImmediate) objects are fsynced and
// their folder fsynced after the rename. Bulk writers (the Cas service, which
// takes a whole snapshot from a client) pass Durability::kDeferred instead:
// the object is renamed into place with its writeback started, and the next
// SyncPending() makes every such object durable at once — whoever is about to
// record a reference to the blobs durably (SubmitRun) calls it first. Two
// fsyncs per blob cost 118 s on a 10,000-file snapshot here; one sync for the
// batch costs one journal commit. Until it runs, only a crash of the machine
// (not of the daemon: the data is in the page cache) can lose such an object,
// and a lost object reads as missing (wrong size) or corrupt (DATA_LOSS),
// never as other content.
// Appended upload data is fsynced only at Commit; data lost in a crash
// surfaces as a digest mismatch at Commit (the client starts over).
// ENOSPC/EDQUOT surface as RESOURCE_EXHAUSTED: a Put leaves no temp file
// behind; an upload keeps the chunks it had appended, to be resumed.
//
// Thread-safety: ContentStore is thread-safe (its one mutable part, the list of
// objects awaiting SyncPending, has its own locks); several
// processes may share one root. BlobReader and BlobUpload are
// thread-compatible: one thread at a time per object.
#pragma once

#include <cstdint>
#include <atomic>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "storage/digest.h"

namespace amld::storage {

// When a stored blob must be on stable storage (see "Durability" above).
enum class Durability {
  kImmediate,  // fsynced, with its folder, before the call returns
  kDeferred,   // durable after the next ContentStore::SyncPending()
};

namespace internal {
class PendingSyncs;
}

// Sequential reader of one blob. Reading past the end returns 0 bytes. When
// the last byte is read, the content is checked against the digest, and a
// mismatch is reported as DATA_LOSS (the object is corrupt).
class BlobReader {
 public:
  virtual ~BlobReader() = default;
  virtual int64_t size() const = 0;
  // Moves the read position; INVALID_ARGUMENT past the end. The bytes before
  // `offset` are read and hashed (one sequential read of the prefix), so a
  // read that starts at an offset is verified at the end like one from 0;
  // DATA_LOSS when the prefix already shows the object corrupt.
  virtual absl::Status Seek(int64_t offset) = 0;
  // Reads up to `n` (> 0) bytes into `buf`; returns how many (0 at the end).
  virtual absl::StatusOr<size_t> Read(char* buf, size_t n) = 0;
};

// A resumable upload of one blob whose digest is known up front.
class BlobUpload {
 public:
  virtual ~BlobUpload() = default;
  // Bytes already held (from an earlier, interrupted upload too).
  virtual int64_t committed_size() const = 0;
  // Appends `data`, which must start at `offset` == committed_size(), or at
  // 0, which starts the upload anew (dropping what an earlier one left);
  // INVALID_ARGUMENT otherwise, or when it would exceed the digest's size.
  virtual absl::Status Append(int64_t offset, std::string_view data) = 0;
  // Verifies the whole content against the digest, fsyncs and moves it into
  // objects/. INVALID_ARGUMENT (and the partial data discarded) on mismatch
  // or when fewer than size bytes were appended. An I/O error while storing
  // also discards the data (after a failed fsync its state is unknown). After
  // a discard, Append and Commit return FAILED_PRECONDITION.
  virtual absl::Status Commit() = 0;
};

struct GcStats {
  int64_t objects_kept = 0;  // includes the empty blob's object
  int64_t objects_removed = 0;
  int64_t bytes_removed = 0;       // of removed objects and stale temp files
  int64_t temp_files_removed = 0;  // stale files of tmp/ and uploads/
};

class ContentStore {
 public:
  // Opens the store at `root`, creating its folders when missing.
  static absl::StatusOr<std::unique_ptr<ContentStore>> Open(const std::filesystem::path& root);
  virtual ~ContentStore() = default;

  const std::filesystem::path& root() const { return root_; }
  // Where the object lives (whether or not it exists); meaningful only for a
  // valid digest (a malformed one maps to objects/invalid).
  std::filesystem::path ObjectPath(const Digest& d) const;

  // False for a malformed digest. Checks existence and size, not content.
  bool Contains(const Digest& d) const;
  // The digests of `digests` the store lacks, each once, in first-seen order
  // (malformed digests count as missing; BeginUpload refuses them).
  std::vector<Digest> FindMissing(absl::Span<const Digest> digests) const;

  // Stores `data`; returns its digest.
  absl::StatusOr<Digest> Put(std::string_view data);
  // Stores `data`, which must hash to `expected` (INVALID_ARGUMENT if not).
  absl::Status PutVerified(const Digest& expected, std::string_view data,
                           Durability durability = Durability::kImmediate);
  // Stores a copy of the file at `path`, hashing while copying (one read
  // pass). INVALID_ARGUMENT when `path` is not a regular file.
  absl::StatusOr<Digest> PutFile(const std::filesystem::path& path,
                                 Durability durability = Durability::kImmediate);
  // Stores a copy of the regular file open as `fd` (read from offset 0;
  // `name` is for messages). Where the file system can, the copy is a
  // reflink (FICLONE: shared blocks, copy-on-write) hashed as read back from
  // the store's own clone, so the object matches its digest even when the
  // source changes meanwhile; elsewhere one read pass hashes and writes.
  // Read errors name `name`.
  absl::StatusOr<Digest> PutOpenFile(int fd, std::string_view name,
                                     Durability durability = Durability::kImmediate);

  // Reads a whole blob; NOT_FOUND when absent, DATA_LOSS when corrupt,
  // INVALID_ARGUMENT for a malformed digest (likewise below).
  absl::StatusOr<std::string> Read(const Digest& d) const;
  // Opens a blob for streaming; NOT_FOUND when absent.
  absl::StatusOr<std::unique_ptr<BlobReader>> OpenBlob(const Digest& d) const;
  // Re-hashes an object: OK, NOT_FOUND, or DATA_LOSS when it is corrupt.
  absl::Status Verify(const Digest& d) const;

  // Starts or resumes `owner`'s upload of `d` (INVALID_ARGUMENT for a
  // malformed digest, or an owner other than 1-32 letters, digits and '_').
  // If the blob is already stored, committed_size() == d.size and
  // Commit() is a no-op. Resuming re-reads the bytes already held, to hash
  // them. While another upload of `d` by the same owner is open, this one
  // starts at 0 in a private file (see the top of this file). "": the
  // partial file every ownerless upload shares.
  absl::StatusOr<std::unique_ptr<BlobUpload>> BeginUpload(
      const Digest& d, Durability durability = Durability::kImmediate,
      std::string_view owner = {});
  // Makes every object stored with Durability::kDeferred so far durable: one
  // syncfs() for many objects, fsyncs for a few. When it returns OK, every
  // deferred object stored before the call began is on stable storage, even
  // those another thread's concurrent SyncPending() took on. On an I/O error
  // the objects it was syncing are removed (after a failed fsync their
  // content is unknown) and the error says to upload them again.
  absl::Status SyncPending();
  // Objects stored with kDeferred and not yet synced.
  int64_t PendingSyncCount() const;
  // Bytes held of `owner`'s interrupted upload of `d` (d.size if stored,
  // else 0; 0 for an owner BeginUpload refuses).
  int64_t UploadedSize(const Digest& d, std::string_view owner = {}) const;

  // Removes every object whose hash is not in `live` (the empty blob always
  // stays), and files of tmp/ and uploads/ untouched for over an hour and not
  // locked by a live upload. Safe while other threads or processes add blobs
  // that are in `live`; a blob not in `live` added meanwhile may be removed,
  // so callers serialize GC with the code that decides what is live.
  //
  // Objects modified less than `min_age` ago are kept too: a client may have
  // just uploaded them, or been told by FindMissing that they are present,
  // for a run it has not submitted yet. FindMissing refreshes the mtime of
  // the objects it reports present (as REAPI's FindMissingBlobs extends a
  // blob's lifetime), so a blob a client relies on outlives one GC pass.
  //
  // `removed`, when given, gets the hash of every object removed, also when
  // the collection stops early with an error (what refers to blobs by hash
  // elsewhere, the per-user claims, is pruned from it).
  absl::StatusOr<GcStats> CollectGarbage(const absl::flat_hash_set<Digest>& live,
                                         absl::Duration min_age = absl::ZeroDuration(),
                                         std::vector<std::string>* removed = nullptr);

 private:
  explicit ContentStore(std::filesystem::path root);
  std::filesystem::path root_;
  std::shared_ptr<internal::PendingSyncs> pending_;
  // Set once FICLONE failed for lack of support: not tried again.
  std::atomic<bool> no_reflink_{false};
  friend class ContentStoreAccess;
};

}  // namespace amld::storage
