// A sweep's children ranked by its primary metric: what `aml sweep show`
// tabulates and `aml run show` of a sweep sums up.
//
// Thread-safety: thread-compatible (one call, its own gRPC calls).
#pragma once

#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "amld/v1/runs.pb.h"
#include "client/connection.h"

namespace amld::client::commands {

struct SweepChild {
  amld::v1::Run run;
  std::optional<double> best;  // its best value of the primary metric
  int logged = 0;              // values of the primary metric it logged
};

// Every child of `parent` (which has a sweep spec), best first by the
// primary metric and its goal; children without a value last, newest first.
absl::StatusOr<std::vector<SweepChild>> RankSweepChildren(const Connection& conn,
                                                          const amld::v1::Run& parent);

}  // namespace amld::client::commands
