// The run lifecycle stepped by hand: a fake executor (the test decides when
// and how a "process" ends), a fake clock, and a task runner whose tasks run
// only when the test says so. Real SQLite state and a real CAS on a temp dir.
#include "daemon/runs/run_manager.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <fstream>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "daemon/executors/run_as.h"
#include "storage/snapshot/snapshot.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/fake_executor.h"
#include "tests/testing/fake_task_runner.h"
#include "tests/testing/test_util.h"

namespace amld::daemon {
namespace {

namespace fs = std::filesystem;
using amld::storage::ContentStore;
using amld::storage::StateStore;
using RunProto = amld::v1::Run;
using amld::v1::RunConfig;
using amld::v1::RunStatus;
using RunStatusValue = amld::v1::RunStatus::Value;
using ::testing::Contains;
using ::testing::ElementsAre;
using testing::FakeClock;
using testing::FakeExecutor;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using testing::ManualTaskRunner;
using testing::TempDir;
using testing::WriteFile;

class RunManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = *StateStore::Open(dir_ / "amld.db");
    cas_ = *ContentStore::Open(dir_ / "cas");
    WriteFile(dir_ / "src/train.py", "print('hi')\n");
    WriteFile(dir_ / "src/data/x.csv", "1,2\n");
    auto snapshot = amld::storage::BuildSnapshot(dir_ / "src");
    ASSERT_TRUE(snapshot.ok()) << snapshot.status();
    ASSERT_TRUE(amld::storage::StoreSnapshot(*snapshot, *cas_).ok());
    root_ = snapshot->root;
  }

  RunManagerOptions Options(int slots) {
    RunManagerOptions options;
    options.folders.runs_root = dir_ / "runs";
    options.max_concurrent_runs = slots;
    options.base_env = {{"PATH", "/usr/bin:/bin"}};
    return options;
  }
  void StartManager(int slots) { StartManagerWith(Options(slots)); }
  void StartManagerWith(const RunManagerOptions& options) {
    manager_ = std::make_unique<RunManager>(
        RunManagerDeps{store_.get(), cas_.get(), &executor_, &clock_, &tasks_, nullptr}, options);
    ASSERT_TRUE(manager_->Start().ok());
  }

  RunConfig Config(const std::string& experiment = "exp") {
    RunConfig c;
    c.set_experiment_name(experiment);
    c.set_script("train.py");
    amld::storage::ToProto(root_, c.mutable_snapshot_root());
    return c;
  }

  std::string Submit(const RunConfig& c) {
    absl::StatusOr<RunProto> run = manager_->Submit(c, 1000);
    EXPECT_TRUE(run.ok()) << run.status();
    if (!run.ok()) return "";
    EXPECT_EQ(run->status(), RunStatus::QUEUED);
    return run->id();
  }
  std::string Submit() { return Submit(Config()); }

  RunProto Get(const std::string& id) { return *store_->GetRun(id); }
  RunStatusValue StatusOf(const std::string& id) { return Get(id).status(); }

  std::vector<RunStatusValue> History(const std::string& id) {
    std::vector<RunStatusValue> out;
    const RunProto run = Get(id);
    for (const auto& t : run.history()) out.push_back(t.status());
    return out;
  }

  TempDir dir_;
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<ContentStore> cas_;
  amld::storage::Digest root_;
  FakeClock clock_;
  ManualTaskRunner tasks_;
  FakeExecutor executor_;
  std::unique_ptr<RunManager> manager_;
};

TEST_F(RunManagerTest, RunGoesThroughEveryStatusToCompleted) {
  StartManager(1);
  std::string id = Submit();
  EXPECT_EQ(StatusOf(id), RunStatus::QUEUED);
  EXPECT_EQ(tasks_.RunAll(), 2);  // prepare and launch; then fill the spare (housekeeping)
  EXPECT_THAT(executor_.launched, ElementsAre(id));
  EXPECT_EQ(StatusOf(id), RunStatus::RUNNING);
  EXPECT_EQ(Get(id).placement(), "local");
  EXPECT_EQ(*store_->GetRunHandle(id), "handle:" + id);

  // The snapshot is materialized with the run's folders around it.
  RunPaths paths = manager_->PathsFor(id);
  EXPECT_EQ(testing::ReadFile(paths.wd / "train.py"), "print('hi')\n");
  EXPECT_TRUE(fs::is_directory(paths.outputs));
  EXPECT_TRUE(fs::is_directory(paths.logs));
  EXPECT_TRUE(fs::is_directory(paths.system_logs));
  EXPECT_TRUE(fs::is_regular_file(paths.std_log));

  clock_.Advance(absl::Seconds(5));
  executor_.ExitCode(id, 0);
  EXPECT_EQ(StatusOf(id), RunStatus::FINALIZING);
  tasks_.RunAll();
  EXPECT_THAT(History(id),
              ElementsAre(RunStatus::QUEUED, RunStatus::PREPARING, RunStatus::STARTING,
                          RunStatus::RUNNING, RunStatus::FINALIZING, RunStatus::COMPLETED));
  RunProto run = Get(id);
  EXPECT_EQ(run.error(), "");
  EXPECT_EQ(run.exit_code(), 0);
  EXPECT_EQ(run.submitter_uid(), 1000u);
  // Stamps come from the (fake) clock, and so does the id.
  EXPECT_EQ(run.created_time().seconds(), 1750000000);
  EXPECT_EQ(run.history().rbegin()->time().seconds(), 1750000005);
  EXPECT_THAT(id, ::testing::MatchesRegex("exp_1750000000_[0-9a-f]{8}"));
  EXPECT_EQ(manager_->runs_holding_slots(), 0);
}

// Issue 20: each commit costs the daemon WAL pages and system calls, and a
// trivial run's cost is mostly its commits. The handle goes with RUNNING (one
// commit, not two); QUEUED, PREPARING, STARTING, FINALIZING, the stored
// outputs and the end stay separate commits, each durable before what it
// records is visible (docs/ARCHITECTURE.md §3).
TEST_F(RunManagerTest, ATrivialRunTakesSevenCommitsFromSubmitToItsEnd) {
  StartManager(1);
  const int64_t before = store_->write_transactions();
  std::string id = Submit();
  EXPECT_EQ(store_->write_transactions() - before, 1);  // QUEUED
  tasks_.RunAll();
  ASSERT_EQ(StatusOf(id), RunStatus::RUNNING);
  EXPECT_EQ(*store_->GetRunHandle(id), "handle:" + id);
  EXPECT_EQ(store_->write_transactions() - before, 4);  // PREPARING, STARTING, RUNNING + handle
  executor_.ExitCode(id, 0);
  tasks_.RunAll();
  ASSERT_EQ(StatusOf(id), RunStatus::COMPLETED);
  EXPECT_EQ(store_->write_transactions() - before, 7);  // FINALIZING, artifacts, COMPLETED
}

// Issue 19: with the database's disk full, FINALIZING could not be recorded:
// the run stayed RUNNING, holding its slot, until a restart. Now the
// transition is retried and the run ends by itself once space returns.
TEST_F(RunManagerTest, AnEndNotRecordedOnAFullDiskIsRecordedOnceSpaceReturns) {
  const fs::path disk = dir_ / "disk";
  fs::create_directories(disk);
  if (::mount("tmpfs", disk.c_str(), "tmpfs", 0, "size=1m") != 0) {
    GTEST_SKIP() << "cannot mount a tmpfs here (needs root)";
  }
  struct Unmount {
    fs::path at;
    ~Unmount() { ::umount2(at.c_str(), MNT_DETACH); }
  } unmount{disk};
  store_.reset();
  store_ = *StateStore::Open(disk / "amld.db");
  RunManagerOptions options = Options(1);
  options.record_retry = absl::Milliseconds(20);
  StartManagerWith(options);
  std::string id = Submit();
  tasks_.RunAll();
  ASSERT_EQ(StatusOf(id), RunStatus::RUNNING);

  {
    std::ofstream filler(disk / "filler", std::ios::binary);
    const std::string block(4096, 'x');
    while (filler.write(block.data(), block.size()).flush()) {
    }
  }
  executor_.ExitCode(id, 3);
  EXPECT_EQ(StatusOf(id), RunStatus::RUNNING);  // nothing could be recorded
  EXPECT_EQ(manager_->runs_holding_slots(), 1);
  executor_.ExitCode(id, 3);  // a second report while waiting changes nothing

  fs::remove(disk / "filler");  // space returns
  tasks_.RunAll();
  EXPECT_EQ(StatusOf(id), RunStatus::FAILED);
  EXPECT_EQ(Get(id).error(), "exit code 3");
  EXPECT_EQ(Get(id).exit_code(), 3);
  EXPECT_EQ(manager_->runs_holding_slots(), 0);
}

// Issue 19: a run whose argv or environment can never be exec'd (a 10 MiB
// argument) was accepted and failed later.
TEST_F(RunManagerTest, ArgvOrEnvironmentOverTheExecLimitIsRefusedAtSubmit) {
  StartManager(1);
  RunConfig big_arg = Config();
  big_arg.add_arguments(std::string(10 << 20, 'a'));
  absl::StatusOr<RunProto> run = manager_->Submit(big_arg, 1000);
  EXPECT_EQ(run.status().code(), absl::StatusCode::kInvalidArgument) << run.status();
  EXPECT_THAT(run.status().message(), HasSubstr("argument"));
  RunConfig many_args = Config();
  for (int i = 0; i < 40; ++i) many_args.add_arguments(std::string(100000, 'b'));
  run = manager_->Submit(many_args, 1000);
  EXPECT_EQ(run.status().code(), absl::StatusCode::kInvalidArgument) << run.status();
  EXPECT_THAT(run.status().message(), HasSubstr("ARG_MAX"));
  RunConfig big_env = Config();
  (*big_env.mutable_environment()->mutable_environment_variables())["BIG"] =
      std::string(200000, 'c');
  run = manager_->Submit(big_env, 1000);
  EXPECT_EQ(run.status().code(), absl::StatusCode::kInvalidArgument) << run.status();
  EXPECT_THAT(run.status().message(), HasSubstr("environment variable BIG"));
  EXPECT_TRUE(store_->ListRuns({}).value().runs.empty()) << "nothing was accepted";
  RunConfig fine = Config();
  fine.add_arguments(std::string(100000, 'd'));
  EXPECT_TRUE(manager_->Submit(fine, 1000).ok());
}

TEST_F(RunManagerTest, SlotLimitIsRespectedAndRunsStartInOrder) {
  StartManager(2);
  std::string a = Submit(), b = Submit(), c = Submit(), d = Submit();
  tasks_.RunAll();
  EXPECT_THAT(executor_.launched, ElementsAre(a, b));
  EXPECT_EQ(StatusOf(c), RunStatus::QUEUED);
  EXPECT_EQ(manager_->queued_runs(), 2);

  executor_.ExitCode(b, 0);
  // b's slot is held until its outputs are stored.
  EXPECT_EQ(StatusOf(c), RunStatus::QUEUED);
  tasks_.RunAll();
  EXPECT_EQ(StatusOf(b), RunStatus::COMPLETED);
  EXPECT_THAT(executor_.launched, ElementsAre(a, b, c));
  EXPECT_EQ(StatusOf(d), RunStatus::QUEUED);

  executor_.ExitCode(a, 0);
  tasks_.RunAll();
  EXPECT_THAT(executor_.launched, ElementsAre(a, b, c, d));
  EXPECT_EQ(manager_->runs_holding_slots(), 2);
}

TEST_F(RunManagerTest, CancelOfAQueuedRunEndsItAtOnceAndItNeverStarts) {
  StartManager(1);
  std::string a = Submit(), b = Submit();
  tasks_.RunAll();
  absl::StatusOr<RunProto> canceled = manager_->Cancel(b, "changed my mind");
  ASSERT_TRUE(canceled.ok());
  EXPECT_EQ(canceled->status(), RunStatus::CANCELED);
  EXPECT_THAT(canceled->error(), HasSubstr("canceled before it started: changed my mind"));
  EXPECT_THAT(History(b), ElementsAre(RunStatus::QUEUED, RunStatus::CANCELED));
  executor_.ExitCode(a, 0);
  tasks_.RunAll();
  EXPECT_THAT(executor_.launched, ElementsAre(a));
  EXPECT_THAT(executor_.canceled, IsEmpty());
  // Cancelling a terminal run changes nothing.
  EXPECT_EQ(manager_->Cancel(b, "again")->status(), RunStatus::CANCELED);
  EXPECT_EQ(manager_->Cancel(a, "late")->status(), RunStatus::COMPLETED);
  EXPECT_EQ(manager_->Cancel("nope", "").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(RunManagerTest, CancelOfARunningRunAsksTheExecutorAndEndsCanceled) {
  StartManager(1);
  std::string a = Submit();
  tasks_.RunAll();
  EXPECT_EQ(manager_->Cancel(a, "stop")->status(), RunStatus::CANCEL_REQUESTED);
  EXPECT_THAT(executor_.canceled, ElementsAre(a));
  EXPECT_EQ(manager_->Cancel(a, "twice")->status(), RunStatus::CANCEL_REQUESTED);
  EXPECT_THAT(executor_.canceled, ElementsAre(a));  // asked once
  ExitStatus e;
  e.canceled = true;
  e.signal = SIGTERM;
  executor_.Exit(a, e);
  tasks_.RunAll();
  RunProto run = Get(a);
  EXPECT_EQ(run.status(), RunStatus::CANCELED);
  EXPECT_EQ(run.error(), "canceled: stop");
  EXPECT_EQ(run.exit_signal(), SIGTERM);
  EXPECT_THAT(History(a), ElementsAre(RunStatus::QUEUED, RunStatus::PREPARING, RunStatus::STARTING,
                                      RunStatus::RUNNING, RunStatus::CANCEL_REQUESTED,
                                      RunStatus::FINALIZING, RunStatus::CANCELED));
}

TEST_F(RunManagerTest, CancelWhilePreparingNeverLaunches) {
  StartManager(1);
  std::string a = Submit();
  ASSERT_EQ(tasks_.pending(), 1u);  // the prepare task, not run yet
  EXPECT_EQ(manager_->Cancel(a, "")->status(), RunStatus::CANCEL_REQUESTED);
  tasks_.RunAll();
  EXPECT_EQ(StatusOf(a), RunStatus::CANCELED);
  EXPECT_THAT(executor_.launched, IsEmpty());
  EXPECT_EQ(manager_->runs_holding_slots(), 0);
}

TEST_F(RunManagerTest, CancelWhileStartingIsSentOnceTheProcessExists) {
  StartManager(1);
  std::string a = Submit();
  executor_.on_launch = [&](const LaunchSpec&) {
    // The cancel arrives while Launch is still in progress.
    EXPECT_EQ(manager_->Cancel(a, "")->status(), RunStatus::CANCEL_REQUESTED);
    EXPECT_THAT(executor_.canceled, IsEmpty());
  };
  tasks_.RunAll();
  EXPECT_THAT(executor_.canceled, ElementsAre(a));
  EXPECT_EQ(StatusOf(a), RunStatus::CANCEL_REQUESTED);
}

TEST_F(RunManagerTest, ExitsBecomeTheRightFinalStatusAndReason) {
  StartManager(8);
  RunConfig limited = Config();
  limited.set_max_run_duration_seconds(30);
  std::string code = Submit(), sig = Submit(), timeout = Submit(limited), noexec = Submit(),
              lost = Submit();
  tasks_.RunAll();
  executor_.ExitCode(code, 3);
  ExitStatus e;
  e.signal = SIGKILL;
  executor_.Exit(sig, e);
  e.timed_out = true;
  executor_.Exit(timeout, e);
  ExitStatus ne;
  ne.exit_code = 127;
  ne.launch_error = "exec python3: No such file or directory";
  executor_.Exit(noexec, ne);
  executor_.Exit(lost, absl::InternalError("supervisor lost: pid 42 vanished"));
  tasks_.RunAll();
  EXPECT_EQ(Get(code).error(), "exit code 3");
  EXPECT_EQ(Get(code).exit_code(), 3);
  EXPECT_EQ(Get(sig).error(), "killed by signal 9 (SIGKILL)");
  EXPECT_EQ(Get(timeout).error(), "timed out after 30 s");
  EXPECT_EQ(Get(noexec).error(), "could not start: exec python3: No such file or directory");
  EXPECT_THAT(Get(lost).error(), HasSubstr("daemon lost the run: supervisor lost"));
  for (const std::string& id : {code, sig, noexec, lost}) {
    EXPECT_EQ(StatusOf(id), RunStatus::FAILED) << id;
  }
  // azureml cancels a run past its max_run_duration_seconds.
  EXPECT_EQ(StatusOf(timeout), RunStatus::CANCELED);
}

TEST_F(RunManagerTest, AnExitReportedBeforeLaunchReturnsIsNotLost) {
  StartManager(1);
  std::string a = Submit();
  executor_.on_launch = [&](const LaunchSpec& spec) { executor_.ExitCode(spec.run_id, 0); };
  tasks_.RunAll();
  EXPECT_EQ(StatusOf(a), RunStatus::COMPLETED);
  EXPECT_THAT(History(a),
              ElementsAre(RunStatus::QUEUED, RunStatus::PREPARING, RunStatus::STARTING,
                          RunStatus::RUNNING, RunStatus::FINALIZING, RunStatus::COMPLETED));
}

TEST_F(RunManagerTest, ALaunchThatFailsEndsFailedAndFreesTheSlot) {
  StartManager(1);
  executor_.launch_error = absl::InternalError("fork: out of memory");
  std::string a = Submit(), b = Submit();
  tasks_.RunAll();
  EXPECT_EQ(StatusOf(a), RunStatus::FAILED);
  EXPECT_EQ(Get(a).error(), "could not start: fork: out of memory");
  EXPECT_EQ(StatusOf(b), RunStatus::FAILED);  // got the slot, failed the same way
}

TEST_F(RunManagerTest, LaunchSpecCarriesArgvEnvironmentAndLimits) {
  StartManager(1);
  RunConfig c = Config();
  c.add_arguments("--epochs");
  c.add_arguments("3");
  c.set_max_run_duration_seconds(60);
  (*c.mutable_environment()->mutable_environment_variables())["SEED"] = "7";
  std::string a = Submit(c);
  tasks_.RunAll();
  const LaunchSpec& spec = executor_.specs.at(a);
  EXPECT_THAT(spec.argv, ElementsAre("python3", "train.py", "--epochs", "3"));
  EXPECT_EQ(spec.run_dir, dir_ / "runs" / a);
  EXPECT_EQ(spec.max_duration, absl::Seconds(60));
  std::map<std::string, std::string> env(spec.env.begin(), spec.env.end());
  EXPECT_EQ(env["SEED"], "7");
  EXPECT_EQ(env["AMLD_RUN_ID"], a);
  EXPECT_EQ(env["PATH"], "/usr/bin:/bin");
}

TEST_F(RunManagerTest, OutputsAndLogsBecomeArtifactsButLinksAndFifosDoNot) {
  StartManager(1);
  std::string a = Submit();
  executor_.on_launch = [&](const LaunchSpec& spec) {
    RunPaths p = manager_->PathsFor(spec.run_id);
    WriteFile(p.outputs / "model.json", "{\"w\": 1}");
    WriteFile(p.outputs / "sub/deep.bin", std::string(3000, 'x'));
    WriteFile(p.logs / "train.log", "epoch 1\n");
    WriteFile(p.std_log, "hello\n");
    ASSERT_EQ(::symlink("/etc/passwd", (p.outputs / "passwd").c_str()), 0);
    ASSERT_EQ(::symlink("/etc", (p.outputs / "etc").c_str()), 0);
    ASSERT_EQ(::mkfifo((p.logs / "fifo").c_str(), 0644), 0);
  };
  tasks_.RunAll();
  executor_.ExitCode(a, 0);
  tasks_.RunAll();
  EXPECT_EQ(StatusOf(a), RunStatus::COMPLETED);
  auto artifacts = store_->ListArtifacts(a);
  ASSERT_TRUE(artifacts.ok());
  std::vector<std::string> paths;
  for (const auto& art : *artifacts) paths.push_back(art.path);
  EXPECT_THAT(paths, ElementsAre("logs/train.log", "outputs/model.json", "outputs/sub/deep.bin",
                                 "user_logs/std_log.txt"));
  EXPECT_EQ(*cas_->Read(store_->GetArtifact(a, "outputs/model.json")->digest), "{\"w\": 1}");
  EXPECT_EQ(*cas_->Read(store_->GetArtifact(a, "user_logs/std_log.txt")->digest), "hello\n");
}

TEST_F(RunManagerTest, ASnapshotWithAFileNamedOutputsFailsWithAClearReason) {
  WriteFile(dir_ / "src2/train.py", "x");
  WriteFile(dir_ / "src2/outputs", "not a folder");
  // Kept by a rule (by default a walk leaves it out), as any client could.
  WriteFile(dir_ / "src2/.amlignore", "!/outputs\n");
  auto snapshot = amld::storage::BuildSnapshot(dir_ / "src2");
  ASSERT_TRUE(amld::storage::StoreSnapshot(*snapshot, *cas_).ok());
  StartManager(1);
  RunConfig c = Config();
  amld::storage::ToProto(snapshot->root, c.mutable_snapshot_root());
  std::string a = Submit(c);
  tasks_.RunAll();
  EXPECT_EQ(StatusOf(a), RunStatus::FAILED);
  EXPECT_THAT(Get(a).error(), HasSubstr("could not prepare the run"));
  EXPECT_THAT(Get(a).error(), HasSubstr("outputs"));
  EXPECT_THAT(executor_.launched, IsEmpty());
}

TEST_F(RunManagerTest, SubmitRefusesMissingBlobsAndScriptsNamingThem) {
  StartManager(1);
  RunConfig c = Config();
  c.set_script("missing.py");
  absl::StatusOr<RunProto> r = manager_->Submit(c, 0);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("missing.py"));

  c = Config();
  c.set_script("data");  // a folder, not a file
  EXPECT_EQ(manager_->Submit(c, 0).status().code(), absl::StatusCode::kFailedPrecondition);

  // A tree whose file blob was never uploaded.
  WriteFile(dir_ / "src3/train.py", "never uploaded");
  auto snapshot = amld::storage::BuildSnapshot(dir_ / "src3");
  for (const auto& [digest, bytes] : snapshot->directories) {
    ASSERT_TRUE(cas_->PutVerified(digest, bytes).ok());
  }
  c = Config();
  amld::storage::ToProto(snapshot->root, c.mutable_snapshot_root());
  r = manager_->Submit(c, 0);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr(snapshot->files[0].digest.ToString()));
  EXPECT_THAT(*store_->ListRuns({}), ::testing::Field(&amld::storage::RunPage::runs, IsEmpty()));
}

TEST_F(RunManagerTest, WatchersSeeEveryChangeOnceAndInOrder) {
  StartManager(1);
  std::string a = Submit();
  std::vector<RunStatusValue> seen;
  auto sub = manager_->Subscribe(a, [&](const RunProto& r) { seen.push_back(r.status()); });
  ASSERT_TRUE(sub.ok());
  EXPECT_EQ(sub->run.status(), RunStatus::QUEUED);
  EXPECT_NE(sub->listener_id, 0u);
  tasks_.RunAll();
  executor_.ExitCode(a, 1);
  tasks_.RunAll();
  EXPECT_THAT(seen, ElementsAre(RunStatus::PREPARING, RunStatus::STARTING, RunStatus::RUNNING,
                                RunStatus::FINALIZING, RunStatus::FAILED));
  manager_->Unsubscribe(a, sub->listener_id);
  auto done = manager_->Subscribe(a, [&](const RunProto&) { ADD_FAILURE() << "terminal run"; });
  EXPECT_EQ(done->listener_id, 0u);
  EXPECT_EQ(manager_->Subscribe("nope", nullptr).status().code(), absl::StatusCode::kNotFound);
}

// Runs left behind by a daemon that died, each in one status.
class RecoveryTest : public RunManagerTest {
 protected:
  std::string Left(RunStatusValue status, const std::string& handle) {
    static int n = 0;
    amld::storage::NewRun nr;
    nr.id = absl::StrCat("exp_1_", ++n);
    nr.config = Config();
    nr.now = clock_.Now();
    EXPECT_TRUE(store_->InsertRun(nr).ok());
    std::vector<RunStatusValue> path;
    if (status == RunStatus::CANCEL_REQUESTED) {
      path = {RunStatus::PREPARING, RunStatus::STARTING, RunStatus::RUNNING,
              RunStatus::CANCEL_REQUESTED};
      if (handle.empty()) path = {RunStatus::CANCEL_REQUESTED};
    } else {
      for (RunStatusValue s :
           {RunStatus::PREPARING, RunStatus::STARTING, RunStatus::RUNNING, RunStatus::FINALIZING}) {
        if (s > status) break;
        path.push_back(s);
      }
    }
    for (RunStatusValue s : path) EXPECT_TRUE(store_->Transition(nr.id, s, {}, clock_.Now()).ok());
    if (!handle.empty()) {
      EXPECT_TRUE(store_->SetRunHandle(nr.id, handle).ok());
    }
    return nr.id;
  }
};

TEST_F(RecoveryTest, EachLeftoverStatusIsTakenOverDeliberatelyAndNothingRunsTwice) {
  std::string queued1 = Left(RunStatus::QUEUED, "");
  std::string preparing = Left(RunStatus::PREPARING, "");
  std::string starting_blind = Left(RunStatus::STARTING, "");
  std::string starting = Left(RunStatus::STARTING, "h-starting");
  std::string running = Left(RunStatus::RUNNING, "h-running");
  std::string finalizing = Left(RunStatus::FINALIZING, "h-final");
  std::string cancel = Left(RunStatus::CANCEL_REQUESTED, "h-cancel");
  std::string cancel_blind = Left(RunStatus::CANCEL_REQUESTED, "");
  std::string running_blind = Left(RunStatus::RUNNING, "");
  std::string queued2 = Left(RunStatus::QUEUED, "");
  // Half a run folder from the dead daemon's preparation.
  WriteFile(dir_ / "runs" / preparing / "wd/half.py", "partial");

  StartManager(1);
  EXPECT_THAT(executor_.reattached, ElementsAre(starting + " h-starting", running + " h-running",
                                                finalizing + " h-final", cancel + " h-cancel"));
  EXPECT_THAT(executor_.canceled, ElementsAre(cancel));
  EXPECT_EQ(StatusOf(starting), RunStatus::RUNNING);
  EXPECT_EQ(StatusOf(starting_blind), RunStatus::FAILED);
  EXPECT_THAT(Get(starting_blind).error(), HasSubstr("Resubmit"));
  EXPECT_EQ(StatusOf(cancel_blind), RunStatus::CANCELED);
  EXPECT_EQ(StatusOf(running_blind), RunStatus::FAILED);
  EXPECT_THAT(Get(running_blind).error(), HasSubstr("daemon lost the run"));

  // The PREPARING run is prepared afresh (over the limit: it held a slot).
  tasks_.RunAll();
  EXPECT_THAT(executor_.launched, ElementsAre(preparing));
  EXPECT_FALSE(fs::exists(dir_ / "runs" / preparing / "wd/half.py"));
  EXPECT_EQ(StatusOf(queued1), RunStatus::QUEUED);

  // Re-adopted runs that ended meanwhile are finalized from their exit.
  executor_.ExitCode(finalizing, 0);
  executor_.ExitCode(running, 2);
  ExitStatus c;
  c.canceled = true;
  executor_.Exit(cancel, c);
  executor_.ExitCode(starting, 0);
  tasks_.RunAll();
  EXPECT_EQ(StatusOf(finalizing), RunStatus::COMPLETED);
  EXPECT_EQ(Get(running).error(), "exit code 2");
  EXPECT_EQ(StatusOf(cancel), RunStatus::CANCELED);
  EXPECT_EQ(StatusOf(starting), RunStatus::COMPLETED);
  EXPECT_THAT(executor_.launched, ElementsAre(preparing));  // slot still held by it

  executor_.ExitCode(preparing, 0);
  tasks_.RunAll();
  EXPECT_THAT(executor_.launched, ElementsAre(preparing, queued1));  // FIFO kept
  executor_.ExitCode(queued1, 0);
  tasks_.RunAll();
  EXPECT_THAT(executor_.launched, ElementsAre(preparing, queued1, queued2));
}

// Started but never recorded (the daemon died between sbatch and saving
// the job id, or could not save it): what the executor finds is adopted —
// and canceled again when that was asked; what it does not find ends
// FAILED saying where it looked. Nothing is launched again.
TEST_F(RecoveryTest, ARunStartedButNotRecordedIsFoundAndAdopted) {
  std::string starting = Left(RunStatus::STARTING, "");
  std::string cancel = Left(RunStatus::CANCEL_REQUESTED, "");
  std::string lost = Left(RunStatus::RUNNING, "");
  std::string queued = Left(RunStatus::QUEUED, "");
  executor_.unrecorded[starting] = "job-7";
  executor_.unrecorded[cancel] = "job-8";

  StartManager(1);
  EXPECT_THAT(executor_.looked_for, ElementsAre(starting, cancel, lost));
  EXPECT_THAT(executor_.looked_for_as, ElementsAre(-1, -1, -1));  // user mode: as the daemon
  EXPECT_THAT(executor_.reattached, ElementsAre(starting + " job-7", cancel + " job-8"));
  EXPECT_THAT(executor_.canceled, ElementsAre(cancel));
  EXPECT_EQ(*store_->GetRunHandle(starting), "job-7");
  EXPECT_EQ(StatusOf(starting), RunStatus::RUNNING);
  EXPECT_EQ(StatusOf(lost), RunStatus::FAILED);
  EXPECT_THAT(Get(lost).error(), HasSubstr("no job named " + lost));
  EXPECT_TRUE(executor_.launched.empty());

  executor_.ExitCode(starting, 0);
  ExitStatus c;
  c.canceled = true;
  executor_.Exit(cancel, c);
  tasks_.RunAll();
  EXPECT_EQ(StatusOf(starting), RunStatus::COMPLETED);
  EXPECT_EQ(StatusOf(cancel), RunStatus::CANCELED);
  EXPECT_THAT(executor_.launched, ElementsAre(queued));
}

// System mode: the executor looks for such a run as its submitter (Slurm:
// their squeue), never with the daemon's rights.
TEST_F(RecoveryTest, SystemModeLooksForAnUnrecordedRunAsItsSubmitter) {
  if (!LookupAccount(65534).ok()) GTEST_SKIP() << "this machine has no uid 65534";
  amld::storage::NewRun nr;
  nr.id = "exp_1_theirs";
  nr.config = Config();
  nr.submitter_uid = 65534;
  nr.now = clock_.Now();
  ASSERT_TRUE(store_->InsertRun(nr).ok());
  for (RunStatusValue s : {RunStatus::PREPARING, RunStatus::STARTING}) {
    ASSERT_TRUE(store_->Transition(nr.id, s, {}, clock_.Now()).ok());
  }
  executor_.unrecorded[nr.id] = "job-9";
  RunManagerOptions options = Options(1);
  options.run_as_submitter = true;
  StartManagerWith(options);
  EXPECT_THAT(executor_.looked_for, ElementsAre(nr.id));
  EXPECT_THAT(executor_.looked_for_as, ElementsAre(65534));
  EXPECT_THAT(executor_.reattached, ElementsAre(nr.id + " job-9"));
}

// An executor whose Launch only queues the run elsewhere (Slurm) says so
// from inside Launch; the run stays STARTING, its placement carrying the
// other scheduler's words, until that scheduler starts it.
TEST_F(RunManagerTest, ARunWaitingInAnotherSchedulerStaysStartingWithItsReason) {
  StartManager(1);
  executor_.on_launch = [&](const LaunchSpec& spec) {
    executor_.Progress(spec.run_id, false, "slurm:7", "SUBMITTED");
  };
  std::vector<RunProto> seen;
  std::string id = Submit();
  auto sub = manager_->Subscribe(id, [&](const RunProto& r) { seen.push_back(r); });
  ASSERT_TRUE(sub.ok());
  tasks_.RunAll();
  EXPECT_EQ(StatusOf(id), RunStatus::STARTING);
  EXPECT_EQ(Get(id).placement(), "slurm:7 SUBMITTED");
  EXPECT_EQ(*store_->GetRunHandle(id), "handle:" + id);  // stored before it is shown

  executor_.Progress(id, false, "slurm:7", "PENDING (Resources)");
  EXPECT_EQ(StatusOf(id), RunStatus::STARTING);
  EXPECT_EQ(Get(id).placement(), "slurm:7 PENDING (Resources)");
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.back().placement(), "slurm:7 PENDING (Resources)");  // watchers see it

  executor_.Progress(id, true, "slurm:7 on node-1", "RUNNING");
  EXPECT_EQ(StatusOf(id), RunStatus::RUNNING);
  EXPECT_EQ(Get(id).placement(), "slurm:7 on node-1");
  executor_.ExitCode(id, 0);
  tasks_.RunAll();
  EXPECT_THAT(History(id),
              ElementsAre(RunStatus::QUEUED, RunStatus::PREPARING, RunStatus::STARTING,
                          RunStatus::RUNNING, RunStatus::FINALIZING, RunStatus::COMPLETED));
  EXPECT_EQ(Get(id).placement(), "slurm:7 on node-1");
  manager_->Unsubscribe(id, sub->listener_id);
}

TEST_F(RunManagerTest, ARunCanceledWhileWaitingElsewhereEndsCanceledWithoutRunning) {
  StartManager(1);
  executor_.on_launch = [&](const LaunchSpec& spec) {
    executor_.Progress(spec.run_id, false, "slurm:8", "SUBMITTED");
  };
  std::string id = Submit();
  tasks_.RunAll();
  EXPECT_EQ(manager_->Cancel(id, "no longer needed")->status(), RunStatus::CANCEL_REQUESTED);
  EXPECT_THAT(executor_.canceled, ElementsAre(id));  // scancel, for Slurm
  ExitStatus e;
  e.canceled = true;
  executor_.Exit(id, e);
  tasks_.RunAll();
  EXPECT_EQ(StatusOf(id), RunStatus::CANCELED);
  EXPECT_THAT(History(id), Not(Contains(RunStatus::RUNNING)));
  EXPECT_EQ(manager_->runs_holding_slots(), 0);
}

TEST_F(RunManagerTest, ARunEndedByTheOtherSchedulerBeforeItStartedFailsWithItsReason) {
  StartManager(1);
  executor_.on_launch = [&](const LaunchSpec& spec) {
    executor_.Progress(spec.run_id, false, "slurm:9", "SUBMITTED");
  };
  std::string id = Submit();
  tasks_.RunAll();
  ExitStatus e;
  e.failure = "Slurm ended job 9 BOOT_FAIL";
  executor_.Exit(id, e);
  tasks_.RunAll();
  EXPECT_EQ(StatusOf(id), RunStatus::FAILED);
  EXPECT_EQ(Get(id).error(), "Slurm ended job 9 BOOT_FAIL");
  EXPECT_THAT(History(id), ElementsAre(RunStatus::QUEUED, RunStatus::PREPARING, RunStatus::STARTING,
                                       RunStatus::FAILED));
}

// A run that ran between two looks of its executor still passes RUNNING.
TEST_F(RunManagerTest, ARunThatCompletedWhileReportedWaitingPassesRunning) {
  StartManager(1);
  executor_.on_launch = [&](const LaunchSpec& spec) {
    executor_.Progress(spec.run_id, false, "slurm:10", "SUBMITTED");
  };
  std::string id = Submit();
  tasks_.RunAll();
  executor_.ExitCode(id, 0);
  tasks_.RunAll();
  EXPECT_EQ(StatusOf(id), RunStatus::COMPLETED);
  EXPECT_THAT(History(id), Contains(RunStatus::RUNNING));
}

TEST_F(RecoveryTest, AStartingRunStillWaitingElsewhereStaysStartingUntilItRuns) {
  std::string waiting = Left(RunStatus::STARTING, "h-slurm");
  executor_.on_reattach = [&](const std::string& run_id) {
    executor_.Progress(run_id, false, "slurm:11", "re-adopted");
  };
  StartManager(1);
  EXPECT_EQ(StatusOf(waiting), RunStatus::STARTING);
  EXPECT_EQ(Get(waiting).placement(), "slurm:11 re-adopted");
  executor_.Progress(waiting, true, "slurm:11 on node-2", "RUNNING");
  EXPECT_EQ(StatusOf(waiting), RunStatus::RUNNING);
  EXPECT_EQ(Get(waiting).placement(), "slurm:11 on node-2");
}

TEST_F(RecoveryTest, AReattachThatFailsEndsTheRunFailedSayingWhy) {
  std::string running = Left(RunStatus::RUNNING, "h");
  executor_.reattach_error = absl::NotFoundError("shim 123 is gone and left no exit file");
  StartManager(1);
  EXPECT_EQ(StatusOf(running), RunStatus::FAILED);
  EXPECT_THAT(Get(running).error(),
              HasSubstr("daemon lost the run after a restart: shim 123 is gone"));
  EXPECT_EQ(manager_->runs_holding_slots(), 0);
}

// ---------------------------------------------------------------------------
// Scheduling: priorities, users taking turns, CPU slots and GPUs, limits.

class SchedulingTest : public RunManagerTest {
 protected:
  RunConfig Asking(int gpus, int cpus = 0, int priority = 0) {
    RunConfig c = Config();
    c.mutable_resources()->set_gpus(gpus);
    c.mutable_resources()->set_cpus(cpus);
    c.set_priority(priority);
    return c;
  }
  std::string SubmitAs(const RunConfig& c, uint32_t uid) {
    absl::StatusOr<RunProto> run = manager_->Submit(c, uid);
    EXPECT_TRUE(run.ok()) << run.status();
    return run.ok() ? run->id() : "";
  }
  // CUDA_VISIBLE_DEVICES as launched, or "unset".
  std::string VisibleGpus(const std::string& id) {
    for (const auto& [name, value] : executor_.specs.at(id).env) {
      if (name == "CUDA_VISIBLE_DEVICES") return value;
    }
    return "unset";
  }
  RunManagerOptions GpuOptions(int slots, std::vector<int> gpus) {
    RunManagerOptions o = Options(slots);
    o.cpus = 8;
    o.gpus = std::move(gpus);
    return o;
  }
};

TEST_F(SchedulingTest, GpusReachTheProcessNeverOverlapAndAreRecorded) {
  StartManagerWith(GpuOptions(3, {0, 1, 2}));
  std::string one = Submit(Asking(1));
  std::string two = Submit(Asking(2));
  std::string again = Submit(Asking(1));
  std::string cpu_only = Submit(Asking(0));
  tasks_.RunAll();
  // "again" needs a GPU and none is free; "cpu_only" waits behind it.
  EXPECT_THAT(executor_.launched, ElementsAre(one, two));
  EXPECT_EQ(VisibleGpus(one), "0");
  EXPECT_EQ(VisibleGpus(two), "1,2");
  EXPECT_THAT(Get(one).assigned_gpus(), ElementsAre(0));
  EXPECT_THAT(Get(two).assigned_gpus(), ElementsAre(1, 2));
  EXPECT_THAT(Get(again).assigned_gpus(), IsEmpty());
  EXPECT_THAT(manager_->local_target().free_gpus, IsEmpty());

  executor_.ExitCode(one, 0);
  tasks_.RunAll();
  EXPECT_THAT(executor_.launched, ElementsAre(one, two, again, cpu_only));
  EXPECT_EQ(VisibleGpus(again), "0");
  EXPECT_EQ(VisibleGpus(cpu_only), "");                   // set, and empty: no GPU at all
  EXPECT_THAT(Get(one).assigned_gpus(), ElementsAre(0));  // kept after the end
  EXPECT_EQ(manager_->local_target().free_cpus, 8 - 3);
}

// amld.yaml default_gpus: a local run with no `resources` gets that many; one
// that asked (even for 0) keeps its request. A run without a GPU on a machine
// with GPUs finds one line saying so at the top of its output; one with GPUs
// finds nothing there.
TEST_F(SchedulingTest, DefaultGpusAndTheNoGpuLine) {
  RunManagerOptions o = GpuOptions(3, {0, 1});
  o.default_gpus = 1;
  StartManagerWith(o);
  std::string defaulted = Submit(Config());
  std::string none = Submit(Asking(0));
  tasks_.RunAll();
  EXPECT_THAT(executor_.launched, ElementsAre(defaulted, none));
  EXPECT_EQ(Get(defaulted).config().resources().gpus(), 1);
  EXPECT_EQ(VisibleGpus(defaulted), "0");
  EXPECT_EQ(VisibleGpus(none), "");
  EXPECT_EQ(testing::ReadFile(manager_->PathsFor(defaulted).std_log), "");
  EXPECT_EQ(testing::ReadFile(manager_->PathsFor(none).std_log), NoGpuNotice({0, 1}));
  const std::string notice = NoGpuNotice({0, 1});
  EXPECT_THAT(notice, HasSubstr("amld: this run has no GPU (CUDA_VISIBLE_DEVICES is empty; this "
                                "machine has 2: 0,1)"));
  EXPECT_EQ(std::count(notice.begin(), notice.end(), '\n'), 1);
  EXPECT_TRUE(absl::EndsWith(notice, "\n"));
}

TEST_F(SchedulingTest, ThereIsNoNoGpuLineOnAMachineWithoutGpus) {
  StartManagerWith(GpuOptions(2, {}));
  std::string plain = Submit(Config());
  tasks_.RunAll();
  EXPECT_THAT(executor_.launched, ElementsAre(plain));
  EXPECT_EQ(testing::ReadFile(manager_->PathsFor(plain).std_log), "");
}

TEST_F(SchedulingTest, PriorityFirstThenUsersTakeTurnsThenFifo) {
  StartManager(1);
  std::string first = SubmitAs(Config(), 1000);  // starts at once
  std::string a2 = SubmitAs(Config(), 1000);
  std::string a3 = SubmitAs(Config(), 1000);
  std::string b1 = SubmitAs(Config(), 2000);
  std::string urgent = SubmitAs(Asking(0, 0, 50), 1000);
  std::string low = SubmitAs(Asking(0, 0, -1), 3000);
  tasks_.RunAll();
  for (int i = 0; i < 5; ++i) {
    executor_.ExitCode(executor_.launched.back(), 0);
    tasks_.RunAll();
  }
  EXPECT_THAT(executor_.launched, ElementsAre(first, urgent, b1, a2, a3, low));
}

TEST_F(SchedulingTest, CpuSlotsLimitWhatRunsTogether) {
  RunManagerOptions o = Options(4);
  o.cpus = 3;
  StartManagerWith(o);
  std::string two = Submit(Asking(0, 2));
  std::string also_two = Submit(Asking(0, 2));
  std::string one = Submit(Asking(0, 1));
  tasks_.RunAll();
  EXPECT_THAT(executor_.launched, ElementsAre(two));  // head-of-line: "one" waits too
  executor_.ExitCode(two, 0);
  tasks_.RunAll();
  EXPECT_THAT(executor_.launched, ElementsAre(two, also_two, one));
}

TEST_F(SchedulingTest, SubmitRefusesWhatTheTargetCannotHoldSayingItsCapacity) {
  RunManagerOptions o = GpuOptions(2, {0});
  o.cpus = 2;
  StartManagerWith(o);
  auto refused = [&](const RunConfig& c) {
    absl::StatusOr<RunProto> run = manager_->Submit(c, 1000);
    EXPECT_EQ(run.status().code(), absl::StatusCode::kInvalidArgument) << run.status();
    return std::string(run.status().message());
  };
  EXPECT_THAT(refused(Asking(2)), HasSubstr("asks for 2 GPUs but the local target has 1 (ids 0)"));
  EXPECT_THAT(refused(Asking(0, 3)), HasSubstr("asks for 3 CPU slots but the local target has 2"));
  EXPECT_THAT(refused(Asking(0, 0, 101)), HasSubstr("priority must be between -100 and 100"));
  EXPECT_THAT(refused(Asking(0, 0, -101)), HasSubstr("got -101"));
  EXPECT_THAT(refused(Asking(-1)), HasSubstr("must not be negative"));
  RunConfig cuda = Config();
  (*cuda.mutable_environment()->mutable_environment_variables())["CUDA_VISIBLE_DEVICES"] = "0";
  EXPECT_THAT(refused(cuda), HasSubstr("resources.gpus"));
  EXPECT_TRUE(store_->ListRuns({})->runs.empty());  // nothing was queued
  // The edges are fine.
  Submit(Asking(1, 2, 100));
  Submit(Asking(0, 0, -100));
}

TEST_F(SchedulingTest, TheDaemonsDurationLimitsApply) {
  RunManagerOptions o = Options(4);
  o.default_run_duration_seconds = 60;
  o.max_run_duration_seconds = 120;
  StartManagerWith(o);
  std::string unset = Submit(Config());
  RunConfig asks = Config();
  asks.set_max_run_duration_seconds(100);
  std::string hundred = Submit(asks);
  asks.set_max_run_duration_seconds(121);
  absl::StatusOr<RunProto> too_long = manager_->Submit(asks, 1000);
  EXPECT_EQ(too_long.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(too_long.status().message()),
              HasSubstr("above this daemon's limit of 120 s"));
  tasks_.RunAll();
  EXPECT_EQ(Get(unset).config().max_run_duration_seconds(), 60);
  EXPECT_EQ(executor_.specs.at(unset).max_duration, absl::Seconds(60));
  EXPECT_EQ(executor_.specs.at(hundred).max_duration, absl::Seconds(100));
  // The reason names the limit that applied.
  ExitStatus timed_out;
  timed_out.timed_out = true;
  timed_out.signal = SIGTERM;
  executor_.Exit(unset, timed_out);
  tasks_.RunAll();
  EXPECT_EQ(Get(unset).error(), "timed out after 60 s");

  EXPECT_EQ(*EffectiveRunDuration(0, 0, 0), 0);
  EXPECT_EQ(*EffectiveRunDuration(0, 0, 30), 30);  // a cap alone is the default
  EXPECT_EQ(*EffectiveRunDuration(10, 60, 0), 10);
}

TEST_F(SchedulingTest, ReadoptedRunsKeepTheirGpusAcrossARestart) {
  StartManagerWith(GpuOptions(4, {0, 1}));
  std::string holder = Submit(Asking(1));
  std::string both = Submit(Asking(2));
  tasks_.RunAll();
  EXPECT_THAT(executor_.launched, ElementsAre(holder));
  EXPECT_EQ(VisibleGpus(holder), "0");

  manager_.reset();  // the daemon goes away; "holder" runs on
  StartManagerWith(GpuOptions(4, {0, 1}));
  tasks_.RunAll();
  EXPECT_THAT(executor_.reattached, ElementsAre(holder + " handle:" + holder));
  // GPU 0 is still taken: "both" must wait, and a newcomer gets GPU 1 only
  // once "both" (the head of the queue) has run.
  EXPECT_THAT(executor_.launched, ElementsAre(holder));
  EXPECT_THAT(manager_->local_target().free_gpus, ElementsAre(1));
  std::string later = Submit(Asking(1));
  tasks_.RunAll();
  EXPECT_THAT(executor_.launched, ElementsAre(holder));
  executor_.ExitCode(holder, 0);
  tasks_.RunAll();
  EXPECT_THAT(executor_.launched, ElementsAre(holder, both));
  EXPECT_EQ(VisibleGpus(both), "0,1");
  executor_.ExitCode(both, 0);
  tasks_.RunAll();
  EXPECT_EQ(VisibleGpus(later), "0");
}

// A run the dead daemon left in `status`, asking for `gpus`, with the GPUs
// it had been given.
class SchedulingRecoveryTest : public SchedulingTest {
 protected:
  std::string Leave(RunStatusValue status, int gpus, std::vector<int> assigned,
                    const std::string& handle) {
    static int n = 0;
    clock_.Advance(absl::Seconds(1));  // recovery goes oldest first
    amld::storage::NewRun nr;
    nr.id = absl::StrCat("exp_1_", 100 + ++n);
    nr.config = Asking(gpus);
    nr.submitter_uid = 1000;
    nr.now = clock_.Now();
    EXPECT_TRUE(store_->InsertRun(nr).ok());
    amld::storage::TransitionDetails given;
    given.assigned_gpus = std::move(assigned);
    for (RunStatusValue s : {RunStatus::PREPARING, RunStatus::STARTING, RunStatus::RUNNING}) {
      if (s > status) break;
      EXPECT_TRUE(
          store_
              ->Transition(nr.id, s,
                           s == RunStatus::PREPARING ? given : amld::storage::TransitionDetails{},
                           clock_.Now())
              .ok());
    }
    if (!handle.empty()) {
      EXPECT_TRUE(store_->SetRunHandle(nr.id, handle).ok());
    }
    return nr.id;
  }
};

TEST_F(SchedulingRecoveryTest, NothingStartsBeforeEveryRunningRunHasItsGpusBack) {
  std::string queued = Leave(RunStatus::QUEUED, 1, {}, "");
  // Ends FAILED during recovery, which frees a slot before "running" is seen.
  std::string lost = Leave(RunStatus::RUNNING, 1, {1}, "");
  std::string running = Leave(RunStatus::RUNNING, 1, {0}, "h");
  StartManagerWith(GpuOptions(4, {0}));
  tasks_.RunAll();
  EXPECT_EQ(StatusOf(lost), RunStatus::FAILED);
  EXPECT_THAT(executor_.launched, IsEmpty());
  EXPECT_EQ(StatusOf(queued), RunStatus::QUEUED);
  executor_.ExitCode(running, 0);
  tasks_.RunAll();
  EXPECT_THAT(executor_.launched, ElementsAre(queued));
  EXPECT_EQ(VisibleGpus(queued), "0");
}

TEST_F(SchedulingRecoveryTest, APreparingRunIsLaunchedWithTheGpusItWasGiven) {
  std::string preparing = Leave(RunStatus::PREPARING, 1, {1}, "");
  std::string queued = Leave(RunStatus::QUEUED, 1, {}, "");
  StartManagerWith(GpuOptions(4, {0, 1}));
  tasks_.RunAll();
  EXPECT_THAT(executor_.launched, ElementsAre(preparing, queued));
  EXPECT_EQ(VisibleGpus(preparing), "1");
  EXPECT_EQ(VisibleGpus(queued), "0");
}

TEST_F(SchedulingRecoveryTest, AQueuedRunTheShrunkenTargetCannotHoldFailsSayingSo) {
  std::string big = Leave(RunStatus::QUEUED, 2, {}, "");
  std::string small = Leave(RunStatus::QUEUED, 1, {}, "");
  StartManagerWith(GpuOptions(4, {0}));  // was [0, 1]
  tasks_.RunAll();
  EXPECT_EQ(StatusOf(big), RunStatus::FAILED);
  EXPECT_THAT(Get(big).error(), HasSubstr("capacity changed while the run was queued: the run "
                                          "asks for 2 GPUs but the local target has 1"));
  EXPECT_THAT(executor_.launched, ElementsAre(small));  // not blocked behind it
}

// After a launch the snapshot just used is copied into a filled spare; the
// next run of the same snapshot takes it instead of materializing.
TEST_F(RunManagerTest, TheNextRunOfTheSameSnapshotTakesTheFilledSpare) {
  StartManager(1);
  auto filled_spares = [&] {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_ / "runs")) {
      const std::string name = e.path().filename().string();
      if (absl::StartsWith(name, ".spare-with-")) names.push_back(name);
    }
    return names;
  };
  std::string first = Submit();
  tasks_.RunAll();
  const std::string spare = absl::StrCat(".spare-with-", root_.hash, "-", root_.size);
  EXPECT_THAT(filled_spares(), ElementsAre(spare));
  EXPECT_EQ(testing::ReadFile(dir_ / "runs" / spare / "wd/train.py"), "print('hi')\n");
  executor_.ExitCode(first, 0);
  tasks_.RunAll();

  // The second run's folder is the spare, renamed: same inode as before.
  struct stat spare_st;
  ASSERT_EQ(::stat((dir_ / "runs" / spare / "wd/train.py").c_str(), &spare_st), 0);
  std::string second = Submit();
  tasks_.RunAll();
  struct stat run_st;
  ASSERT_EQ(::stat((manager_->PathsFor(second).wd / "train.py").c_str(), &run_st), 0);
  EXPECT_EQ(run_st.st_ino, spare_st.st_ino);
  EXPECT_TRUE(fs::is_directory(manager_->PathsFor(second).outputs));
  EXPECT_EQ(testing::ReadFile(manager_->PathsFor(second).wd / "data/x.csv"), "1,2\n");
  EXPECT_THAT(filled_spares(), ElementsAre(spare));  // filled again after the launch
  executor_.ExitCode(second, 0);
  tasks_.RunAll();

  // Another snapshot replaces it: one filled spare at a time.
  WriteFile(dir_ / "src2/train.py", "print('other')\n");
  auto other = amld::storage::BuildSnapshot(dir_ / "src2");
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE(amld::storage::StoreSnapshot(*other, *cas_).ok());
  RunConfig c = Config();
  amld::storage::ToProto(other->root, c.mutable_snapshot_root());
  std::string third = Submit(c);
  tasks_.RunAll();
  EXPECT_EQ(testing::ReadFile(manager_->PathsFor(third).wd / "train.py"), "print('other')\n");
  EXPECT_THAT(filled_spares(),
              ElementsAre(absl::StrCat(".spare-with-", other->root.hash, "-", other->root.size)));
}

// Finished runs' folders beyond the newest keep_finished_run_folders are
// removed; their files stay in the store.
class RunFolderRetentionTest : public RunManagerTest {
 protected:
  void StartKeeping(int keep, int slots = 1) {
    RunManagerOptions options = Options(slots);
    options.folders.keep_finished_run_folders = keep;
    StartManagerWith(options);
  }
  bool HasFolder(const std::string& id) { return fs::exists(manager_->PathsFor(id).root); }
  // Runs one submitted run to its end with `code`.
  std::string RunToEnd(int code) {
    std::string id = Submit();
    tasks_.RunAll();
    clock_.Advance(absl::Seconds(1));
    executor_.ExitCode(id, code);
    tasks_.RunAll();
    return id;
  }
  // Without the filled spare (its tests are below).
  std::vector<std::string> EntriesOfRunsRoot() {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_ / "runs")) {
      const std::string name = e.path().filename().string();
      if (!absl::StartsWith(name, ".spare-with-")) names.push_back(name);
    }
    std::sort(names.begin(), names.end());
    return names;
  }
};

TEST_F(RunFolderRetentionTest, KeepOneLeavesOnlyTheNewestFinishedRunsFolder) {
  StartKeeping(1);
  std::string a = RunToEnd(0);
  EXPECT_TRUE(HasFolder(a));
  std::string b = RunToEnd(1);
  std::string c = RunToEnd(0);
  EXPECT_FALSE(HasFolder(a));
  EXPECT_FALSE(HasFolder(b));
  EXPECT_TRUE(HasFolder(c));
  EXPECT_TRUE(fs::exists(manager_->PathsFor(c).wd / "train.py"));
  EXPECT_THAT(EntriesOfRunsRoot(), ElementsAre(".spare", c));  // the spare is kept
  EXPECT_EQ(StatusOf(a), RunStatus::COMPLETED);
  EXPECT_EQ(StatusOf(b), RunStatus::FAILED);
}

TEST_F(RunFolderRetentionTest, KeepZeroRemovesEachFolderOnceItsRunEndedAndItsFilesStayStored) {
  StartKeeping(0);
  executor_.on_launch = [&](const LaunchSpec& spec) {
    RunPaths p = manager_->PathsFor(spec.run_id);
    WriteFile(p.std_log, "hello\n");
    WriteFile(p.outputs / "model.json", "{}");
  };
  std::string a = RunToEnd(0);
  EXPECT_EQ(StatusOf(a), RunStatus::COMPLETED);
  EXPECT_FALSE(HasFolder(a));
  // What StreamLogs and downloads read once the folder is gone.
  EXPECT_EQ(*cas_->Read(store_->GetArtifact(a, "user_logs/std_log.txt")->digest), "hello\n");
  EXPECT_EQ(*cas_->Read(store_->GetArtifact(a, "outputs/model.json")->digest), "{}");

  // A run that ends without a process (its launch failed) too.
  executor_.on_launch = nullptr;
  executor_.launch_error = absl::UnavailableError("no shim");
  std::string b = Submit();
  tasks_.RunAll();
  EXPECT_EQ(StatusOf(b), RunStatus::FAILED);
  EXPECT_FALSE(HasFolder(b));
  EXPECT_THAT(EntriesOfRunsRoot(), ElementsAre(".spare"));
}

TEST_F(RunFolderRetentionTest, ARunningRunsFolderIsNeverRemoved) {
  StartKeeping(0, /*slots=*/2);
  std::string running = Submit();
  std::string ends = Submit();
  tasks_.RunAll();
  ASSERT_EQ(StatusOf(running), RunStatus::RUNNING);
  executor_.ExitCode(ends, 0);
  EXPECT_EQ(StatusOf(ends), RunStatus::FINALIZING);
  EXPECT_TRUE(HasFolder(ends));  // its outputs are stored first
  tasks_.RunAll();
  EXPECT_FALSE(HasFolder(ends));
  EXPECT_TRUE(fs::exists(manager_->PathsFor(running).wd / "train.py"));
  EXPECT_TRUE(fs::exists(manager_->PathsFor(running).std_log));

  executor_.ExitCode(running, 0);
  tasks_.RunAll();
  EXPECT_FALSE(HasFolder(running));
}

TEST_F(RunFolderRetentionTest, KeepAllNeverRemovesAFolder) {
  StartKeeping(kKeepAllRunFolders);
  std::string a = RunToEnd(0);
  std::string b = RunToEnd(0);
  EXPECT_TRUE(HasFolder(a));
  EXPECT_TRUE(HasFolder(b));
}

TEST_F(RunFolderRetentionTest, StartRemovesOldFoldersOfEndedRunsAndLeavesOthers) {
  StartKeeping(kKeepAllRunFolders, /*slots=*/4);
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) {
    ids.push_back(Submit());
    clock_.Advance(absl::Seconds(1));
  }
  tasks_.RunAll();
  const std::string& first = ids[0];
  const std::string& second = ids[1];
  const std::string& third = ids[2];
  const std::string& running = ids[3];
  // Ended in another order than submitted: the first submitted ends last.
  for (const std::string& id : {second, third, first}) {
    clock_.Advance(absl::Seconds(10));
    executor_.ExitCode(id, 0);
    tasks_.RunAll();
  }
  WriteFile(dir_ / "runs/someone_elses_folder/keep.txt", "mine");
  WriteFile(dir_ / "runs/a_stray_file", "x");
  manager_.reset();

  StartKeeping(1, /*slots=*/4);
  tasks_.RunAll();
  EXPECT_THAT(executor_.reattached, ElementsAre(running + " handle:" + running));
  EXPECT_TRUE(HasFolder(first));  // ended last
  EXPECT_FALSE(HasFolder(second));
  EXPECT_FALSE(HasFolder(third));
  EXPECT_TRUE(fs::exists(manager_->PathsFor(running).wd / "train.py"));
  EXPECT_EQ(testing::ReadFile(dir_ / "runs/someone_elses_folder/keep.txt"), "mine");
  EXPECT_TRUE(fs::exists(dir_ / "runs/a_stray_file"));
  EXPECT_TRUE(fs::exists(dir_ / "runs/.spare"));

  // The re-adopted run ends: now it is the newest, and the one kept.
  executor_.ExitCode(running, 0);
  tasks_.RunAll();
  EXPECT_FALSE(HasFolder(first));
  EXPECT_TRUE(HasFolder(running));
}

}  // namespace
}  // namespace amld::daemon

namespace amld::daemon {
namespace {

// Parent runs (a sweep) are recorded and followed like runs but never
// scheduled; children carry their parent and an id chosen by it, and a
// cancel of the parent reaches every unfinished child.
TEST_F(RunManagerTest, ParentRunsAreNeverScheduledAndCancelReachesTheirChildren) {
  StartManager(1);
  RunConfig parent_config = Config();
  parent_config.mutable_sweep()->set_primary_metric_name("loss");
  EXPECT_EQ(manager_->Submit(parent_config, 1000).status().code(),
            absl::StatusCode::kInvalidArgument);
  absl::StatusOr<RunProto> parent = manager_->SubmitParent(parent_config, 1000);
  ASSERT_TRUE(parent.ok()) << parent.status();
  EXPECT_TRUE(Get(parent->id()).config().has_sweep());
  std::vector<RunStatusValue> seen;
  ASSERT_TRUE(manager_->Subscribe(parent->id(), [&](const RunProto& r) { seen.push_back(r.status()); })
                  .ok());
  for (RunStatusValue s : {RunStatus::PREPARING, RunStatus::STARTING, RunStatus::RUNNING}) {
    ASSERT_TRUE(manager_->TransitionParent(parent->id(), s, {}).ok());
  }
  EXPECT_THAT(seen, ElementsAre(RunStatus::PREPARING, RunStatus::STARTING, RunStatus::RUNNING));
  tasks_.RunAll();
  EXPECT_THAT(executor_.launched, IsEmpty());  // the parent holds no slot

  RunManager::SubmitOptions child_options{parent->id(), parent->id() + "_0"};
  absl::StatusOr<RunProto> a = manager_->Submit(Config(), 1000, child_options);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->id(), parent->id() + "_0");
  EXPECT_EQ(a->parent_run_id(), parent->id());
  // The same id again is refused: a restarted sweep never submits a child twice.
  EXPECT_EQ(manager_->Submit(Config(), 1000, child_options).status().code(),
            absl::StatusCode::kAlreadyExists);
  const std::string b = manager_->Submit(Config(), 1000, {parent->id(), parent->id() + "_1"})->id();
  EXPECT_EQ(manager_->Submit(Config(), 1000, {"no-such-run", ""}).status().code(),
            absl::StatusCode::kNotFound);
  tasks_.RunAll();
  EXPECT_THAT(executor_.launched, ElementsAre(a->id()));

  amld::storage::RunFilter children;
  children.parent_run_id = parent->id();
  EXPECT_EQ(store_->ListRuns(children)->runs.size(), 2u);

  std::vector<std::string> handled;
  manager_->SetParentCancelHandler(
      [&](const std::string& id, const std::string& reason) { handled.push_back(id + ":" + reason); });
  ASSERT_TRUE(manager_->Cancel(parent->id(), "enough").ok());
  EXPECT_THAT(handled, ElementsAre(parent->id() + ":enough"));
  EXPECT_EQ(StatusOf(b), RunStatus::CANCELED);  // it was queued
  EXPECT_THAT(Get(b).error(), HasSubstr("parent run " + parent->id() + " canceled: enough"));
  EXPECT_EQ(StatusOf(a->id()), RunStatus::CANCEL_REQUESTED);
  EXPECT_THAT(executor_.canceled, ElementsAre(a->id()));

  // A restart leaves the parent to its driver: nothing recovers or fails it.
  manager_.reset();
  StartManager(1);
  EXPECT_EQ(StatusOf(parent->id()), RunStatus::RUNNING);
}

}  // namespace
}  // namespace amld::daemon
