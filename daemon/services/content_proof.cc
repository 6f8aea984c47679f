#include "daemon/services/content_proof.h"

#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "daemon/services/services.h"
#include "storage/snapshot/tree_queries.h"
#include "storage/state/state_store.h"

namespace amld::daemon {

using amld::storage::Digest;

bool MustProveContent(const ServiceDeps& deps, uid_t caller) {
  return deps.access.system_mode() && !deps.access.IsAdmin(caller);
}

absl::StatusOr<std::vector<Digest>> MissingFor(const ServiceDeps& deps, uid_t caller,
                                               const std::vector<Digest>& digests) {
  std::vector<Digest> missing = deps.cas->FindMissing(digests);
  if (!MustProveContent(deps, caller)) return missing;
  const absl::flat_hash_set<Digest> absent(missing.begin(), missing.end());
  std::vector<Digest> held;
  for (const Digest& d : digests) {
    if (d.size > 0 && !absent.contains(d)) held.push_back(d);
  }
  AMLD_ASSIGN_OR_RETURN(std::vector<Digest> unproven, deps.store->UnclaimedBlobs(caller, held));
  absl::flat_hash_set<Digest> listed(missing.begin(), missing.end());
  for (Digest& d : unproven) {
    if (listed.insert(d).second) missing.push_back(std::move(d));
  }
  return missing;
}

absl::StatusOr<bool> HasProof(const ServiceDeps& deps, uid_t caller, const Digest& d) {
  if (d.size == 0 || !MustProveContent(deps, caller)) return true;
  AMLD_ASSIGN_OR_RETURN(std::vector<Digest> unproven, deps.store->UnclaimedBlobs(caller, {d}));
  return unproven.empty();
}

absl::Status RecordProof(const ServiceDeps& deps, uid_t caller,
                         const std::vector<Digest>& digests) {
  if (!deps.access.system_mode() || digests.empty()) return absl::OkStatus();
  return deps.store->AddBlobClaims(caller, digests);
}

namespace {

// Every non-empty blob of the tree under `root`, sorted.
absl::StatusOr<std::vector<Digest>> TreeBlobs(const ServiceDeps& deps, const Digest& root) {
  AMLD_RETURN_IF_ERROR(amld::storage::ValidateDigest(root));
  absl::flat_hash_set<Digest> tree;
  AMLD_RETURN_IF_ERROR(amld::storage::CollectTreeDigests(*deps.cas, root, &tree));
  std::vector<Digest> blobs;
  for (const Digest& d : tree) {
    if (d.size > 0) blobs.push_back(d);
  }
  std::sort(blobs.begin(), blobs.end());
  return blobs;
}

}  // namespace

absl::Status RecordSnapshotProof(const ServiceDeps& deps, uid_t caller, const Digest& root) {
  if (!MustProveContent(deps, caller)) return absl::OkStatus();
  AMLD_ASSIGN_OR_RETURN(std::vector<Digest> blobs, TreeBlobs(deps, root));
  return RecordProof(deps, caller, blobs);
}

absl::Status CheckSnapshotProof(const ServiceDeps& deps, uid_t caller, const Digest& root) {
  if (!MustProveContent(deps, caller)) return absl::OkStatus();
  AMLD_ASSIGN_OR_RETURN(std::vector<Digest> blobs, TreeBlobs(deps, root));
  // What the store lacks is the submit's own error to report (it names the
  // missing blobs); proof is about what it holds.
  const std::vector<Digest> lacking = deps.cas->FindMissing(blobs);
  const absl::flat_hash_set<Digest> absent(lacking.begin(), lacking.end());
  blobs.erase(std::remove_if(blobs.begin(), blobs.end(),
                             [&](const Digest& d) { return absent.contains(d); }),
              blobs.end());
  AMLD_ASSIGN_OR_RETURN(std::vector<Digest> unproven, deps.store->UnclaimedBlobs(caller, blobs));
  if (unproven.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "snapshot ", root.ToString(), " holds ", unproven.size(), " of ", blobs.size(),
      " blobs you never sent this daemon (e.g. ", unproven.front().ToString(),
      "): on a shared daemon a digest alone does not give access to content; submit from your "
      "source folder (aml run submit, or the SDK), which uploads what the daemon asks for"));
}

}  // namespace amld::daemon
