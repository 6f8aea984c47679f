// What the three files of RunManager (run_manager.cc, run_manager_start.cc,
// run_manager_end.cc) share besides the class itself.
//
// Thread-safety: pure functions.
#pragma once

#include <string>

#include "absl/strings/str_cat.h"
#include "amld/v1/runs.pb.h"

namespace amld::daemon::run_manager_internal {

// "what: reason", or "what" without a reason.
inline std::string WithReason(std::string what, const std::string& reason) {
  if (!reason.empty()) absl::StrAppend(&what, ": ", reason);
  return what;
}

inline bool IsLocalTarget(const amld::v1::RunConfig& config) {
  return config.compute_target().empty() || config.compute_target() == "local";
}

}  // namespace amld::daemon::run_manager_internal
