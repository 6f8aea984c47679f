#include "daemon/sweeps/policies.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace amld::daemon {
namespace {

namespace pb = amld::v1;

struct Schedule {
  int interval;
  int delay;
};

Schedule ScheduleOf(const pb::EarlyTerminationPolicy& p) {
  switch (p.policy_case()) {
    case pb::EarlyTerminationPolicy::kBandit:
      return {p.bandit().evaluation_interval(), p.bandit().delay_evaluation()};
    case pb::EarlyTerminationPolicy::kMedianStopping:
      return {p.median_stopping().evaluation_interval(), p.median_stopping().delay_evaluation()};
    case pb::EarlyTerminationPolicy::kTruncationSelection:
      return {p.truncation_selection().evaluation_interval(),
              p.truncation_selection().delay_evaluation()};
    default:
      return {0, 0};
  }
}

bool Better(pb::PrimaryMetricGoal::Value goal, double a, double b) {
  return goal == pb::PrimaryMetricGoal::MINIMIZE ? a < b : a > b;
}

std::string Num(double x) { return absl::StrCat(x); }

std::optional<std::string> Bandit(const pb::BanditPolicy& b, pb::PrimaryMetricGoal::Value goal,
                                  const std::vector<std::vector<double>>& series, size_t c,
                                  int k) {
  double best = series[c][k - 1];
  for (const auto& s : series) {
    if (static_cast<int>(s.size()) >= k && Better(goal, s[k - 1], best)) best = s[k - 1];
  }
  const double v = series[c][k - 1];
  const bool maximize = goal != pb::PrimaryMetricGoal::MINIMIZE;
  bool stop;
  std::string slack;
  if (b.slack_factor() > 0) {
    stop = maximize ? v * (1 + b.slack_factor()) < best : v / (1 + b.slack_factor()) > best;
    slack = absl::StrCat("slack_factor ", Num(b.slack_factor()));
  } else {
    stop = maximize ? v + b.slack_amount() < best : v - b.slack_amount() > best;
    slack = absl::StrCat("slack_amount ", Num(b.slack_amount()));
  }
  if (!stop) return std::nullopt;
  return absl::StrCat(Num(v), " at interval ", k, " is outside the ", slack, " of the best, ",
                      Num(best));
}

std::optional<std::string> Median(pb::PrimaryMetricGoal::Value goal,
                                  const std::vector<std::vector<double>>& series, size_t c,
                                  int k) {
  std::vector<double> averages;
  for (size_t i = 0; i < series.size(); ++i) {
    if (i == c || static_cast<int>(series[i].size()) < k) continue;
    double sum = 0;
    for (int j = 0; j < k; ++j) sum += series[i][j];
    averages.push_back(sum / k);
  }
  if (averages.empty()) return std::nullopt;
  std::sort(averages.begin(), averages.end());
  const size_t n = averages.size();
  const double median = n % 2 ? averages[n / 2] : (averages[n / 2 - 1] + averages[n / 2]) / 2;
  double best = series[c][0];
  for (int j = 1; j < k; ++j) {
    if (Better(goal, series[c][j], best)) best = series[c][j];
  }
  if (!Better(goal, median, best)) return std::nullopt;
  return absl::StrCat("its best, ", Num(best), ", up to interval ", k,
                      " is worse than the median of the running averages, ", Num(median));
}

std::optional<std::string> Truncation(const pb::TruncationSelectionPolicy& t,
                                      pb::PrimaryMetricGoal::Value goal,
                                      const std::vector<std::vector<double>>& series, size_t c,
                                      int k) {
  std::vector<size_t> at_k;
  for (size_t i = 0; i < series.size(); ++i) {
    if (static_cast<int>(series[i].size()) >= k) at_k.push_back(i);
  }
  const size_t cut = at_k.size() * static_cast<size_t>(t.truncation_percentage()) / 100;
  if (cut == 0) return std::nullopt;
  // Worst first; ties keep the earlier child (the lower index) out of the cut.
  std::stable_sort(at_k.begin(), at_k.end(), [&](size_t a, size_t b) {
    return Better(goal, series[b][k - 1], series[a][k - 1]);
  });
  const auto pos = std::find(at_k.begin(), at_k.end(), c) - at_k.begin();
  if (static_cast<size_t>(pos) >= cut) return std::nullopt;
  return absl::StrCat(Num(series[c][k - 1]), " at interval ", k, " is among the lowest ",
                      t.truncation_percentage(), "% of ", at_k.size(), " runs");
}

}  // namespace

bool IsEvaluationInterval(const pb::EarlyTerminationPolicy& policy, int k) {
  if (policy.policy_case() == pb::EarlyTerminationPolicy::POLICY_NOT_SET || k < 1) return false;
  const Schedule s = ScheduleOf(policy);
  const int every = std::max(1, s.interval);
  return k % every == 0 && k >= s.delay;
}

std::optional<std::string> PolicyStops(const pb::EarlyTerminationPolicy& policy,
                                       pb::PrimaryMetricGoal::Value goal,
                                       const std::vector<std::vector<double>>& series,
                                       size_t candidate, int k) {
  if (!IsEvaluationInterval(policy, k) || candidate >= series.size() ||
      static_cast<int>(series[candidate].size()) < k) {
    return std::nullopt;
  }
  std::optional<std::string> why;
  switch (policy.policy_case()) {
    case pb::EarlyTerminationPolicy::kBandit:
      why = Bandit(policy.bandit(), goal, series, candidate, k);
      break;
    case pb::EarlyTerminationPolicy::kMedianStopping:
      why = Median(goal, series, candidate, k);
      break;
    case pb::EarlyTerminationPolicy::kTruncationSelection:
      why = Truncation(policy.truncation_selection(), goal, series, candidate, k);
      break;
    default:
      return std::nullopt;
  }
  if (!why) return std::nullopt;
  return absl::StrCat("stopped early by ", PolicyName(policy), ": ", *why);
}

std::string PolicyName(const pb::EarlyTerminationPolicy& policy) {
  switch (policy.policy_case()) {
    case pb::EarlyTerminationPolicy::kBandit: {
      const pb::BanditPolicy& b = policy.bandit();
      return absl::StrCat("BanditPolicy(",
                          b.slack_factor() > 0 ? absl::StrCat("slack_factor=", Num(b.slack_factor()))
                                               : absl::StrCat("slack_amount=", Num(b.slack_amount())),
                          ", evaluation_interval=", b.evaluation_interval(),
                          ", delay_evaluation=", b.delay_evaluation(), ")");
    }
    case pb::EarlyTerminationPolicy::kMedianStopping:
      return absl::StrCat("MedianStoppingPolicy(evaluation_interval=",
                          policy.median_stopping().evaluation_interval(),
                          ", delay_evaluation=", policy.median_stopping().delay_evaluation(), ")");
    case pb::EarlyTerminationPolicy::kTruncationSelection:
      return absl::StrCat("TruncationSelectionPolicy(truncation_percentage=",
                          policy.truncation_selection().truncation_percentage(),
                          ", evaluation_interval=", policy.truncation_selection().evaluation_interval(),
                          ", delay_evaluation=", policy.truncation_selection().delay_evaluation(),
                          ")");
    default:
      return "NoTerminationPolicy";
  }
}

}  // namespace amld::daemon
