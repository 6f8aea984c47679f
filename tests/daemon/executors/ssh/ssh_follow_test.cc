// The SSH executor stepped with a fake CommandRunner (no sshd): the launch
// conversation, the log follower appending to the run's log, a follower
// that drops while the shim runs, the end read from the host, cancel, and
// a destructor that stops and joins the run's thread. The real host is
// exercised by ssh_executor_test.
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "daemon/executors/shim/shim_protocol.h"
#include "daemon/executors/ssh/ssh_executor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_command_runner.h"
#include "tests/testing/test_util.h"

namespace amld::daemon {
namespace {

namespace fs = std::filesystem;
using ::amld::testing::FakeCommandRunner;
using ::testing::HasSubstr;
using testing::ReadFile;
using testing::WriteFile;

constexpr absl::Duration kWait = absl::Seconds(30);
// Words only the probe script has (ssh_run.cc: ProbeScript).
constexpr char kProbe[] = "s=alive";

class SshFollowTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteFile(dir_ / "amld-shim", "#!/bin/sh\n", 0755);
    WriteFile(dir_ / "runs/run1/wd/train.py", "print(1)\n");
    fs::create_directories(dir_ / "runs/run1/user_logs");
    fs::create_directories(dir_ / "runs/run1/system_logs");
    fake_->On("pwd -P", {0, 0, "/home/me/amld\n", ""});
    fake_->On("ssh-launch.sh", {0, 0, "boot b-1\nok 4242 999\n", ""});
    fake_->On(kProbe, {0, 0, "alive\nwd\n", ""});
    SshExecutorOptions o;
    o.endpoint.host = "gpu1";
    o.shim_path = dir_ / "amld-shim";
    o.state_dir = dir_ / "ssh";
    o.sync_interval = absl::Milliseconds(50);
    o.backoff = absl::Milliseconds(10);
    o.runner = fake_;
    absl::StatusOr<std::unique_ptr<Executor>> made = NewSshExecutor(o);
    ASSERT_TRUE(made.ok()) << made.status();
    executor_ = std::move(*made);
    executor_->SetExitCallback([this](const std::string& id, absl::StatusOr<ExitStatus> outcome) {
      absl::MutexLock lock(&mu_);
      outcomes_.emplace(id, std::move(outcome));
    });
  }

  LaunchSpec Spec() {
    LaunchSpec spec;
    spec.run_id = "run1";
    spec.run_dir = dir_ / "runs/run1";
    std::filesystem::create_directories(spec.run_dir / "wd");  // a prepared run folder
    spec.argv = {"python3", "train.py"};
    return spec;
  }

  std::optional<absl::StatusOr<ExitStatus>> WaitExit() {
    absl::MutexLock lock(&mu_);
    auto done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return outcomes_.count("run1") != 0; };
    if (!mu_.AwaitWithTimeout(absl::Condition(&done), kWait)) return std::nullopt;
    return outcomes_.at("run1");
  }

  void HostSaysEnded(int exit_code) {
    shim::ExitRecord record;
    record.exit_code = exit_code;
    fake_->On(kProbe, {0, 0, "ended\nwd\n" + shim::FormatExitRecord(record) + "\n", ""});
  }

  testing::TempDir dir_;
  std::shared_ptr<FakeCommandRunner> fake_ = std::make_shared<FakeCommandRunner>();
  std::unique_ptr<Executor> executor_;
  absl::Mutex mu_;
  std::map<std::string, absl::StatusOr<ExitStatus>> outcomes_ ABSL_GUARDED_BY(mu_);
};

TEST_F(SshFollowTest, FollowerAppendsTheLogAndTheHostTellsTheEnd) {
  absl::StatusOr<std::string> handle = executor_->Launch(Spec());
  ASSERT_TRUE(handle.ok()) << handle.status();
  EXPECT_THAT(*handle, HasSubstr(R"("remote_dir":"/home/me/amld/run1")"));
  EXPECT_THAT(*handle, HasSubstr(R"("shim_pid":4242)"));
  EXPECT_GE(fake_->CallsMatching("rsync -rlpt --delete"), 1) << "the run folder went over";
  EXPECT_THAT(ReadFile(dir_ / "runs/run1/ssh-launch.sh"), HasSubstr("amld-shim"));

  std::shared_ptr<FakeCommandRunner::Running> follower = fake_->Started("tail -c +1 -F --pid=4242");
  ASSERT_NE(follower, nullptr);
  follower->Write("epoch 1\n");
  HostSaysEnded(5);
  follower->End();  // tail --pid ends when the shim is gone

  std::optional<absl::StatusOr<ExitStatus>> outcome = WaitExit();
  ASSERT_TRUE(outcome.has_value());
  ASSERT_TRUE(outcome->ok()) << outcome->status();
  EXPECT_EQ((*outcome)->exit_code, 5);
  EXPECT_EQ(ReadFile(dir_ / "runs/run1/user_logs/std_log.txt"), "epoch 1\n");
  EXPECT_TRUE(fs::exists(dir_ / "runs/run1/exit.json"));
  // The catch-up asked for the bytes after the 8 it had.
  EXPECT_GE(fake_->CallsMatching("tail -c +9 --"), 1);
  EXPECT_GE(fake_->CallsMatching("rm -rf --"), 1) << "the remote wd/ is removed";
}

TEST_F(SshFollowTest, ADroppedFollowerIsStartedAgainWhileTheShimRuns) {
  ASSERT_TRUE(executor_->Launch(Spec()).ok());
  std::shared_ptr<FakeCommandRunner::Running> first = fake_->Started("tail -F");
  ASSERT_NE(first, nullptr);
  first->Write("a\n");
  first->End(CommandResult{255, 0, "", "Connection reset by peer"});  // the host still answers
  std::shared_ptr<FakeCommandRunner::Running> second = fake_->Started("tail -c +3 -F");
  ASSERT_NE(second, nullptr) << "a new follower from the local size on";
  EXPECT_NE(second, first);
  EXPECT_THAT(ReadFile(dir_ / "runs/run1/system_logs/ssh-executor.log"),
              HasSubstr("log follower ended (exit code 255: Connection reset by peer)"));
  HostSaysEnded(0);
  second->End();
  std::optional<absl::StatusOr<ExitStatus>> outcome = WaitExit();
  ASSERT_TRUE(outcome.has_value() && outcome->ok());
  EXPECT_EQ((*outcome)->exit_code, 0);
}

TEST_F(SshFollowTest, UnreachableHostLosesTheRun) {
  ASSERT_TRUE(executor_->Launch(Spec()).ok());
  std::shared_ptr<FakeCommandRunner::Running> follower = fake_->Started("tail -F");
  ASSERT_NE(follower, nullptr);
  fake_->On(kProbe, {255, 0, "", "ssh: connect to host gpu1 port 22: Connection refused"});
  follower->End(CommandResult{255, 0, "", "Connection closed"});
  std::optional<absl::StatusOr<ExitStatus>> outcome = WaitExit();
  ASSERT_TRUE(outcome.has_value());
  EXPECT_TRUE(absl::IsUnavailable(outcome->status())) << outcome->status();
  EXPECT_THAT(std::string(outcome->status().message()), HasSubstr("Connection refused"));
}

TEST_F(SshFollowTest, CancelSignalsTheRemoteShim) {
  ASSERT_TRUE(executor_->Launch(Spec()).ok());
  std::shared_ptr<FakeCommandRunner::Running> follower = fake_->Started("tail -F");
  ASSERT_NE(follower, nullptr);
  ASSERT_TRUE(executor_->Cancel("run1").ok());
  absl::Time deadline = absl::Now() + kWait;
  while (fake_->CallsMatching("kill -TERM 4242") == 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_GE(fake_->CallsMatching("kill -TERM 4242"), 1);
  EXPECT_TRUE(absl::IsNotFound(executor_->Cancel("other")));
}

TEST_F(SshFollowTest, DestructorStopsAndJoinsTheRunsThread) {
  ASSERT_TRUE(executor_->Launch(Spec()).ok());
  std::shared_ptr<FakeCommandRunner::Running> follower = fake_->Started("tail -F");
  ASSERT_NE(follower, nullptr);
  executor_.reset();  // returns only once the thread is joined
  EXPECT_TRUE(follower->stopped());
  absl::MutexLock lock(&mu_);
  EXPECT_TRUE(outcomes_.empty()) << "no callback while stopping";
}

}  // namespace
}  // namespace amld::daemon
