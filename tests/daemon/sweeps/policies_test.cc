// Early termination policies decided on recorded metric series, with the
// cases of azureml's documentation.
#include "daemon/sweeps/policies.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace amld::daemon {
namespace {

namespace pb = amld::v1;
using ::testing::HasSubstr;
using ::testing::Optional;
constexpr auto kMax = pb::PrimaryMetricGoal::MAXIMIZE;
constexpr auto kMin = pb::PrimaryMetricGoal::MINIMIZE;

pb::EarlyTerminationPolicy Bandit(double factor, double amount, int interval, int delay) {
  pb::EarlyTerminationPolicy p;
  p.mutable_bandit()->set_slack_factor(factor);
  p.mutable_bandit()->set_slack_amount(amount);
  p.mutable_bandit()->set_evaluation_interval(interval);
  p.mutable_bandit()->set_delay_evaluation(delay);
  return p;
}

TEST(PoliciesTest, BanditComparesWithTheBestAtTheSameIntervalWithinTheSlack) {
  // azureml: slack_factor 0.2, the best run's AUC 0.8 at the interval: a run
  // whose Y * 1.2 < 0.8 is canceled.
  pb::EarlyTerminationPolicy p = Bandit(0.2, 0, 1, 0);
  std::vector<std::vector<double>> auc = {{0.5, 0.8}, {0.5, 0.6}, {0.5, 0.7}};
  EXPECT_THAT(PolicyStops(p, kMax, auc, 1, 2),
              Optional(HasSubstr("stopped early by BanditPolicy(slack_factor=0.2, "
                                 "evaluation_interval=1, delay_evaluation=0): 0.6 at interval 2 "
                                 "is outside the slack_factor 0.2 of the best, 0.8")));
  EXPECT_EQ(PolicyStops(p, kMax, auc, 2, 2), std::nullopt);  // 0.84 >= 0.8
  EXPECT_EQ(PolicyStops(p, kMax, auc, 0, 2), std::nullopt);  // the best itself
  EXPECT_EQ(PolicyStops(p, kMax, auc, 1, 1), std::nullopt);  // all equal at interval 1
  // Minimizing a loss with an absolute slack of 0.2.
  pb::EarlyTerminationPolicy amount = Bandit(0, 0.2, 1, 0);
  std::vector<std::vector<double>> loss = {{1.0}, {1.3}, {1.1}};
  EXPECT_THAT(PolicyStops(amount, kMin, loss, 1, 1), Optional(HasSubstr("slack_amount 0.2")));
  EXPECT_EQ(PolicyStops(amount, kMin, loss, 2, 1), std::nullopt);
  // Minimizing with a factor: 1.0 * 1.1 = 1.1 is the limit.
  EXPECT_NE(PolicyStops(Bandit(0.1, 0, 1, 0), kMin, {{1.0}, {1.2}}, 1, 1), std::nullopt);
  EXPECT_EQ(PolicyStops(Bandit(0.1, 0, 1, 0), kMin, {{1.0}, {1.05}}, 1, 1), std::nullopt);
}

TEST(PoliciesTest, EvaluationIntervalAndDelaySayWhenAPolicyApplies) {
  // azureml: evaluation_interval 1, delay_evaluation 5: from the 5th interval on.
  pb::EarlyTerminationPolicy p = Bandit(0.1, 0, 1, 5);
  for (int k = 1; k <= 4; ++k) EXPECT_FALSE(IsEvaluationInterval(p, k)) << k;
  for (int k = 5; k <= 8; ++k) EXPECT_TRUE(IsEvaluationInterval(p, k)) << k;
  // Every multiple of the interval that is at least the delay.
  pb::EarlyTerminationPolicy every3 = Bandit(0.1, 0, 3, 4);
  EXPECT_FALSE(IsEvaluationInterval(every3, 3));
  EXPECT_FALSE(IsEvaluationInterval(every3, 4));
  EXPECT_TRUE(IsEvaluationInterval(every3, 6));
  EXPECT_FALSE(IsEvaluationInterval(every3, 7));
  EXPECT_TRUE(IsEvaluationInterval(every3, 9));
  // A bad run is left alone before the delay.
  std::vector<std::vector<double>> s = {{1, 1, 1, 1, 1}, {9, 9, 9, 9, 9}};
  EXPECT_EQ(PolicyStops(p, kMin, s, 1, 4), std::nullopt);
  EXPECT_NE(PolicyStops(p, kMin, s, 1, 5), std::nullopt);
  EXPECT_FALSE(IsEvaluationInterval(pb::EarlyTerminationPolicy(), 1));  // no policy
}

TEST(PoliciesTest, MedianStoppingComparesTheBestWithTheMedianOfRunningAverages) {
  pb::EarlyTerminationPolicy p;
  p.mutable_median_stopping()->set_evaluation_interval(1);
  p.mutable_median_stopping()->set_delay_evaluation(3);
  std::vector<std::vector<double>> acc = {{0.5, 0.6, 0.7}, {0.6, 0.7, 0.8}, {0.2, 0.3, 0.3}};
  // C's best 0.3 < median(0.6, 0.7) = 0.65.
  EXPECT_THAT(PolicyStops(p, kMax, acc, 2, 3),
              Optional(HasSubstr("its best, 0.3, up to interval 3 is worse than the median of "
                                 "the running averages, 0.65")));
  // A's best 0.7 >= median(0.7, 0.2667).
  EXPECT_EQ(PolicyStops(p, kMax, acc, 0, 3), std::nullopt);
  EXPECT_EQ(PolicyStops(p, kMax, acc, 2, 2), std::nullopt);  // before the delay
  // Alone, there is no median to compare with.
  EXPECT_EQ(PolicyStops(p, kMax, {{0.1, 0.1, 0.1}}, 0, 3), std::nullopt);
  // Minimizing: the best is the lowest.
  std::vector<std::vector<double>> loss = {{3, 2, 1}, {3, 2, 1.5}, {4, 3.5, 3.2}};
  EXPECT_NE(PolicyStops(p, kMin, loss, 2, 3), std::nullopt);
  EXPECT_EQ(PolicyStops(p, kMin, loss, 1, 3), std::nullopt);
}

TEST(PoliciesTest, TruncationSelectionStopsTheLowestPercentAtTheInterval) {
  pb::EarlyTerminationPolicy p;
  p.mutable_truncation_selection()->set_truncation_percentage(20);
  p.mutable_truncation_selection()->set_evaluation_interval(1);
  p.mutable_truncation_selection()->set_delay_evaluation(5);
  // azureml: 20%, interval 1, delay 5: from the 5th interval, the lowest
  // 20% of runs by the metric at that interval.
  std::vector<std::vector<double>> acc(5, std::vector<double>(5, 0.9));
  acc[3] = {0.9, 0.9, 0.9, 0.9, 0.1};
  EXPECT_THAT(PolicyStops(p, kMax, acc, 3, 5),
              Optional(HasSubstr("0.1 at interval 5 is among the lowest 20% of 5 runs")));
  EXPECT_EQ(PolicyStops(p, kMax, acc, 0, 5), std::nullopt);
  EXPECT_EQ(PolicyStops(p, kMax, acc, 3, 4), std::nullopt);  // before the delay
  // 20% of 4 runs is no run.
  acc.pop_back();
  EXPECT_EQ(PolicyStops(p, kMax, acc, 3, 5), std::nullopt);
  // 50% of 4, minimizing: the two highest losses.
  p.mutable_truncation_selection()->set_truncation_percentage(50);
  p.mutable_truncation_selection()->set_delay_evaluation(0);
  std::vector<std::vector<double>> loss = {{1}, {4}, {2}, {3}};
  EXPECT_NE(PolicyStops(p, kMin, loss, 1, 1), std::nullopt);
  EXPECT_NE(PolicyStops(p, kMin, loss, 3, 1), std::nullopt);
  EXPECT_EQ(PolicyStops(p, kMin, loss, 0, 1), std::nullopt);
  EXPECT_EQ(PolicyStops(p, kMin, loss, 2, 1), std::nullopt);
}

}  // namespace
}  // namespace amld::daemon
