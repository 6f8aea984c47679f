// Early termination policies (azureml.train.hyperdrive BanditPolicy,
// MedianStoppingPolicy, TruncationSelectionPolicy) as pure decisions over
// the primary metric's series of each child.
//
// An interval is one logged value of the primary metric: a child's series
// [v1, v2, ...] in step order, and interval k is its k-th value. A policy is
// applied to a child when it reaches an interval k that is a multiple of
// evaluation_interval (0 counts as 1) and at least delay_evaluation; the
// child is compared with every child (finished ones included) that reached
// k, as azureml's documentation describes:
//   Bandit: the best value at k among the children is B. MAXIMIZE stops a
//     child whose value v has v * (1 + slack_factor) < B, or
//     v + slack_amount < B; MINIMIZE one with v / (1 + slack_factor) > B, or
//     v - slack_amount > B.
//   MedianStopping: stops a child whose best value up to k is worse than
//     the median of the other children's running averages up to k.
//   TruncationSelection: ranks the children at k by their value at k and
//     stops a child among the lowest truncation_percentage percent
//     (floor(n * percentage / 100) children).
//
// Thread-safety: pure functions.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "amld/v1/sweep.pb.h"

namespace amld::daemon {

// True when `policy` is applied at interval k (1-based).
bool IsEvaluationInterval(const amld::v1::EarlyTerminationPolicy& policy, int k);

// Whether child `candidate` (an index into `series`) is stopped at
// interval `k`; the reason, naming the policy, when it is. nullopt when the
// policy does not apply at k, the candidate has not reached k, or it
// stays. `series` holds every child's values of the primary metric.
std::optional<std::string> PolicyStops(const amld::v1::EarlyTerminationPolicy& policy,
                                       amld::v1::PrimaryMetricGoal::Value goal,
                                       const std::vector<std::vector<double>>& series,
                                       size_t candidate, int k);

// The policy's name and settings as azureml writes them, e.g.
// "BanditPolicy(slack_factor=0.1, evaluation_interval=1, delay_evaluation=5)".
std::string PolicyName(const amld::v1::EarlyTerminationPolicy& policy);

}  // namespace amld::daemon
