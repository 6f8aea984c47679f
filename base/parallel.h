// ParallelFor: runs independent jobs on a few threads and reports the error
// of the lowest failing index, so that the message does not depend on
// scheduling. Used to hash and store snapshot files, materialize trees and
// upload blobs.
//
// Thread-safety: free functions; `fn` is called from several threads at once.
#pragma once

#include <cstddef>
#include <functional>

#include "absl/status/status.h"

namespace amld::base {

// Runs fn(0..n-1) on up to `threads` threads (the caller's among them). After
// the first failure no new index is started.
absl::Status ParallelFor(size_t n, int threads, const std::function<absl::Status(size_t)>& fn);

// `threads` when positive, else one per core.
int ResolveThreads(int threads);

}  // namespace amld::base
