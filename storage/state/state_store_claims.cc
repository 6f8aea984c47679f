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

absl::Status StateStore::RemoveBlobClaims(const std::vector<std::string>& hashes) {
  if (hashes.empty()) return absl::OkStatus();
  absl::MutexLock lock(&impl_->mu);
  return impl_->db.InWriteTransaction([&]() -> absl::Status {
    // The key is (uid, hash) and a machine has few users: one indexed
    // delete per uid and hash, the uids found by stepping along the key
    // (no index by hash to keep up on every claim).
    int64_t after = -1;
    for (;;) {
      AMLD_ASSIGN_OR_RETURN(Stmt next,
                            impl_->db.Prepare("SELECT MIN(uid) FROM blob_claims WHERE uid > ?"));
      next.BindInt(1, after);
      AMLD_ASSIGN_OR_RETURN(bool row, next.Step());
      if (!row || next.IsNull(0)) return absl::OkStatus();
      after = next.Int(0);
      for (const std::string& hash : hashes) {
        AMLD_ASSIGN_OR_RETURN(
            Stmt remove, impl_->db.Prepare("DELETE FROM blob_claims WHERE uid=? AND hash=?"));
        remove.BindInt(1, after).BindText(2, hash);
        AMLD_RETURN_IF_ERROR(remove.Run());
      }
    }
  });
}

}  // namespace amld::storage
