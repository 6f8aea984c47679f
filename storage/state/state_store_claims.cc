// Which uid has proved it holds which blob (table blob_claims, schema
// version 7): the state behind system mode's proof of content
// (daemon/services/content_proof.h).
#include <vector>

#include "base/status_macros.h"
#include "storage/state/state_store.h"
#include "storage/state/state_store_internal.h"

namespace amld::storage {

absl::Status StateStore::AddBlobClaims(uint32_t uid, const std::vector<Digest>& digests) {
  if (digests.empty()) return absl::OkStatus();
  absl::MutexLock lock(&impl_->mu);
  return impl_->db.InWriteTransaction([&]() -> absl::Status {
    for (const Digest& d : digests) {
      AMLD_ASSIGN_OR_RETURN(
          Stmt insert,
          impl_->db.Prepare("INSERT OR IGNORE INTO blob_claims (uid, hash) VALUES (?, ?)"));
      insert.BindInt(1, uid).BindText(2, d.hash);
      AMLD_RETURN_IF_ERROR(insert.Run());
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<Digest>> StateStore::UnclaimedBlobs(uint32_t uid,
                                                              const std::vector<Digest>& digests) {
  std::vector<Digest> unclaimed;
  if (digests.empty()) return unclaimed;
  absl::MutexLock lock(&impl_->mu);
  for (const Digest& d : digests) {
    AMLD_ASSIGN_OR_RETURN(Stmt find,
                          impl_->db.Prepare("SELECT 1 FROM blob_claims WHERE uid=? AND hash=?"));
    find.BindInt(1, uid).BindText(2, d.hash);
    AMLD_ASSIGN_OR_RETURN(bool found, find.Step());
    if (!found) unclaimed.push_back(d);
  }
  return unclaimed;
}

}  // namespace amld::storage
