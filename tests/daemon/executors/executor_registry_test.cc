// ExecutorRegistry: routing runs to the executor of their compute target,
// with a real StateStore holding the targets and fake executors recording
// what reaches them.
#include "daemon/executors/executor_registry.h"

#include <stdlib.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_executor.h"
#include "tests/testing/test_util.h"

namespace amld::daemon {
namespace {

namespace fs = std::filesystem;
namespace v1 = amld::v1;
using amld::testing::FakeExecutor;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

v1::ComputeTarget Ssh(const std::string& name, const std::string& host) {
  v1::ComputeTarget t;
  t.set_name(name);
  t.mutable_ssh()->set_host(host);
  return t;
}

LaunchSpec SpecOn(const std::string& run_id, const std::string& target) {
  LaunchSpec spec;
  spec.run_id = run_id;
  spec.compute_target = target;
  return spec;
}

class ExecutorRegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = amld::storage::StateStore::Open(dir_ / "amld.db");
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    auto local = std::make_unique<FakeExecutor>("local");
    local_ = local.get();
    ExecutorFactories factories;
    factories.ssh =
        [this](const v1::ComputeTarget& target) -> absl::StatusOr<std::unique_ptr<Executor>> {
      made_.push_back(absl::StrCat(target.name(), "@", target.ssh().host()));
      auto e = std::make_unique<FakeExecutor>(absl::StrCat("ssh-", target.ssh().host()));
      by_host_[target.ssh().host()] = e.get();
      return e;
    };
    registry_ = std::make_unique<ExecutorRegistry>(std::move(local), factories, store_.get());
    registry_->SetExitCallback([this](const std::string& run_id, absl::StatusOr<ExitStatus>) {
      absl::MutexLock lock(&mu_);
      exited_.push_back(run_id);
    });
  }

  void TearDown() override {
    registry_.reset();
    store_.reset();
  }

  void Define(const v1::ComputeTarget& t) {
    ASSERT_TRUE(store_->CreateComputeTarget(t, absl::Now()).ok());
  }

  amld::testing::TempDir tmp_{"amld-registry-test-"};
  const fs::path dir_ = tmp_.path();
  std::unique_ptr<amld::storage::StateStore> store_;
  FakeExecutor* local_ = nullptr;
  std::vector<std::string> made_;
  std::map<std::string, FakeExecutor*> by_host_;
  std::unique_ptr<ExecutorRegistry> registry_;
  absl::Mutex mu_;
  std::vector<std::string> exited_ ABSL_GUARDED_BY(mu_);
};

TEST_F(ExecutorRegistryTest, LocalRunsGoToTheLocalExecutor) {
  ASSERT_TRUE(registry_->Launch(SpecOn("r1", "")).ok());
  ASSERT_TRUE(registry_->Launch(SpecOn("r2", "local")).ok());
  EXPECT_THAT(local_->launched, ElementsAre("r1", "r2"));
  EXPECT_TRUE(made_.empty());
  EXPECT_EQ(registry_->Placement("r1", "h-r1"), "local:h-r1");
}

TEST_F(ExecutorRegistryTest, EachSshTargetGetsOneExecutorMadeFromItsSettings) {
  Define(Ssh("a", "host-a"));
  Define(Ssh("b", "host-b"));
  ASSERT_TRUE(registry_->Launch(SpecOn("r1", "a")).ok());
  ASSERT_TRUE(registry_->Launch(SpecOn("r2", "b")).ok());
  ASSERT_TRUE(registry_->Launch(SpecOn("r3", "a")).ok());
  EXPECT_THAT(made_, ElementsAre("a@host-a", "b@host-b"));
  EXPECT_THAT(by_host_["host-a"]->launched, ElementsAre("r1", "r3"));
  EXPECT_THAT(by_host_["host-b"]->launched, ElementsAre("r2"));
  EXPECT_TRUE(local_->launched.empty());
  EXPECT_EQ(registry_->Placement("r2", "h-r2"), "ssh-host-b:h-r2");
  EXPECT_THAT(registry_->Kinds(), ElementsAre("local", "ssh"));
}

TEST_F(ExecutorRegistryTest, CancelGoesToTheRunsExecutorUntilItsExitIsReported) {
  Define(Ssh("a", "host-a"));
  ASSERT_TRUE(registry_->Launch(SpecOn("r1", "a")).ok());
  ASSERT_TRUE(registry_->Cancel("r1").ok());
  EXPECT_THAT(by_host_["host-a"]->canceled, ElementsAre("r1"));

  by_host_["host-a"]->ExitCode("r1", 0);
  {
    absl::MutexLock lock(&mu_);
    EXPECT_THAT(exited_, ElementsAre("r1"));
  }
  EXPECT_EQ(registry_->Cancel("r1").code(), absl::StatusCode::kNotFound);
  // Placement of a run that already ended is found through its stored target.
  EXPECT_EQ(registry_->Placement("never-stored", "h"), "");
}

TEST_F(ExecutorRegistryTest, ReattachGoesToTheStoredRunsTarget) {
  Define(Ssh("a", "host-a"));
  amld::storage::NewRun run;
  run.id = "exp_1_00000001";
  run.config.set_experiment_name("exp");
  run.config.set_compute_target("a");
  run.now = absl::Now();
  ASSERT_TRUE(store_->InsertRun(run).ok());
  ASSERT_TRUE(registry_->Reattach(run.id, dir_ / "run", "the-handle").ok());
  EXPECT_THAT(by_host_["host-a"]->reattached, ElementsAre("exp_1_00000001 the-handle"));
  EXPECT_EQ(registry_->Placement(run.id, "the-handle"), "ssh-host-a:the-handle");
  EXPECT_EQ(registry_->Reattach("no-such-run", dir_, "h").code(), absl::StatusCode::kNotFound);
}

TEST_F(ExecutorRegistryTest, MissingTargetsAndKindsWithoutAFactoryFailTheLaunch) {
  auto missing = registry_->Launch(SpecOn("r1", "nope"));
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("\"nope\" does not exist"));

  v1::ComputeTarget slurm;
  slurm.set_name("cluster");
  slurm.mutable_slurm()->set_workdir("/shared");
  Define(slurm);
  auto refused = registry_->Launch(SpecOn("r2", "cluster"));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(refused.status().message(), HasSubstr("slurm target"));
  EXPECT_EQ(registry_->Cancel("r2").code(), absl::StatusCode::kNotFound);
}

TEST_F(ExecutorRegistryTest, ATargetDefinedAgainAfterDeleteGetsAFreshExecutor) {
  Define(Ssh("a", "old-host"));
  ASSERT_TRUE(registry_->Launch(SpecOn("r1", "a")).ok());
  by_host_["old-host"]->ExitCode("r1", 0);
  ASSERT_TRUE(store_->DeleteComputeTarget("a").ok());
  registry_->Forget("a");
  Define(Ssh("a", "new-host"));
  ASSERT_TRUE(registry_->Launch(SpecOn("r2", "a")).ok());
  EXPECT_THAT(made_, ElementsAre("a@old-host", "a@new-host"));
  EXPECT_THAT(by_host_["new-host"]->launched, ElementsAre("r2"));
  EXPECT_THAT(by_host_["old-host"]->launched, ElementsAre("r1"));
}

TEST(ExecutorRegistryValidateTest, StoreRulesFirstThenTheKindsValidator) {
  std::vector<std::string> asked;
  ExecutorFactories factories;
  factories.validate_ssh = [&](const v1::ComputeTarget& t) {
    asked.push_back("ssh:" + t.name());
    return t.ssh().host() == "bad" ? absl::InvalidArgumentError("bad host") : absl::OkStatus();
  };
  ExecutorRegistry registry(std::make_unique<FakeExecutor>("local"), factories, nullptr);

  EXPECT_TRUE(registry.ValidateTarget(Ssh("box", "good")).ok());
  absl::Status bad = registry.ValidateTarget(Ssh("box", "bad"));
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.message(), "bad host");
  // The store's rules come first: a bad name never reaches the kind.
  EXPECT_THAT(registry.ValidateTarget(Ssh("a b", "bad")).message(), HasSubstr("may contain only"));
  EXPECT_THAT(asked, ElementsAre("ssh:box", "ssh:box"));
  // A kind without a validator is refused, never stored unchecked.
  v1::ComputeTarget slurm;
  slurm.set_name("c");
  slurm.mutable_slurm();
  absl::Status unchecked = registry.ValidateTarget(slurm);
  EXPECT_EQ(unchecked.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(unchecked.message(), HasSubstr("no executor for this kind"));
}

TEST_F(ExecutorRegistryTest, InSystemModeEachSubmitterOfAnSshTargetHasTheirOwnExecutor) {
  Define(Ssh("a", "host-a"));
  v1::ComputeTarget cluster;
  cluster.set_name("c");
  cluster.mutable_slurm()->set_workdir("/shared");
  Define(cluster);
  std::vector<std::string> made;
  ExecutorFactories factories;
  factories.ssh = [&](const v1::ComputeTarget&) -> absl::StatusOr<std::unique_ptr<Executor>> {
    made.push_back("ssh for all");
    return std::make_unique<FakeExecutor>("ssh-all");
  };
  factories.slurm = [&](const v1::ComputeTarget&) -> absl::StatusOr<std::unique_ptr<Executor>> {
    made.push_back("slurm for all");
    return std::make_unique<FakeExecutor>("slurm");
  };
  factories.ssh_as = [&](const v1::ComputeTarget& target,
                         const RunAs& account) -> absl::StatusOr<std::unique_ptr<Executor>> {
    made.push_back(absl::StrCat(target.name(), " as ", account.uid));
    return std::make_unique<FakeExecutor>(absl::StrCat("ssh-", account.uid));
  };
  ExecutorRegistry registry(std::make_unique<FakeExecutor>("local"), factories, store_.get());
  auto launch = [&](const std::string& run_id, const std::string& target, uid_t uid) {
    LaunchSpec spec = SpecOn(run_id, target);
    spec.run_as.emplace();
    spec.run_as->uid = uid;
    return registry.Launch(spec);
  };
  ASSERT_TRUE(launch("r1", "a", 1001).ok());
  ASSERT_TRUE(launch("r2", "a", 1001).ok());
  ASSERT_TRUE(launch("r3", "a", 1002).ok());
  ASSERT_TRUE(launch("r4", "c", 1001).ok());
  ASSERT_TRUE(launch("r5", "c", 1002).ok());
  ASSERT_TRUE(launch("r6", "", 1002).ok());
  // One ssh executor per submitter; Slurm and local stay shared.
  EXPECT_THAT(made, ElementsAre("a as 1001", "a as 1002", "slurm for all"));
  EXPECT_EQ(registry.Placement("r3", "h"), "ssh-1002:h");
  EXPECT_EQ(registry.Placement("r5", "h"), "slurm:h");
  // Re-adopted by the stored run's submitter (root: an account every
  // machine has).
  amld::storage::NewRun run;
  run.id = "exp_1_00000001";
  run.config.set_experiment_name("exp");
  run.config.set_compute_target("a");
  run.submitter_uid = 0;
  run.now = absl::Now();
  ASSERT_TRUE(store_->InsertRun(run).ok());
  ASSERT_TRUE(registry.Reattach(run.id, dir_ / "run", "h").ok());
  EXPECT_EQ(made.back(), "a as 0");
  // Deleting the target retires every submitter's executor.
  registry.Forget("a");
  ASSERT_TRUE(launch("r7", "a", 1001).ok());
  EXPECT_EQ(made.back(), "a as 1001");
  EXPECT_EQ(made.size(), 5u);
}

TEST(ExecutorRegistryValidateTest, FieldPredicates) {
  EXPECT_FALSE(HasSpaceOrControl("gpu-box.example.org"));
  EXPECT_TRUE(HasSpaceOrControl("a b"));
  EXPECT_TRUE(HasSpaceOrControl("a\tb"));
  EXPECT_TRUE(HasSpaceOrControl("a\x7f"));
  EXPECT_FALSE(HasLineBreakOrNul("/with space/ok"));
  EXPECT_TRUE(HasLineBreakOrNul("a\rb"));
  EXPECT_TRUE(HasLineBreakOrNul(std::string("a\0b", 3)));
}

}  // namespace
}  // namespace amld::daemon
