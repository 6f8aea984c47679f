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
#include "storage/cas.h"
#include "storage/digest.h"

namespace amld::daemon {

// OK when `path` is relative, non-empty and has no "", "." or ".."
// component and no NUL; INVALID_ARGUMENT naming `what` otherwise.
absl::Status ValidateRelativePath(std::string_view path, std::string_view what);

// The checks that need only the config: experiment name, exactly one of
// script and command, script path, environment variable names, duration
// (INVALID_ARGUMENT); compute target (NOT_FOUND unless "" or "local");
// options not honoured yet (UNIMPLEMENTED naming them: distributed,
// environment.pip_requirements, environment.docker_base_image).
absl::Status ValidateRunConfig(const amld::v1::RunConfig& config);

// The checks against the CAS: the whole snapshot tree is present
// (FAILED_PRECONDITION listing the missing digests) and the script is a file
// in it (FAILED_PRECONDITION). Trees found complete are remembered, so a
// resubmit of the same snapshot costs a set lookup, not a tree walk.
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
};

}  // namespace amld::daemon
