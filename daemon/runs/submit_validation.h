// Submit validation: every check SubmitRun makes before a run is accepted,
// each failing with the code the contract documents (proto Runs.SubmitRun)
// and a message saying what to change.
//
// Thread-safety: free functions are thread-safe; SnapshotChecker is
// thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "amld/v1/runs.pb.h"
#include "base/relative_path.h"
#include "storage/cas.h"
#include "storage/digest.h"
#include "storage/snapshot/snapshot.h"

namespace amld::daemon {

// RunConfig.priority's range.
inline constexpr int kMinPriority = -100;
inline constexpr int kMaxPriority = 100;

// The checks that need only the config: experiment name, exactly one of
// script and command, script path, environment variable names (AMLD_* and
// CUDA_VISIBLE_DEVICES are amld's), duration, priority range, negative
// resources (INVALID_ARGUMENT); (not the compute target: RunManager::Submit checks it exists);
// options not honoured yet (UNIMPLEMENTED naming them: distributed,
// environment.pip_requirements, environment.docker_base_image).
absl::Status ValidateRunConfig(const amld::v1::RunConfig& config);

// The checks against the CAS: the whole snapshot tree is present
// (FAILED_PRECONDITION listing the missing digests) and the script is a file
// in it (FAILED_PRECONDITION). Trees found complete are remembered, so a
// resubmit of the same snapshot costs a set lookup, not a tree walk; so are
// their folders, so a tree that differs by a few files (an edit, a watched
// root) costs reading its new folders only.
//
// Blobs are never removed while the daemon runs except by CAS garbage
// collection, which must call Forget() for the roots it touches (it keeps
// every blob of a referenced snapshot anyway).
class SnapshotChecker {
 public:
  explicit SnapshotChecker(const amld::storage::ContentStore* cas) : cas_(cas) {}

  absl::Status Check(const amld::v1::RunConfig& config);
  void ForgetAll();

 private:
  absl::Status CheckTreeComplete(const amld::storage::Digest& root);

  const amld::storage::ContentStore* cas_;
  absl::Mutex mu_;
  absl::flat_hash_set<amld::storage::Digest> complete_roots_ ABSL_GUARDED_BY(mu_);
  // Folders of trees checked before, so a tree that differs from one
  // checked earlier by a few files costs reading its new folders only.
  amld::storage::CompleteDirs complete_dirs_ ABSL_GUARDED_BY(mu_);
};

}  // namespace amld::daemon
