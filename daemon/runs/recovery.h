// Recovery: what the daemon does at start with each run the state store
// holds unfinished. What was persisted decides, and nothing is ever launched
// twice:
//   QUEUED            stays queued, in the original order; one the target
//                     can no longer hold (the config shrank) is FAILED saying
//                     so, never left queued.
//   PREPARING         nothing was launched (STARTING is committed before any
//                     launch): the half-made run folder is removed and the
//                     run prepared again.
//   STARTING          with a handle: the launch finished, so it is re-adopted
//                     (→ RUNNING, unless the executor says during Reattach
//                     that it still waits elsewhere). Without one the daemon
//                     died inside Launch and cannot know whether the process
//                     started: FAILED, saying so and to resubmit — never a
//                     blind second launch.
//   RUNNING, FINALIZING, CANCEL_REQUESTED with a handle: Executor::Reattach;
//                     a run that ended meanwhile reports its exit at once and
//                     is finalized (again: storing artifacts is idempotent);
//                     a CANCEL_REQUESTED run is sent its cancel again. Its
//                     folders are watched again first, with a full rescan.
//   without a handle  RUNNING/FINALIZING: FAILED "daemon lost the run";
//                     CANCEL_REQUESTED: CANCELED (it never started).
//   Reattach failure  FAILED "daemon lost the run after a restart: …".
// Re-adopted runs hold slots even beyond the limit, and keep the GPUs they
// were given (Run.assigned_gpus, recorded with PREPARING); nothing new starts
// until every run found at start is taken over.
//
// DecideRecovery is that table as a pure function; RunManager::Start applies
// it (its definition lives in recovery.cc, beside the rules).
//
// Thread-safety: free functions, thread-safe.
#pragma once

#include <string>

#include "absl/strings/string_view.h"
#include "storage/state/state_store.h"

namespace amld::daemon {

struct RecoveryStep {
  enum class Action {
    kRequeue,       // QUEUED: back into the queue, if the target still holds it
    kPrepareAgain,  // PREPARING: its slot and GPUs kept, prepared afresh
    kReattach,      // a process was launched and its handle recorded
    kEnd,           // ended now with `end_status` and `error`
  };
  Action action = Action::kRequeue;
  // kReattach of a CANCEL_REQUESTED run: send the cancel again.
  bool cancel_again = false;
  amld::storage::RunStatus end_status = amld::v1::RunStatus::FAILED;
  std::string error;
};

// The step for a run found in `status` (not terminal), with or without a
// recorded executor handle.
RecoveryStep DecideRecovery(amld::storage::RunStatus status, bool has_handle);

// The error of a queued run that no longer fits the target: `why` says how.
std::string NoLongerFitsError(absl::string_view why);
// The error of a run whose Executor::Reattach failed with `why`.
std::string ReattachFailedError(absl::string_view why);

}  // namespace amld::daemon
