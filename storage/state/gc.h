// Garbage collection of the content-addressed store: removes every object
// that no run refers to — neither through its snapshot tree nor as an
// artifact.
//
// Blobs uploaded for a run that is not submitted yet are referenced by
// nothing; objects younger than `min_age` are therefore always kept, so a
// collection can run while clients upload.
//
// Thread-safety: safe to run while the daemon works, provided runs are only
// added with snapshots younger than min_age.
#pragma once

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "storage/cas.h"
#include "storage/state/state_store.h"

namespace amld::storage {

absl::StatusOr<GcStats> CollectUnreferencedBlobs(StateStore& state, ContentStore& cas,
                                                 absl::Duration min_age = absl::Hours(1));

}  // namespace amld::storage
