// The life of a run as statuses: the one table of legal status changes
// (IsLegalTransition) and the statuses a run ends in (IsTerminal). The
// StateStore refuses every change this table does not allow; everyone else
// asks these functions rather than listing statuses by hand.
//
//   QUEUED → PREPARING → STARTING → RUNNING → FINALIZING → COMPLETED
//   any of the first three → CANCEL_REQUESTED, CANCELED or FAILED
//   RUNNING → CANCEL_REQUESTED or FAILED
//   CANCEL_REQUESTED → FINALIZING, CANCELED or FAILED
//   FINALIZING → COMPLETED, FAILED or CANCELED
//   COMPLETED, FAILED, CANCELED: terminal, nothing leaves them
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <vector>

#include "amld/v1/runs.pb.h"

namespace amld::storage {

using RunStatus = amld::v1::RunStatus::Value;

// True for COMPLETED, FAILED and CANCELED.
bool IsTerminal(RunStatus s);
// The one table of legal status changes.
bool IsLegalTransition(RunStatus from, RunStatus to);
// Every status a run can be in that is not terminal (a run in one of them
// still needs its compute target), in enum order; UNKNOWN excluded.
std::vector<RunStatus> UnfinishedStatuses();
// "QUEUED", "RUNNING", ...; "STATUS(42)" for a value this build does not know.
std::string StatusName(RunStatus s);

}  // namespace amld::storage
