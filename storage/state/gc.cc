#include "storage/state/gc.h"

#include "absl/container/flat_hash_set.h"
#include "storage/snapshot/snapshot.h"
#include "base/status_macros.h"

namespace amld::storage {

absl::StatusOr<GcStats> CollectUnreferencedBlobs(StateStore& state, ContentStore& cas,
                                                 absl::Duration min_age) {
  AMLD_ASSIGN_OR_RETURN(StateStore::References refs, state.ReferencedDigests());
  absl::flat_hash_set<Digest> live(refs.artifacts.begin(), refs.artifacts.end());
  for (const Digest& root : refs.snapshot_roots) {
    live.insert(root);
    // A corrupt tree stops the collection: deleting what it might still
    // reference would turn a repairable problem into lost data.
    AMLD_RETURN_IF_ERROR(CollectTreeDigests(cas, root, &live));
  }
  return cas.CollectGarbage(live, min_age);
}

}  // namespace amld::storage
