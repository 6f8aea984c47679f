// The sweep controller stepped by hand: a fake executor ends children's
// "processes", metrics arrive by appending to the state store (as live
// ingestion does), a fake clock moves time, and Step() stands for the
// daemon's thread. No sleeps.
#include "daemon/sweeps/sweep_controller.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include "absl/strings/str_cat.h"
#include "daemon/sweeps/parameter_space.h"
#include "storage/snapshot/snapshot.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/fake_executor.h"
#include "tests/testing/fake_task_runner.h"
#include "tests/testing/test_util.h"

namespace amld::daemon {
namespace {

namespace pb = amld::v1;
using amld::storage::ContentStore;
using amld::storage::StateStore;
using Status = amld::v1::RunStatus;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::SizeIs;

class SweepControllerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = *StateStore::Open(dir_ / "amld.db");
    cas_ = *ContentStore::Open(dir_ / "cas");
    testing::WriteFile(dir_ / "src/train.py", "print('hi')\n");
    auto snapshot = amld::storage::BuildSnapshot(dir_ / "src");
    ASSERT_TRUE(snapshot.ok()) << snapshot.status();
    ASSERT_TRUE(amld::storage::StoreSnapshot(*snapshot, *cas_).ok());
    root_ = snapshot->root;
    StartDaemon();
  }

  // What Daemon::Start does, in order; again after StopDaemon is a restart.
  void StartDaemon() {
    RunManagerOptions options;
    options.folders.runs_root = dir_ / "runs";
    options.max_concurrent_runs = 8;
    options.base_env = {{"PATH", "/usr/bin:/bin"}};
    executor_ = std::make_unique<testing::FakeExecutor>();
    manager_ = std::make_unique<RunManager>(
        RunManagerDeps{store_.get(), cas_.get(), executor_.get(), &clock_, &tasks_, nullptr},
        options);
    ASSERT_TRUE(manager_->Start().ok());
    sweeps_ = std::make_unique<SweepController>(
        SweepControllerDeps{manager_.get(), store_.get(), &clock_, nullptr});
    ASSERT_TRUE(sweeps_->Start().ok());
  }
  // As after kill -9: nothing in memory survives, the store does.
  void StopDaemon() {
    sweeps_.reset();
    tasks_.RunAll();
    manager_.reset();
    executor_.reset();
  }

  pb::RunConfig SweepConfig(int total, int concurrent) {
    pb::RunConfig c;
    c.set_experiment_name("tune");
    c.set_script("train.py");
    c.add_arguments("--epochs");
    c.add_arguments("2");
    amld::storage::ToProto(root_, c.mutable_snapshot_root());
    pb::SweepSpec* s = c.mutable_sweep();
    pb::ParameterExpression* lr = s->add_parameters();
    lr->set_name("--lr");
    lr->set_distribution("loguniform");
    lr->add_args(-6);
    lr->add_args(-1);
    s->set_sampling(pb::SamplingAlgorithm::RANDOM);
    s->set_seed(1234);
    s->set_primary_metric_name("loss");
    s->set_primary_metric_goal(pb::PrimaryMetricGoal::MINIMIZE);
    s->set_max_total_runs(total);
    s->set_max_concurrent_runs(concurrent);
    return c;
  }

  std::string SubmitSweep(const pb::RunConfig& c) {
    absl::StatusOr<pb::Run> parent = sweeps_->Submit(c, 1000);
    EXPECT_TRUE(parent.ok()) << parent.status();
    return parent.ok() ? parent->id() : "";
  }

  std::vector<pb::Run> Children(const std::string& parent) {
    amld::storage::RunFilter f;
    f.parent_run_id = parent;
    f.page_size = 1000;
    std::vector<pb::Run> runs = store_->ListRuns(f)->runs;
    std::reverse(runs.begin(), runs.end());  // oldest first
    return runs;
  }
  std::vector<std::string> Unfinished(const std::string& parent) {
    std::vector<std::string> out;
    for (const pb::Run& r : Children(parent)) {
      if (!amld::storage::IsTerminal(r.status())) out.push_back(r.id());
    }
    return out;
  }
  pb::Run Get(const std::string& id) { return *store_->GetRun(id); }

  void Log(const std::string& run, std::vector<double> values) {
    std::vector<pb::Metric> metrics;
    for (double v : values) {
      pb::Metric m;
      m.set_name("loss");
      m.set_number(v);
      m.set_step(next_step_[run]++);
      m.mutable_time()->set_seconds(1750000000);
      metrics.push_back(m);
    }
    ASSERT_TRUE(store_->AppendMetrics(run, metrics).ok());
  }
  void Finish(const std::string& run, int code = 0) {
    executor_->ExitCode(run, code);
    tasks_.RunAll();
  }
  // The executor's side of a cancel: the process ends by SIGTERM.
  void EndCanceled(const std::string& run) {
    ExitStatus e;
    e.canceled = true;
    e.signal = SIGTERM;
    executor_->Exit(run, e);
    tasks_.RunAll();
  }

  testing::TempDir dir_;
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<ContentStore> cas_;
  amld::storage::Digest root_;
  testing::FakeClock clock_;
  testing::ManualTaskRunner tasks_;
  std::unique_ptr<testing::FakeExecutor> executor_;
  std::unique_ptr<RunManager> manager_;
  std::unique_ptr<SweepController> sweeps_;
  std::map<std::string, int64_t> next_step_;
};

TEST_F(SweepControllerTest, ChildrenRunAtMostConcurrentAtATimeUntilTheTotalAndTheParentCompletes) {
  const std::string parent = SubmitSweep(SweepConfig(5, 2));
  EXPECT_EQ(Get(parent).status(), Status::RUNNING);
  EXPECT_TRUE(Get(parent).config().has_sweep());
  EXPECT_THAT(Unfinished(parent), ElementsAre(parent + "_0", parent + "_1"));
  tasks_.RunAll();
  EXPECT_THAT(executor_->launched, ElementsAre(parent + "_0", parent + "_1"));
  // The child: the parent's script and arguments plus its sampled value.
  const pb::Run first = Get(parent + "_0");
  EXPECT_EQ(first.parent_run_id(), parent);
  EXPECT_THAT(first.config().arguments(),
              ElementsAre("--epochs", "2", "--lr",
                          FormatParameterValue(
                              RandomAssignment(Get(parent).config().sweep(), 1234, 0)[0].second)));
  EXPECT_FALSE(first.config().has_sweep());

  for (int i = 0; i < 5; ++i) {
    Finish(parent + "_" + std::to_string(i));
    sweeps_->Step();
    EXPECT_LE(Unfinished(parent).size(), 2u);
    tasks_.RunAll();
  }
  EXPECT_THAT(Children(parent), SizeIs(5));
  EXPECT_EQ(Get(parent).status(), Status::COMPLETED);
  EXPECT_EQ(sweeps_->active_sweeps(), 0);
}

TEST_F(SweepControllerTest, BanditStopsABadChildWithThePolicyInItsRecord) {
  pb::RunConfig c = SweepConfig(3, 2);
  c.mutable_sweep()->mutable_policy()->mutable_bandit()->set_slack_factor(0.1);
  c.mutable_sweep()->mutable_policy()->mutable_bandit()->set_evaluation_interval(1);
  c.mutable_sweep()->mutable_policy()->mutable_bandit()->set_delay_evaluation(2);
  const std::string parent = SubmitSweep(c);
  tasks_.RunAll();
  const std::string good = parent + "_0", bad = parent + "_1";
  Log(good, {2.0});
  Log(bad, {5.0});
  sweeps_->Step();
  EXPECT_EQ(Get(bad).status(), Status::RUNNING);  // interval 1 is before the delay
  Log(good, {1.0});
  Log(bad, {4.0});
  sweeps_->Step();
  EXPECT_EQ(Get(bad).status(), Status::CANCEL_REQUESTED);
  EXPECT_EQ(Get(good).status(), Status::RUNNING);
  EndCanceled(bad);
  const pb::Run stopped = Get(bad);
  EXPECT_EQ(stopped.status(), Status::CANCELED);
  EXPECT_THAT(stopped.error(), HasSubstr("BanditPolicy(slack_factor=0.1"));
  EXPECT_THAT(stopped.error(), HasSubstr("4 at interval 2 is outside the slack_factor 0.1 of the best, 1"));
  // Its slot goes to the third child.
  sweeps_->Step();
  EXPECT_THAT(Unfinished(parent), ElementsAre(good, parent + "_2"));
  tasks_.RunAll();
  Finish(good);
  Finish(parent + "_2");
  sweeps_->Step();
  EXPECT_EQ(Get(parent).status(), Status::COMPLETED);
}

TEST_F(SweepControllerTest, AGridSweepRunsEveryCombination) {
  pb::RunConfig c = SweepConfig(0, 3);
  pb::SweepSpec* s = c.mutable_sweep();
  s->clear_parameters();
  s->set_sampling(pb::SamplingAlgorithm::GRID);
  for (const char* name : {"a", "b"}) {
    pb::ParameterExpression* p = s->add_parameters();
    p->set_name(name);
    p->set_distribution("choice");
    p->add_choices()->set_number(1);
    p->add_choices()->set_number(2);
  }
  const std::string parent = SubmitSweep(c);
  for (int round = 0; round < 4; ++round) {
    tasks_.RunAll();
    for (const std::string& id : Unfinished(parent)) Finish(id);
    sweeps_->Step();
  }
  std::set<std::string> combos;
  for (const pb::Run& r : Children(parent)) combos.insert(r.config().tags().at("hyperparameters"));
  EXPECT_THAT(combos, ElementsAre(R"({"a": 1, "b": 1})", R"({"a": 1, "b": 2})",
                                  R"({"a": 2, "b": 1})", R"({"a": 2, "b": 2})"));
  EXPECT_EQ(Get(parent).status(), Status::COMPLETED);
}

TEST_F(SweepControllerTest, ARestartMidSweepSamplesNothingTwiceAndLosesNothing) {
  const std::string parent = SubmitSweep(SweepConfig(4, 2));
  tasks_.RunAll();
  Finish(parent + "_0");  // child 0 done; child 1 running
  StopDaemon();           // before the sweep stepped again

  StartDaemon();
  EXPECT_THAT(executor_->reattached, ElementsAre(parent + "_1 handle:" + parent + "_1"));
  sweeps_->Step();
  EXPECT_THAT(Unfinished(parent), ElementsAre(parent + "_1", parent + "_2"));
  tasks_.RunAll();
  for (int i = 1; i < 4; ++i) {
    Finish(parent + "_" + std::to_string(i));
    sweeps_->Step();
    tasks_.RunAll();
  }
  std::vector<pb::Run> children = Children(parent);
  ASSERT_THAT(children, SizeIs(4));
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(children[i].id(), parent + "_" + std::to_string(i));
    // The value child i would have had without the restart.
    EXPECT_EQ(children[i].config().arguments(3),
              FormatParameterValue(RandomAssignment(Get(parent).config().sweep(), 1234, i)[0].second));
  }
  EXPECT_EQ(Get(parent).status(), Status::COMPLETED);
}

TEST_F(SweepControllerTest, CancelOfTheSweepCancelsItsChildrenAndThenItself) {
  const std::string parent = SubmitSweep(SweepConfig(6, 3));
  tasks_.RunAll();
  ASSERT_TRUE(manager_->Cancel(parent, "enough").ok());
  EXPECT_EQ(Get(parent).status(), Status::CANCEL_REQUESTED);
  for (const std::string& id : Unfinished(parent)) EndCanceled(id);
  sweeps_->Step();
  EXPECT_EQ(Get(parent).status(), Status::CANCELED);
  EXPECT_THAT(Children(parent), SizeIs(3));  // none sampled after the cancel
  for (const pb::Run& r : Children(parent)) {
    EXPECT_EQ(r.status(), Status::CANCELED);
    EXPECT_THAT(r.error(), HasSubstr("parent run " + parent + " canceled: enough"));
  }
}

TEST_F(SweepControllerTest, MaxDurationCancelsWhatIsLeftAndEndsTheSweep) {
  pb::RunConfig c = SweepConfig(10, 2);
  c.mutable_sweep()->set_max_duration_minutes(30);
  const std::string parent = SubmitSweep(c);
  tasks_.RunAll();
  clock_.Advance(absl::Minutes(29));
  sweeps_->Step();
  EXPECT_THAT(Unfinished(parent), SizeIs(2));
  clock_.Advance(absl::Minutes(1));
  sweeps_->Step();
  for (const std::string& id : Unfinished(parent)) {
    EXPECT_THAT(Get(id).history().rbegin()->reason(), HasSubstr("max_duration_minutes (30)"));
    EndCanceled(id);
  }
  sweeps_->Step();
  EXPECT_THAT(Children(parent), SizeIs(2));
  EXPECT_EQ(Get(parent).status(), Status::COMPLETED);
}

TEST_F(SweepControllerTest, BadSpecsAndChildrenThatCannotBeSubmittedAreRefused) {
  pb::RunConfig c = SweepConfig(2, 1);
  c.mutable_sweep()->mutable_parameters(0)->set_distribution("gaussian");
  EXPECT_EQ(sweeps_->Submit(c, 1000).status().code(), absl::StatusCode::kInvalidArgument);
  c = SweepConfig(2, 1);
  c.set_script("missing.py");  // checked as any submit, before the parent exists
  EXPECT_EQ(sweeps_->Submit(c, 1000).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(store_->ListRuns({})->runs.empty());
}

}  // namespace
}  // namespace amld::daemon

namespace amld::daemon {
namespace {

// Bayesian sampling steers later children to the optimum of the metric the
// finished ones reported (here lr = 0.7 for a loss (lr - 0.7)^2), where
// random draws would stay spread over [0, 1].
TEST_F(SweepControllerTest, BayesianSamplingConvergesOnTheOptimumAndRefusesPolicies) {
  pb::RunConfig c = SweepConfig(14, 1);
  pb::ParameterExpression* lr = c.mutable_sweep()->mutable_parameters(0);
  lr->set_distribution("uniform");
  lr->clear_args();
  lr->add_args(0);
  lr->add_args(1);
  c.mutable_sweep()->set_sampling(pb::SamplingAlgorithm::BAYESIAN);
  pb::RunConfig with_policy = c;
  with_policy.mutable_sweep()->mutable_policy()->mutable_median_stopping();
  EXPECT_THAT(sweeps_->Submit(with_policy, 1000).status().message(),
              HasSubstr("does not support early termination"));
  const std::string parent = SubmitSweep(c);
  std::vector<double> lrs;
  for (int i = 0; i < 14; ++i) {
    tasks_.RunAll();
    const std::vector<std::string> running = Unfinished(parent);
    ASSERT_THAT(running, SizeIs(1));
    const pb::Run child = Get(running[0]);
    const double x = std::stod(child.config().arguments(3));
    lrs.push_back(x);
    Log(child.id(), {(x - 0.7) * (x - 0.7)});
    Finish(child.id());
    sweeps_->Step();
  }
  EXPECT_EQ(Get(parent).status(), Status::COMPLETED);
  double last = 0;
  for (int i = 8; i < 14; ++i) last += std::abs(lrs[i] - 0.7) / 6;
  EXPECT_LT(last, 0.08) << "the last six children stayed far from the optimum";
  double best = 1;
  for (double x : lrs) best = std::min(best, std::abs(x - 0.7));
  EXPECT_LT(best, 0.02);
}

}  // namespace
}  // namespace amld::daemon
