#include "storage/run_status.h"

#include "absl/strings/str_cat.h"

namespace amld::storage {

namespace v1 = amld::v1;

bool IsTerminal(RunStatus s) {
  return s == v1::RunStatus::COMPLETED || s == v1::RunStatus::FAILED ||
         s == v1::RunStatus::CANCELED;
}

bool IsLegalTransition(RunStatus from, RunStatus to) {
  switch (from) {
    case v1::RunStatus::QUEUED:
    case v1::RunStatus::PREPARING:
    case v1::RunStatus::STARTING: {
      // Each may advance one step; a cancel before the process runs needs
      // nothing killed, so it may also go straight to CANCELED.
      RunStatus next = from == v1::RunStatus::QUEUED      ? v1::RunStatus::PREPARING
                       : from == v1::RunStatus::PREPARING ? v1::RunStatus::STARTING
                                                          : v1::RunStatus::RUNNING;
      return to == next || to == v1::RunStatus::CANCEL_REQUESTED || to == v1::RunStatus::CANCELED ||
             to == v1::RunStatus::FAILED;
    }
    case v1::RunStatus::RUNNING:
      // A running process ends through FINALIZING (its outputs are stored)
      // or FAILED (e.g. the daemon lost it); CANCELED needs a cancel asked.
      return to == v1::RunStatus::FINALIZING || to == v1::RunStatus::CANCEL_REQUESTED ||
             to == v1::RunStatus::FAILED;
    case v1::RunStatus::CANCEL_REQUESTED:
      return to == v1::RunStatus::FINALIZING || to == v1::RunStatus::CANCELED ||
             to == v1::RunStatus::FAILED;
    case v1::RunStatus::FINALIZING:
      return to == v1::RunStatus::COMPLETED || to == v1::RunStatus::FAILED ||
             to == v1::RunStatus::CANCELED;
    default:
      // Terminal statuses, UNKNOWN and values this build does not know.
      return false;
  }
}

std::vector<RunStatus> UnfinishedStatuses() {
  std::vector<RunStatus> out;
  for (int i = v1::RunStatus::Value_MIN; i <= v1::RunStatus::Value_MAX; ++i) {
    auto s = static_cast<RunStatus>(i);
    if (s != v1::RunStatus::UNKNOWN && v1::RunStatus_Value_IsValid(i) && !IsTerminal(s)) {
      out.push_back(s);
    }
  }
  return out;
}

std::string StatusName(RunStatus s) {
  if (v1::RunStatus_Value_IsValid(s)) return v1::RunStatus_Value_Name(s);
  return absl::StrCat("STATUS(", static_cast<int>(s), ")");
}

}  // namespace amld::storage
