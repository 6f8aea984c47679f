// Proof of content on a daemon several users share (`amld --system`): the
// CAS is one store for everyone, so knowing a blob's digest must not be
// enough to read it, to learn that it exists, or to run it. A user may
// refer to a blob only after sending the daemon its bytes once (an upload
// checked against its digest); the daemon records that claim per uid
// (StateStore::AddBlobClaims) and:
//   - FindMissingBlobs reports a blob the caller has no claim on as missing,
//     even when the store holds it (another user's): their client uploads
//     it, which proves it and records the claim; nothing tells them someone
//     else has it;
//   - Write of such a blob reads and checks the whole stream instead of
//     answering "already stored" at once; QueryWriteStatus says it is not
//     there;
//   - SubmitRun refuses a snapshot with a blob the caller has no claim on
//     (FAILED_PRECONDITION, as for blobs the store lacks: the client then
//     asks about every blob and sends what it is told is missing), so a run
//     can never materialize content its submitter never had. A run's own files (outputs) are read only by its
//     owner (access.h), so "uploaded it or owns a run that uses it" is the
//     claim plus CheckRunOwner.
// Root and admin_group are exempt (they may read every run anyway); in user
// mode nothing here applies. The empty blob needs no proof.
//
// Thread-safety: free functions over ServiceDeps; thread-safe.
#pragma once

#include <sys/types.h>

#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "storage/digest.h"

namespace amld::daemon {

struct ServiceDeps;

// System mode and `caller` is neither root nor in admin_group.
bool MustProveContent(const ServiceDeps& deps, uid_t caller);

// What FindMissingBlobs answers `caller`: what the store lacks, then (when
// they must prove content) what it holds that they have no claim on.
absl::StatusOr<std::vector<amld::storage::Digest>> MissingFor(
    const ServiceDeps& deps, uid_t caller, const std::vector<amld::storage::Digest>& digests);

// Whether `caller` may refer to `d` without sending it (always, when they
// need no proof).
absl::StatusOr<bool> HasProof(const ServiceDeps& deps, uid_t caller,
                              const amld::storage::Digest& d);

// Records that `caller` sent these blobs, checked (system mode only).
absl::Status RecordProof(const ServiceDeps& deps, uid_t caller,
                         const std::vector<amld::storage::Digest>& digests);

// Records that `caller` had every blob of the snapshot `root`: the daemon
// read their folder with their own rights (Snapshots.IngestLocalFolder, a
// local ingest), which proves the content as an upload does.
absl::Status RecordSnapshotProof(const ServiceDeps& deps, uid_t caller,
                                 const amld::storage::Digest& root);

// OK when `caller` may run the snapshot `root`: every blob of the tree is
// theirs to refer to; FAILED_PRECONDITION naming one that is not, and how
// to send it.
absl::Status CheckSnapshotProof(const ServiceDeps& deps, uid_t caller,
                                const amld::storage::Digest& root);

}  // namespace amld::daemon
