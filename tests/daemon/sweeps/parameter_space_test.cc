// The parameter space: checks of a spec, each distribution's draws
// (bounds, q-rounding, log scales, moments), seeded reproducibility, grid
// completeness, and the arguments a child gets.
#include "daemon/sweeps/parameter_space.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <set>

namespace amld::daemon {
namespace {

namespace pb = amld::v1;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

pb::ParameterExpression Expr(const std::string& name, const std::string& dist,
                             std::vector<double> args) {
  pb::ParameterExpression p;
  p.set_name(name);
  p.set_distribution(dist);
  for (double a : args) p.add_args(a);
  return p;
}

pb::ParameterExpression Choice(const std::string& name, std::vector<double> numbers) {
  pb::ParameterExpression p = Expr(name, "choice", {});
  for (double n : numbers) p.add_choices()->set_number(n);
  return p;
}

pb::SweepSpec Spec(std::vector<pb::ParameterExpression> params,
                   pb::SamplingAlgorithm::Value sampling = pb::SamplingAlgorithm::RANDOM) {
  pb::SweepSpec s;
  for (auto& p : params) *s.add_parameters() = p;
  s.set_sampling(sampling);
  s.set_primary_metric_name("loss");
  s.set_primary_metric_goal(pb::PrimaryMetricGoal::MINIMIZE);
  s.set_max_total_runs(4);
  return s;
}

std::string Error(const pb::SweepSpec& s) { return std::string(ValidateSweepSpec(s).message()); }

TEST(ParameterSpaceTest, ValidationSaysWhatToChange) {
  EXPECT_TRUE(ValidateSweepSpec(Spec({Expr("lr", "uniform", {0.1, 1})})).ok());
  EXPECT_THAT(Error(Spec({Expr("lr", "gaussian", {0, 1})})), HasSubstr("unknown distribution"));
  EXPECT_THAT(Error(Spec({Expr("lr", "quniform", {0, 1})})),
              HasSubstr("quniform takes 3 argument(s): quniform(min_value, max_value, q)"));
  EXPECT_THAT(Error(Spec({Expr("lr", "uniform", {2, 1})})), HasSubstr("min_value <= max_value"));
  EXPECT_THAT(Error(Spec({Expr("lr", "qnormal", {0, 1, 0})})), HasSubstr("q > 0"));
  EXPECT_THAT(Error(Spec({Expr("lr", "normal", {0, -1})})), HasSubstr("sigma >= 0"));
  EXPECT_THAT(Error(Spec({Expr("n", "randint", {0})})), HasSubstr("upper >= 1"));
  EXPECT_THAT(Error(Spec({Expr("lr", "uniform", {0, 1}), Expr("--lr", "uniform", {0, 1})})),
              HasSubstr("--lr is given twice"));
  EXPECT_THAT(Error(Spec({Expr("a b", "uniform", {0, 1})})), HasSubstr("not usable"));
  EXPECT_THAT(Error(Spec({Expr("lr", "uniform", {0, 1})}, pb::SamplingAlgorithm::GRID)),
              HasSubstr("grid sampling takes choice() parameters only"));
  pb::SweepSpec grid = Spec({Choice("a", {1, 2})}, pb::SamplingAlgorithm::GRID);
  grid.set_max_total_runs(3);
  EXPECT_THAT(Error(grid), HasSubstr("more than the grid's 2 combinations"));
  pb::SweepSpec bayes = Spec({Expr("lr", "uniform", {0, 1})}, pb::SamplingAlgorithm::BAYESIAN);
  bayes.mutable_policy()->mutable_median_stopping();
  EXPECT_THAT(Error(bayes), HasSubstr("does not support early termination"));
  pb::SweepSpec bandit = Spec({Expr("lr", "uniform", {0, 1})});
  bandit.mutable_policy()->mutable_bandit()->set_slack_factor(0.1);
  bandit.mutable_policy()->mutable_bandit()->set_slack_amount(0.1);
  EXPECT_THAT(Error(bandit), HasSubstr("exactly one of slack_factor and slack_amount"));
  pb::SweepSpec no_metric = Spec({Expr("lr", "uniform", {0, 1})});
  no_metric.clear_primary_metric_name();
  EXPECT_THAT(Error(no_metric), HasSubstr("primary_metric_name"));
}

// Draws of one expression from the seeded sequence of a sweep.
std::vector<double> Draws(const pb::ParameterExpression& p, int n, uint64_t seed = 7) {
  pb::SweepSpec s = Spec({p});
  std::vector<double> out;
  for (int i = 0; i < n; ++i) out.push_back(RandomAssignment(s, seed, i)[0].second.number());
  return out;
}

double Mean(const std::vector<double>& xs) {
  double sum = 0;
  for (double x : xs) sum += x;
  return sum / xs.size();
}
double StdDev(const std::vector<double>& xs) {
  const double m = Mean(xs);
  double sum = 0;
  for (double x : xs) sum += (x - m) * (x - m);
  return std::sqrt(sum / xs.size());
}
bool IsMultiple(double x, double q) { return std::abs(x / q - std::round(x / q)) < 1e-9; }

TEST(ParameterSpaceTest, EachDistributionDrawsWithAzuremlsMeaning) {
  constexpr int kN = 4000;
  for (double x : Draws(Expr("n", "randint", {5}), kN)) {
    EXPECT_TRUE(x >= 0 && x < 5 && x == std::floor(x)) << x;
  }
  std::vector<double> uniform = Draws(Expr("x", "uniform", {-2, 3}), kN);
  for (double x : uniform) EXPECT_TRUE(x >= -2 && x < 3) << x;
  EXPECT_NEAR(Mean(uniform), 0.5, 0.1);
  for (double x : Draws(Expr("x", "quniform", {0, 100, 8}), kN)) {
    EXPECT_TRUE(IsMultiple(x, 8) && x >= 0 && x <= 104) << x;
  }
  std::vector<double> logu = Draws(Expr("x", "loguniform", {std::log(1e-4), std::log(1e-1)}), kN);
  for (double x : logu) EXPECT_TRUE(x >= 1e-4 * 0.999999 && x <= 1e-1) << x;
  std::vector<double> logs;
  for (double x : logu) logs.push_back(std::log(x));
  EXPECT_NEAR(Mean(logs), (std::log(1e-4) + std::log(1e-1)) / 2, 0.15);  // uniform in log space
  for (double x : Draws(Expr("x", "qloguniform", {0, std::log(1000), 10}), kN)) {
    EXPECT_TRUE(IsMultiple(x, 10) && x >= 0 && x <= 1000) << x;
  }
  std::vector<double> normal = Draws(Expr("x", "normal", {10, 3}), kN);
  EXPECT_NEAR(Mean(normal), 10, 0.2);
  EXPECT_NEAR(StdDev(normal), 3, 0.2);
  for (double x : Draws(Expr("x", "qnormal", {10, 3, 2}), kN)) EXPECT_TRUE(IsMultiple(x, 2)) << x;
  std::vector<double> lognormal = Draws(Expr("x", "lognormal", {0, 0.5}), kN);
  std::vector<double> lognormal_logs;
  for (double x : lognormal) {
    EXPECT_GT(x, 0);
    lognormal_logs.push_back(std::log(x));
  }
  EXPECT_NEAR(Mean(lognormal_logs), 0, 0.05);
  EXPECT_NEAR(StdDev(lognormal_logs), 0.5, 0.05);
  for (double x : Draws(Expr("x", "qlognormal", {2, 1, 5}), kN)) {
    EXPECT_TRUE(IsMultiple(x, 5) && x >= 0) << x;
  }
  std::set<double> seen;
  for (double x : Draws(Choice("c", {16, 32, 64}), 300)) seen.insert(x);
  EXPECT_THAT(seen, ElementsAre(16, 32, 64));
}

TEST(ParameterSpaceTest, ASeedMakesTheSequenceReproducibleAndEachChildDifferent) {
  pb::SweepSpec s = Spec({Expr("lr", "loguniform", {-6, -1}), Choice("batch", {16, 32, 64})});
  std::set<std::string> distinct;
  for (int i = 0; i < 20; ++i) {
    const std::string a = ChildConfig({}, RandomAssignment(s, 42, i)).tags().at("hyperparameters");
    EXPECT_EQ(a, ChildConfig({}, RandomAssignment(s, 42, i)).tags().at("hyperparameters"));
    distinct.insert(a);
  }
  EXPECT_EQ(distinct.size(), 20u);
  EXPECT_NE(RandomAssignment(s, 42, 0)[0].second.number(),
            RandomAssignment(s, 43, 0)[0].second.number());
}

TEST(ParameterSpaceTest, AGridVisitsEveryCombinationOnce) {
  pb::ParameterExpression optimizer = Expr("optimizer", "choice", {});
  optimizer.add_choices()->set_text("adam");
  optimizer.add_choices()->set_text("sgd");
  pb::SweepSpec s = Spec({Choice("batch", {16, 32, 64}), optimizer}, pb::SamplingAlgorithm::GRID);
  s.set_max_total_runs(0);
  ASSERT_TRUE(ValidateSweepSpec(s).ok());
  EXPECT_EQ(GridSize(s), 6);
  EXPECT_EQ(NormalizeSweepSpec(s).max_total_runs(), 6);
  std::set<std::vector<std::string>> combos;
  for (int i = 0; i < 6; ++i) {
    pb::RunConfig c = ChildConfig({}, GridAssignment(s, i));
    combos.insert({c.arguments().begin(), c.arguments().end()});
  }
  EXPECT_EQ(combos.size(), 6u);
  EXPECT_THAT(*combos.begin(), ElementsAre("--batch", "16", "--optimizer", "adam"));
}

TEST(ParameterSpaceTest, AChildGetsTheParentsConfigPlusNameValueArguments) {
  pb::RunConfig parent;
  parent.set_script("train.py");
  parent.add_arguments("--epochs");
  parent.add_arguments("3");
  parent.mutable_sweep()->set_primary_metric_name("loss");
  pb::ParameterValue lr, batch, opt;
  lr.set_number(0.001);
  batch.set_number(32);
  opt.set_text("adam");
  pb::RunConfig child = ChildConfig(parent, {{"--lr", lr}, {"batch_size", batch}, {"opt", opt}});
  EXPECT_FALSE(child.has_sweep());
  EXPECT_THAT(child.arguments(), ElementsAre("--epochs", "3", "--lr", "0.001", "--batch_size", "32",
                                             "--opt", "adam"));
  EXPECT_EQ(child.tags().at("hyperparameters"),
            R"({"--lr": 0.001, "batch_size": 32, "opt": "adam"})");
  pb::ParameterValue tiny;
  tiny.set_number(1e-5);
  EXPECT_EQ(FormatParameterValue(tiny), "1e-05");
  tiny.set_number(0.30000000000000004);
  EXPECT_EQ(FormatParameterValue(tiny), "0.30000000000000004");
}

TEST(ParameterSpaceTest, SearchSpaceReferencesAreReplacedInsteadOfAppended) {
  pb::RunConfig parent;
  parent.set_command("python train.py --lr ${{search_space.lr}} --opt ${{search_space.opt}}");
  parent.add_arguments("--tag=${{search_space.opt}}");
  *parent.mutable_sweep()->add_parameters() = Expr("lr", "uniform", {0, 1});
  *parent.mutable_sweep()->add_parameters() = Expr("--opt", "choice", {});
  EXPECT_TRUE(ValidateChildTemplate(parent).ok());
  pb::ParameterValue lr, opt;
  lr.set_number(0.5);
  opt.set_text("adam w");
  pb::RunConfig child = ChildConfig(parent, {{"lr", lr}, {"--opt", opt}});
  EXPECT_EQ(child.command(), "python train.py --lr 0.5 --opt 'adam w'");
  EXPECT_THAT(child.arguments(), ElementsAre("--tag=adam w"));
  parent.set_command("python train.py --x ${{search_space.x}}");
  EXPECT_THAT(std::string(ValidateChildTemplate(parent).message()),
              HasSubstr("${{search_space.x}} names no parameter"));
}

}  // namespace
}  // namespace amld::daemon
