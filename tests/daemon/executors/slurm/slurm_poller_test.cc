// The Slurm executor stepped with a fake CommandRunner (no cluster): what
// sbatch, squeue and scancel say becomes the run's launch error, progress
// and end. The real cluster is exercised by slurm_executor_test.
#include <sys/stat.h>
#include <unistd.h>

#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "base/shell_quote.h"
#include "daemon/executors/shim/shim_protocol.h"
#include "daemon/executors/slurm/slurm_executor.h"
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

class SlurmPollerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteFile(dir_ / "amld-shim", "#!/bin/sh\n", 0755);
    WriteFile(dir_ / "runs/run1/wd/train.py", "print(1)\n");
    fs::create_directories(dir_ / "runs/run1/user_logs");
    fs::create_directories(dir_ / "runs/run1/system_logs");
    SlurmExecutorOptions o;
    o.workdir = dir_ / "shared";
    o.shim_path = dir_ / "amld-shim";
    o.poll_interval = absl::Milliseconds(20);
    o.exit_file_wait = absl::Milliseconds(100);
    o.jobcomp_file = dir_ / "no-jobcomp";
    o.runner = fake_;
    WriteFile(dir_ / "run-python/amld/__init__.py", "# amld\n");
    o.run_python = RunPython{dir_ / "run-python", "0123456789abcdef0123"};
    absl::StatusOr<std::unique_ptr<Executor>> made = NewSlurmExecutor(o);
    ASSERT_TRUE(made.ok()) << made.status();
    executor_ = std::move(*made);
    executor_->SetExitCallback([this](const std::string& id, absl::StatusOr<ExitStatus> outcome) {
      absl::MutexLock lock(&mu_);
      outcomes_.emplace(id, std::move(outcome));
    });
    executor_->SetProgressCallback([this](const std::string& id, const RunProgress& p) {
      absl::MutexLock lock(&mu_);
      progress_.push_back(absl::StrCat(id, " ", p.started, " ", p.placement, " ", p.detail));
    });
  }

  LaunchSpec Spec() {
    LaunchSpec spec;
    spec.run_id = "run1";
    spec.run_dir = dir_ / "runs/run1";
    spec.argv = {"python3", "train.py"};
    return spec;
  }

  void Queue(const std::string& line) { fake_->On("squeue -j 77", {0, 0, line + "\n", ""}); }

  bool WaitProgress(const std::string& text) {
    absl::MutexLock lock(&mu_);
    auto seen = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      for (const std::string& p : progress_) {
        if (p == text) return true;
      }
      return false;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&seen), kWait);
  }

  std::optional<absl::StatusOr<ExitStatus>> WaitExit() {
    absl::MutexLock lock(&mu_);
    auto done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return outcomes_.count("run1") != 0; };
    if (!mu_.AwaitWithTimeout(absl::Condition(&done), kWait)) return std::nullopt;
    return outcomes_.at("run1");
  }

  testing::TempDir dir_;
  std::shared_ptr<FakeCommandRunner> fake_ = std::make_shared<FakeCommandRunner>();
  std::unique_ptr<Executor> executor_;
  absl::Mutex mu_;
  std::vector<std::string> progress_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, absl::StatusOr<ExitStatus>> outcomes_ ABSL_GUARDED_BY(mu_);
};

TEST_F(SlurmPollerTest, SbatchFailureIsAClearLaunchError) {
  fake_->On("sbatch", {1, 0, "", "sbatch: error: Batch job submission failed: Invalid partition"});
  absl::StatusOr<std::string> handle = executor_->Launch(Spec());
  EXPECT_TRUE(absl::IsFailedPrecondition(handle.status())) << handle.status();
  EXPECT_THAT(std::string(handle.status().message()),
              HasSubstr("sbatch refused the job (exit code 1: sbatch: error: Batch job submission "
                        "failed: Invalid partition)"));
  EXPECT_FALSE(fs::exists(dir_ / "shared/run1")) << "nothing of a refused job stays";
  EXPECT_THAT(ReadFile(dir_ / "runs/run1/system_logs/slurm-executor.log"),
              HasSubstr("not submitted"));
}

TEST_F(SlurmPollerTest, SqueueStatesBecomeProgressThenTheEnd) {
  fake_->On("sbatch --parsable", {0, 0, "77\n", ""});
  Queue("77|PENDING|Resources||run1");
  absl::StatusOr<std::string> handle = executor_->Launch(Spec());
  ASSERT_TRUE(handle.ok()) << handle.status();
  EXPECT_EQ(*handle, absl::StrCat(R"({"job_id":"77","shared_dir":")", (dir_ / "shared/run1").string(),
                                  R"("})"));
  EXPECT_TRUE(WaitProgress("run1 0 slurm:77 SUBMITTED"));
  EXPECT_TRUE(WaitProgress("run1 0 slurm:77 PENDING (Resources)"));
  EXPECT_EQ(ReadFile(dir_ / "shared/run1/wd/train.py"), "print(1)\n");
  EXPECT_THAT(ReadFile(dir_ / "shared/run1/job.sh"), ::testing::Not(HasSubstr("PYTHONPATH")))
      << "amld's Python only for a run that asks for it";

  Queue("77|RUNNING|None|node-1|run1");
  EXPECT_TRUE(WaitProgress("run1 1 slurm:77 on node-1 RUNNING"));
  EXPECT_EQ(executor_->Placement("run1", *handle), "slurm:77 on node-1");

  // The job writes its log and exit.json on the shared dir, then leaves
  // the queue COMPLETED.
  WriteFile(dir_ / "shared/run1/user_logs/std_log.txt", "epoch 1\n");
  shim::ExitRecord record;
  record.exit_code = 3;
  record.start_time_ns = 1'000'000'000;
  record.end_time_ns = 2'000'000'000;
  WriteFile(dir_ / "shared/run1/exit.json", shim::FormatExitRecord(record));
  Queue("77|COMPLETED|None|node-1|run1");
  std::optional<absl::StatusOr<ExitStatus>> outcome = WaitExit();
  ASSERT_TRUE(outcome.has_value());
  ASSERT_TRUE(outcome->ok()) << outcome->status();
  EXPECT_EQ((*outcome)->exit_code, 3);
  EXPECT_FALSE((*outcome)->canceled);
  EXPECT_EQ((*outcome)->start_time, absl::FromUnixSeconds(1));
  EXPECT_EQ(ReadFile(dir_ / "runs/run1/user_logs/std_log.txt"), "epoch 1\n");
  EXPECT_TRUE(fs::exists(dir_ / "runs/run1/exit.json"));
  EXPECT_FALSE(fs::exists(dir_ / "shared/run1/wd")) << "the shared copy of wd/ is removed";
}

// amld's Python for runs is copied into the shared work dir once and is
// first on the PYTHONPATH of a job that asks for it; a file the script
// uploads reaches the daemon's run folder no later than the metrics line
// that names it.
TEST_F(SlurmPollerTest, RunPythonOnThePythonPathAndUploadsBeforeTheirLine) {
  fake_->On("sbatch --parsable", {0, 0, "77\n", ""});
  Queue("77|RUNNING|None|node-1|run1");
  LaunchSpec spec = Spec();
  spec.run_python = true;
  spec.env = {{"PYTHONPATH", "/mine"}};
  ASSERT_TRUE(executor_->Launch(spec).ok());
  const fs::path copy = dir_ / "shared/.amld/python-0123456789abcdef";
  EXPECT_EQ(ReadFile(copy / "amld/__init__.py"), "# amld\n");
  EXPECT_THAT(ReadFile(dir_ / "shared/run1/job.sh"),
              HasSubstr(absl::StrCat("export PYTHONPATH=", base::ShellQuote(copy.string() + ":/mine"),
                                     "\n")));
  EXPECT_TRUE(WaitProgress("run1 1 slurm:77 on node-1 RUNNING"));

  WriteFile(dir_ / "shared/run1/uploads/reports/a.txt", "report\n");
  WriteFile(dir_ / "shared/run1/metrics.jsonl", "{\"kind\": \"upload\", \"name\": \"reports/a.txt\"}\n");
  ASSERT_TRUE(testing::Eventually(
      [&] { return fs::exists(dir_ / "runs/run1/metrics.jsonl") &&
                   !ReadFile(dir_ / "runs/run1/metrics.jsonl").empty(); }));
  EXPECT_EQ(ReadFile(dir_ / "runs/run1/uploads/reports/a.txt"), "report\n");
  // Uploaded again under the same name: the new bytes come over too.
  WriteFile(dir_ / "shared/run1/uploads/reports/a.txt", "report, longer\n");
  ASSERT_TRUE(testing::Eventually(
      [&] { return ReadFile(dir_ / "runs/run1/uploads/reports/a.txt") == "report, longer\n"; }));

}

TEST_F(SlurmPollerTest, CancelRunsScancelAndCancelledEndsCanceled) {
  fake_->On("sbatch --parsable", {0, 0, "77\n", ""});
  Queue("77|RUNNING|None|node-1|run1");
  ASSERT_TRUE(executor_->Launch(Spec()).ok());
  EXPECT_TRUE(WaitProgress("run1 1 slurm:77 on node-1 RUNNING"));
  ASSERT_TRUE(executor_->Cancel("run1").ok());
  Queue("77|CANCELLED|None|node-1|run1");
  std::optional<absl::StatusOr<ExitStatus>> outcome = WaitExit();
  ASSERT_TRUE(outcome.has_value() && outcome->ok());
  EXPECT_TRUE((*outcome)->canceled);
  EXPECT_GE(fake_->CallsMatching("scancel 77"), 1);
}

TEST_F(SlurmPollerTest, AJobSlurmForgotWithoutRecordIsUnavailable) {
  fake_->On("sbatch --parsable", {0, 0, "77\n", ""});
  // squeue no longer knows it, nor scontrol; sacct is not there.
  fake_->On("squeue -j 77", {1, 0, "", "slurm_load_jobs error: Invalid job id specified"});
  fake_->On("scontrol show job", {1, 0, "", "slurm_load_jobs error: Invalid job id specified"});
  fake_->OnCall("sacct", [](const Command&) -> absl::StatusOr<CommandResult> {
    return absl::NotFoundError("cannot run sacct: not found in PATH");
  });
  ASSERT_TRUE(executor_->Launch(Spec()).ok());
  std::optional<absl::StatusOr<ExitStatus>> outcome = WaitExit();
  ASSERT_TRUE(outcome.has_value());
  EXPECT_TRUE(absl::IsUnavailable(outcome->status())) << outcome->status();
  EXPECT_THAT(std::string(outcome->status().message()), HasSubstr("Slurm no longer knows job 77"));
}

TEST_F(SlurmPollerTest, ASystemModeJobIsItsSubmittersFromSbatchToScancel) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to give the run's folders to another user";
  absl::StatusOr<RunAs> nobody = LookupAccount(65534);
  if (!nobody.ok()) GTEST_SKIP() << "this machine has no uid 65534";
  fake_->On("sbatch --parsable", {0, 0, "77\n", ""});
  Queue("77|RUNNING|None|node-1|run1");
  LaunchSpec spec = Spec();
  spec.run_as = *nobody;
  absl::StatusOr<std::string> handle = executor_->Launch(spec);
  ASSERT_TRUE(handle.ok()) << handle.status();
  EXPECT_THAT(*handle, HasSubstr(R"("uid":65534)"));
  // Its folders are the submitter's; the work dir the executor made lets
  // them through.
  for (const fs::path& dir : {dir_ / "shared/run1", dir_ / "runs/run1"}) {
    struct stat st;
    ASSERT_EQ(::stat(dir.c_str(), &st), 0) << dir;
    EXPECT_EQ(st.st_uid, 65534u) << dir;
    EXPECT_EQ(st.st_mode & 0777, 0700u) << dir;
  }
  struct stat work;
  ASSERT_EQ(::stat((dir_ / "shared").c_str(), &work), 0);
  EXPECT_EQ(work.st_mode & 0011, 0011u);
  EXPECT_TRUE(WaitProgress("run1 1 slurm:77 on node-1 RUNNING"));
  ASSERT_TRUE(executor_->Cancel("run1").ok());
  Queue("77|CANCELLED|None|node-1|run1");
  std::optional<absl::StatusOr<ExitStatus>> outcome = WaitExit();
  ASSERT_TRUE(outcome.has_value() && outcome->ok());
  // Every Slurm client about the job ran as its submitter.
  for (const char* client : {"sbatch", "squeue", "scancel 77"}) {
    std::vector<int64_t> uids = fake_->AccountsOf(client);
    ASSERT_FALSE(uids.empty()) << client;
    EXPECT_THAT(uids, ::testing::Each(65534)) << client;
  }
  // A restarted daemon's executor takes the account back from the handle.
  fake_->On("squeue -j 78", {0, 0, "78|RUNNING|None|node-1|run2\n", ""});
  const std::string readopted = absl::StrCat(R"({"job_id":"78","shared_dir":")",
                                             (dir_ / "shared/run2").string(), R"(","uid":65534})");
  ASSERT_TRUE(executor_->Reattach("run2", dir_ / "runs/run2", readopted).ok());
  EXPECT_TRUE(WaitProgress("run2 1 slurm:78 on node-1 RUNNING"));
  EXPECT_THAT(fake_->AccountsOf("squeue -j 78"), ::testing::Each(65534));
}

// System mode asks Slurm as the submitter also before the launch and
// after a restart: the submit's `sbatch --test-only` (each user's answer
// remembered for them alone) and the search for a job whose id was never
// recorded, whose handle then keeps the polls theirs.
TEST_F(SlurmPollerTest, ASystemModeSubmitCheckAndRecoveryAskAsTheSubmitter) {
  absl::StatusOr<RunAs> nobody = LookupAccount(65534);
  if (!nobody.ok()) GTEST_SKIP() << "this machine has no uid 65534";
  fake_->On("sbatch --test-only", {0, 0, "", "sbatch: Job 5 to start at now"});
  LaunchSpec spec = Spec();
  spec.run_as = *nobody;
  ASSERT_TRUE(executor_->CheckCanEverHold(spec).ok());
  ASSERT_TRUE(executor_->CheckCanEverHold(spec).ok());  // remembered for them
  spec.run_as.reset();
  ASSERT_TRUE(executor_->CheckCanEverHold(spec).ok());  // the daemon's own asks itself
  EXPECT_THAT(fake_->AccountsOf("sbatch --test-only"), ::testing::ElementsAre(65534, -1));

  fake_->On("squeue --name run3", {0, 0, "79\n", ""});
  fake_->On("squeue -j 79", {0, 0, "79|RUNNING|None|node-1|run3\n", ""});
  fs::create_directories(dir_ / "runs/run3/system_logs");
  absl::StatusOr<std::string> found =
      executor_->FindUnrecorded("run3", dir_ / "runs/run3", *nobody);
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_THAT(*found, HasSubstr(R"("uid":65534)"));
  EXPECT_THAT(fake_->AccountsOf("squeue --name run3"), ::testing::Each(65534));
  ASSERT_TRUE(executor_->Reattach("run3", dir_ / "runs/run3", *found).ok());
  EXPECT_TRUE(WaitProgress("run3 1 slurm:79 on node-1 RUNNING"));
  std::vector<int64_t> polls = fake_->AccountsOf("squeue -j 79");
  ASSERT_FALSE(polls.empty());
  EXPECT_THAT(polls, ::testing::Each(65534));
}

}  // namespace
}  // namespace amld::daemon
