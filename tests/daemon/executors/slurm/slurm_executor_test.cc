// The Slurm executor against a real single-node Slurm (munged, slurmctld,
// slurmd) started by scripts/test-env/slurm as a ctest fixture, which sets
// SLURM_CONF and AMLD_TEST_SLURM_STATE. Real jobs, real amld-shim on the
// "node", real files on the shared work dir. No timing assertions: tests
// wait with generous timeouts for callbacks and files.
//
// Duration: ~25 s for the suite; SlurmTimeLimit (its own ctest entry, run
// in parallel) waits for Slurm's own time limit: 60-90 s, since Slurm
// limits are whole minutes and slurmctld checks them every 30 s.
#include "daemon/executors/slurm/slurm_executor.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "daemon/executors/command_runner.h"
#include "daemon/executors/shim/shim_protocol.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "base/file_util.h"
#include "tests/testing/build_paths.h"
#include "tests/testing/test_util.h"

namespace amld::daemon {
namespace {

namespace fs = std::filesystem;
using amld::testing::Eventually;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr absl::Duration kGenerousWait = absl::Seconds(120);
const fs::path kShimPath = testing::BinaryDir() / "bin/amld-shim";

using Outcome = absl::StatusOr<ExitStatus>;

std::string ReadFile(const fs::path& path) {
  absl::StatusOr<std::string> text = base::ReadFileToString(path);
  return text.ok() ? *text : "<" + std::string(text.status().message()) + ">";
}

void WriteFile(const fs::path& path, const std::string& data) {
  fs::create_directories(path.parent_path());
  std::ofstream(path) << data;
}

// Collects what the executor reports.
class Reports {
 public:
  Executor::ExitCallback ExitCallback() {
    return [this](const std::string& run_id, Outcome outcome) {
      absl::MutexLock lock(&mu_);
      exits_.emplace_back(run_id, std::move(outcome));
    };
  }
  Executor::ProgressCallback ProgressCallback() {
    return [this](const std::string& run_id, const RunProgress& progress) {
      absl::MutexLock lock(&mu_);
      progress_.emplace_back(run_id, progress);
    };
  }

  std::optional<Outcome> WaitExit(const std::string& run_id) {
    absl::MutexLock lock(&mu_);
    auto arrived = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return FindExit(run_id) != nullptr; };
    mu_.AwaitWithTimeout(absl::Condition(&arrived), kGenerousWait);
    const Outcome* o = FindExit(run_id);
    return o ? std::optional<Outcome>(*o) : std::nullopt;
  }

  // The first progress of `run_id` that `pred` accepts, waiting for it.
  std::optional<RunProgress> WaitProgress(const std::string& run_id,
                                          std::function<bool(const RunProgress&)> pred) {
    absl::MutexLock lock(&mu_);
    auto found = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> const RunProgress* {
      for (const auto& [id, p] : progress_) {
        if (id == run_id && pred(p)) return &p;
      }
      return nullptr;
    };
    auto arrived = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return found() != nullptr; };
    mu_.AwaitWithTimeout(absl::Condition(&arrived), kGenerousWait);
    const RunProgress* p = found();
    return p ? std::optional<RunProgress>(*p) : std::nullopt;
  }

  std::vector<RunProgress> ProgressOf(const std::string& run_id) {
    absl::MutexLock lock(&mu_);
    std::vector<RunProgress> out;
    for (const auto& [id, p] : progress_) {
      if (id == run_id) out.push_back(p);
    }
    return out;
  }

  int ExitCount(const std::string& run_id) {
    absl::MutexLock lock(&mu_);
    int n = 0;
    for (const auto& e : exits_) n += e.first == run_id;
    return n;
  }

 private:
  const Outcome* FindExit(const std::string& run_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (const auto& [id, o] : exits_) {
      if (id == run_id) return &o;
    }
    return nullptr;
  }

  absl::Mutex mu_;
  std::vector<std::pair<std::string, Outcome>> exits_ ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<std::string, RunProgress>> progress_ ABSL_GUARDED_BY(mu_);
};

bool Started(const RunProgress& p) { return p.started; }

std::string SlurmState(const std::string& job_id) {
  absl::StatusOr<CommandResult> r = SystemCommandRunner().Run(
      Command{{"squeue", "-h", "-t", "all", "-j", job_id, "-o", "%T"}, absl::Seconds(30)});
  if (!r.ok() || !r->ok()) return "";
  return std::string(absl::StripAsciiWhitespace(r->out));
}

std::string JobIdOf(const std::string& handle) {
  nlohmann::json j = nlohmann::json::parse(handle, nullptr, false);
  return j.is_object() && j.contains("job_id") ? j["job_id"].get<std::string>() : "";
}

class SlurmExecutorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* state = std::getenv("AMLD_TEST_SLURM_STATE");
    ASSERT_NE(state, nullptr) << "run through ctest: the slurm fixture sets AMLD_TEST_SLURM_STATE";
    ASSERT_NE(std::getenv("SLURM_CONF"), nullptr);
    shared_ = amld::testing::MakeTempDir("t-", fs::path(state) / "shared");
    executor_ = NewExecutor({});
    ::setenv("AMLD_TEST_DAEMON_ONLY", "leaked", 1);
  }

  void TearDown() override {
    executor_.reset();
    std::error_code ec;
    fs::remove_all(shared_, ec);
  }

  std::unique_ptr<Executor> NewExecutor(std::vector<std::string> sbatch_args) {
    SlurmExecutorOptions options;
    options.workdir = shared_;
    options.shim_path = kShimPath;
    options.sbatch_args = std::move(sbatch_args);
    absl::StatusOr<std::unique_ptr<Executor>> e = NewSlurmExecutor(options);
    EXPECT_TRUE(e.ok()) << e.status();
    if (!e.ok()) std::abort();
    (*e)->SetExitCallback(reports_.ExitCallback());
    (*e)->SetProgressCallback(reports_.ProgressCallback());
    return std::move(*e);
  }

  // A run folder as the daemon prepares it, with `script` as wd/run.sh.
  LaunchSpec Spec(const std::string& name, const std::string& script) {
    LaunchSpec spec;
    spec.run_id = absl::StrCat("slurmtest_", ::getpid(), "_", name);
    spec.run_dir = local_ / spec.run_id;
    for (const char* sub : {"wd/outputs", "wd/logs", "user_logs", "system_logs"}) {
      fs::create_directories(spec.run_dir / sub);
    }
    WriteFile(spec.run_dir / shim::kStdLogPath, "");
    WriteFile(spec.run_dir / "wd" / "run.sh", script);
    spec.argv = {"/bin/sh", "run.sh"};
    spec.env = {{"PATH", "/usr/bin:/bin"},
                {"AMLD_RUN_ID", spec.run_id},
                {"AMLD_OUTPUTS_DIR", (spec.run_dir / "wd" / "outputs").string()},
                {"AMLD_METRICS_FILE", (spec.run_dir / "metrics.jsonl").string()},
                {"GREETING", "hello, 'slurm' world"},
                {"SLURM_JOB_ID", "999999"}};  // the daemon's own: must not leak
    spec.kill_grace = absl::Seconds(1);
    return spec;
  }

  fs::path SharedDir(const LaunchSpec& spec) const { return shared_ / spec.run_id; }

  amld::testing::TempDir tmp_{"amld-slurm-test-"};
  const fs::path local_ = tmp_.path();
  fs::path shared_;
  Reports reports_;
  std::unique_ptr<Executor> executor_;
};

TEST_F(SlurmExecutorTest, SucceedsAndBringsOutputsLogsAndMetricsBack) {
  LaunchSpec spec = Spec("ok",
                         "echo \"out: $GREETING\"\n"
                         "echo \"err line\" >&2\n"
                         "echo \"job=$SLURM_JOB_ID pwd=$(pwd)\"\n"
                         "echo \"outputs=$AMLD_OUTPUTS_DIR\"\n"
                         "echo \"daemon_only=[$AMLD_TEST_DAEMON_ONLY]\"\n"
                         "echo \"cpus=$SLURM_CPUS_PER_TASK\"\n"
                         "mkdir -p outputs/sub && echo 42 > outputs/sub/model.txt\n"
                         "echo trained > logs/train.log\n"
                         "echo '{\"name\":\"loss\",\"value\":0.5}' >> \"$AMLD_METRICS_FILE\"\n");
  spec.cpus = 2;  // the run's resources become Slurm's request
  absl::StatusOr<std::string> handle = executor_->Launch(spec);
  ASSERT_TRUE(handle.ok()) << handle.status();
  const std::string job_id = JobIdOf(*handle);
  ASSERT_FALSE(job_id.empty()) << *handle;

  std::optional<Outcome> outcome = reports_.WaitExit(spec.run_id);
  ASSERT_TRUE(outcome.has_value());
  ASSERT_TRUE(outcome->ok()) << outcome->status();
  EXPECT_EQ((*outcome)->exit_code, 0);
  EXPECT_EQ((*outcome)->signal, 0);
  EXPECT_FALSE((*outcome)->canceled || (*outcome)->timed_out);
  EXPECT_EQ((*outcome)->failure, "");
  EXPECT_LE((*outcome)->start_time, (*outcome)->end_time);

  std::string log = ReadFile(spec.run_dir / shim::kStdLogPath);
  EXPECT_THAT(log, HasSubstr("out: hello, 'slurm' world\n"));
  EXPECT_THAT(log, HasSubstr("err line\n"));
  EXPECT_THAT(log, HasSubstr(absl::StrCat("job=", job_id, " pwd=", (SharedDir(spec) / "wd").string())));
  EXPECT_THAT(log, HasSubstr(absl::StrCat("outputs=", (SharedDir(spec) / "wd/outputs").string())));
  // sbatch's own (the daemon's) environment does not reach the run.
  EXPECT_THAT(log, HasSubstr("daemon_only=[]\n"));
  EXPECT_THAT(log, HasSubstr("cpus=2\n"));
  EXPECT_EQ(ReadFile(spec.run_dir / "wd/outputs/sub/model.txt"), "42\n");
  EXPECT_EQ(ReadFile(spec.run_dir / "wd/logs/train.log"), "trained\n");
  EXPECT_EQ(ReadFile(spec.run_dir / "metrics.jsonl"), "{\"name\":\"loss\",\"value\":0.5}\n");
  EXPECT_TRUE(fs::exists(spec.run_dir / shim::kExitFileName));
  EXPECT_THAT(ReadFile(spec.run_dir / "system_logs/slurm-job.sh"), HasSubstr("export GREETING="));
  EXPECT_THAT(ReadFile(spec.run_dir / "system_logs/slurm-executor.log"),
              HasSubstr(absl::StrCat("submitted as Slurm job ", job_id)));
  // The snapshot copy on the shared dir is gone; the small record stays.
  EXPECT_FALSE(fs::exists(SharedDir(spec) / "wd"));
  EXPECT_TRUE(fs::exists(SharedDir(spec) / "job.sh"));

  // It was reported as started, on the node, before it ended.
  std::vector<RunProgress> progress = reports_.ProgressOf(spec.run_id);
  ASSERT_FALSE(progress.empty());
  EXPECT_TRUE(progress.back().started);
  EXPECT_EQ(progress.back().placement, absl::StrCat("slurm:", job_id, " on amldnode"));
  EXPECT_EQ(reports_.ExitCount(spec.run_id), 1);
}

TEST_F(SlurmExecutorTest, ReportsExitCodeThree) {
  LaunchSpec spec = Spec("three", "echo failing; exit 3\n");
  ASSERT_TRUE(executor_->Launch(spec).ok());
  std::optional<Outcome> outcome = reports_.WaitExit(spec.run_id);
  ASSERT_TRUE(outcome.has_value() && outcome->ok());
  EXPECT_EQ((*outcome)->exit_code, 3);
  EXPECT_EQ((*outcome)->signal, 0);
  EXPECT_EQ((*outcome)->failure, "");
  EXPECT_THAT(ReadFile(spec.run_dir / shim::kStdLogPath), HasSubstr("failing\n"));
}

TEST_F(SlurmExecutorTest, ReportsTheSignalNotSrunsExitCode) {
  LaunchSpec spec = Spec("killed", "kill -9 $$\n");
  ASSERT_TRUE(executor_->Launch(spec).ok());
  std::optional<Outcome> outcome = reports_.WaitExit(spec.run_id);
  ASSERT_TRUE(outcome.has_value() && outcome->ok());
  EXPECT_EQ((*outcome)->signal, 9);
}

TEST_F(SlurmExecutorTest, ReportsACommandThatCannotStart) {
  LaunchSpec spec = Spec("noexec", "");
  spec.argv = {"no-such-program-amld"};
  ASSERT_TRUE(executor_->Launch(spec).ok());
  std::optional<Outcome> outcome = reports_.WaitExit(spec.run_id);
  ASSERT_TRUE(outcome.has_value() && outcome->ok());
  EXPECT_THAT((*outcome)->launch_error, HasSubstr("exec no-such-program-amld"));
}

TEST_F(SlurmExecutorTest, StreamsLogsWhileTheJobRuns) {
  LaunchSpec spec = Spec("live",
                         "echo first line\n"
                         "while [ ! -e go ]; do sleep 0.1; done\n"
                         "echo second line\n");
  ASSERT_TRUE(executor_->Launch(spec).ok());
  // The first line reaches the daemon's std_log while the job still waits.
  EXPECT_TRUE(Eventually([&] {
    return ReadFile(spec.run_dir / shim::kStdLogPath).find("first line") != std::string::npos;
  }));
  EXPECT_EQ(reports_.ExitCount(spec.run_id), 0);
  WriteFile(SharedDir(spec) / "wd" / "go", "");
  std::optional<Outcome> outcome = reports_.WaitExit(spec.run_id);
  ASSERT_TRUE(outcome.has_value() && outcome->ok());
  EXPECT_EQ((*outcome)->exit_code, 0);
  EXPECT_EQ(ReadFile(spec.run_dir / shim::kStdLogPath), "first line\nsecond line\n");
}

TEST_F(SlurmExecutorTest, CancelEndsTheJobAndLeavesNothingRunning) {
  LaunchSpec spec = Spec("cancel",
                         "echo $$ > pid.tmp && mv pid.tmp pid\n"
                         "sleep 300 &\n"
                         "echo $! > child.tmp && mv child.tmp child\n"
                         "wait\n");
  absl::StatusOr<std::string> handle = executor_->Launch(spec);
  ASSERT_TRUE(handle.ok()) << handle.status();
  ASSERT_TRUE(Eventually([&] { return fs::exists(SharedDir(spec) / "wd" / "child"); }));
  pid_t pid = 0, child = 0;
  ASSERT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(ReadFile(SharedDir(spec) / "wd/pid")), &pid));
  ASSERT_TRUE(
      absl::SimpleAtoi(absl::StripAsciiWhitespace(ReadFile(SharedDir(spec) / "wd/child")), &child));
  ASSERT_TRUE(executor_->Cancel(spec.run_id).ok());
  std::optional<Outcome> outcome = reports_.WaitExit(spec.run_id);
  ASSERT_TRUE(outcome.has_value() && outcome->ok()) << (outcome ? outcome->status().ToString() : "");
  EXPECT_TRUE((*outcome)->canceled);
  EXPECT_FALSE((*outcome)->timed_out);
  EXPECT_TRUE(Eventually([&] {
    return ::kill(pid, 0) == -1 && errno == ESRCH && ::kill(child, 0) == -1 && errno == ESRCH;
  })) << "processes of the canceled job are still alive";
  std::string state = SlurmState(JobIdOf(*handle));
  EXPECT_TRUE(state == "CANCELLED" || state.empty()) << state;
  EXPECT_THAT(ReadFile(spec.run_dir / "system_logs/slurm-executor.log"), HasSubstr("scancel"));
  EXPECT_TRUE(absl::IsNotFound(executor_->Cancel(spec.run_id)));
}

TEST_F(SlurmExecutorTest, MaxDurationEndsTheRunAsTimedOut) {
  LaunchSpec spec = Spec("deadline", "echo started; sleep 300\n");
  spec.max_duration = absl::Seconds(2);
  ASSERT_TRUE(executor_->Launch(spec).ok());
  std::optional<Outcome> outcome = reports_.WaitExit(spec.run_id);
  ASSERT_TRUE(outcome.has_value() && outcome->ok());
  EXPECT_TRUE((*outcome)->timed_out);
  EXPECT_FALSE((*outcome)->canceled);
  EXPECT_EQ((*outcome)->signal, SIGTERM);
  EXPECT_THAT(ReadFile(spec.run_dir / "system_logs/slurm-job.sh"),
              HasSubstr("--max-duration-ns=2000000000"));
}

// Slurm's own limit (whole minutes) ends the job as TIMEOUT; amld reports
// it timed out. Takes 60-90 s: run as its own ctest entry.
TEST_F(SlurmExecutorTest, SlurmTimeLimit) {
  executor_ = NewExecutor({"--time=1"});
  LaunchSpec spec = Spec("slurmtime", "echo started; sleep 600\n");
  ASSERT_TRUE(executor_->Launch(spec).ok());
  std::optional<Outcome> outcome = reports_.WaitExit(spec.run_id);
  ASSERT_TRUE(outcome.has_value() && outcome->ok()) << (outcome ? outcome->status().ToString() : "");
  EXPECT_TRUE((*outcome)->timed_out);
  EXPECT_FALSE((*outcome)->canceled);
  EXPECT_THAT(ReadFile(spec.run_dir / shim::kStdLogPath), HasSubstr("DUE TO TIME LIMIT"));
}

TEST_F(SlurmExecutorTest, ImpossibleJobIsRefusedAtSubmitWithSlurmsReason) {
  executor_ = NewExecutor({"--cpus-per-task=128"});  // the partition has 2 nodes of 32
  LaunchSpec spec = Spec("toobig", "true\n");
  absl::StatusOr<std::string> handle = executor_->Launch(spec);
  ASSERT_FALSE(handle.ok());
  EXPECT_THAT(std::string(handle.status().message()), HasSubstr("sbatch refused the job"));
  EXPECT_THAT(std::string(handle.status().message()),
              HasSubstr("More processors requested than permitted"));
  EXPECT_FALSE(fs::exists(SharedDir(spec)));
  EXPECT_THAT(ReadFile(spec.run_dir / "system_logs/slurm-executor.log"), HasSubstr("not submitted"));
}

// The same question before the run is queued (RunManager's submit check):
// sbatch --test-only answers it without a job, and a request that fits is
// remembered.
TEST_F(SlurmExecutorTest, CheckCanEverHoldAsksSbatchTestOnly) {
  LaunchSpec spec = Spec("check", "true\n");
  spec.processes.kind = "pytorch";
  spec.processes.count = 6;
  spec.processes.nodes = 3;  // the cluster has 2
  absl::Status three = executor_->CheckCanEverHold(spec);
  EXPECT_TRUE(absl::IsInvalidArgument(three)) << three;
  EXPECT_THAT(std::string(three.message()),
              AllOf(HasSubstr("Slurm can never run this request (--nodes=3 --ntasks-per-node=2)"),
                    HasSubstr("Node count specification invalid")));
  spec.processes.count = 4;
  spec.processes.nodes = 2;
  EXPECT_TRUE(executor_->CheckCanEverHold(spec).ok());
  spec.gpus = 2;  // one per node (--gpus-per-node=1), and no node has a GPU
  EXPECT_THAT(std::string(executor_->CheckCanEverHold(spec).message()),
              HasSubstr("Invalid generic resource (gres) specification"));
  EXPECT_FALSE(fs::exists(SharedDir(spec)));  // nothing was submitted
}

TEST_F(SlurmExecutorTest, PendingJobReportsSlurmsReasonThenRuns) {
  executor_ = NewExecutor({"--hold"});
  LaunchSpec spec = Spec("held", "echo released\n");
  absl::StatusOr<std::string> handle = executor_->Launch(spec);
  ASSERT_TRUE(handle.ok()) << handle.status();
  // Reported from inside Launch first, then what Slurm says.
  EXPECT_EQ(reports_.ProgressOf(spec.run_id).front().detail, "SUBMITTED");
  std::optional<RunProgress> pending = reports_.WaitProgress(spec.run_id, [](const RunProgress& p) {
    return !p.started && p.detail.rfind("PENDING", 0) == 0;
  });
  ASSERT_TRUE(pending.has_value());
  EXPECT_EQ(pending->detail, "PENDING (JobHeldUser)");
  EXPECT_EQ(pending->placement, absl::StrCat("slurm:", JobIdOf(*handle)));
  EXPECT_EQ(reports_.ExitCount(spec.run_id), 0);

  absl::StatusOr<CommandResult> release = SystemCommandRunner().Run(
      Command{{"scontrol", "release", JobIdOf(*handle)}, absl::Seconds(30)});
  ASSERT_TRUE(release.ok() && release->ok());
  std::optional<Outcome> outcome = reports_.WaitExit(spec.run_id);
  ASSERT_TRUE(outcome.has_value() && outcome->ok());
  EXPECT_EQ((*outcome)->exit_code, 0);
  EXPECT_TRUE(reports_.ProgressOf(spec.run_id).back().started);
  EXPECT_THAT(ReadFile(spec.run_dir / shim::kStdLogPath), HasSubstr("released\n"));
}

TEST_F(SlurmExecutorTest, CancelWhilePending) {
  executor_ = NewExecutor({"--hold"});
  LaunchSpec spec = Spec("heldcancel", "echo never\n");
  ASSERT_TRUE(executor_->Launch(spec).ok());
  ASSERT_TRUE(reports_.WaitProgress(spec.run_id, [](const RunProgress& p) {
    return p.detail == "PENDING (JobHeldUser)";
  }));
  ASSERT_TRUE(executor_->Cancel(spec.run_id).ok());
  std::optional<Outcome> outcome = reports_.WaitExit(spec.run_id);
  ASSERT_TRUE(outcome.has_value() && outcome->ok());
  EXPECT_TRUE((*outcome)->canceled);
  for (const RunProgress& p : reports_.ProgressOf(spec.run_id)) EXPECT_FALSE(p.started);
  EXPECT_THAT(ReadFile(spec.run_dir / shim::kStdLogPath), ::testing::Not(HasSubstr("never")));
}

TEST_F(SlurmExecutorTest, ANewExecutorReattachesToARunningJob) {
  LaunchSpec spec = Spec("reattach",
                         "echo before\n"
                         "while [ ! -e go ]; do sleep 0.1; done\n"
                         "echo after; echo done > outputs/result.txt; exit 5\n");
  absl::StatusOr<std::string> handle = executor_->Launch(spec);
  ASSERT_TRUE(handle.ok()) << handle.status();
  ASSERT_TRUE(reports_.WaitProgress(spec.run_id, Started));
  executor_.reset();  // the daemon goes away; the job goes on

  WriteFile(SharedDir(spec) / "wd" / "go", "");
  executor_ = NewExecutor({});
  ASSERT_TRUE(executor_->Reattach(spec.run_id, spec.run_dir, *handle).ok());
  EXPECT_TRUE(absl::IsAlreadyExists(executor_->Reattach(spec.run_id, spec.run_dir, *handle)));
  std::optional<Outcome> outcome = reports_.WaitExit(spec.run_id);
  ASSERT_TRUE(outcome.has_value() && outcome->ok()) << outcome->status();
  EXPECT_EQ((*outcome)->exit_code, 5);
  EXPECT_EQ(ReadFile(spec.run_dir / "wd/outputs/result.txt"), "done\n");
  EXPECT_EQ(ReadFile(spec.run_dir / shim::kStdLogPath), "before\nafter\n");
  EXPECT_EQ(reports_.ExitCount(spec.run_id), 1);
}

// The daemon was away until Slurm forgot the job (MinJobAge=5 s): the
// jobcomp/filetxt record says how it ended. Canceled by someone else while
// the daemon was away: only Slurm's record can say "canceled" (the shim saw
// just a SIGTERM).
TEST_F(SlurmExecutorTest, ReattachAfterSlurmForgotTheJobUsesTheJobCompRecord) {
  LaunchSpec spec = Spec("forgotten", "echo waiting; sleep 300\n");
  absl::StatusOr<std::string> handle = executor_->Launch(spec);
  ASSERT_TRUE(handle.ok()) << handle.status();
  ASSERT_TRUE(Eventually([&] {
    return ReadFile(SharedDir(spec) / shim::kStdLogPath).find("waiting") != std::string::npos;
  }));
  executor_.reset();
  const std::string job_id = JobIdOf(*handle);
  absl::StatusOr<CommandResult> cancel =
      SystemCommandRunner().Run(Command{{"scancel", job_id}, absl::Seconds(30)});
  ASSERT_TRUE(cancel.ok() && cancel->ok());
  ASSERT_TRUE(Eventually([&] { return SlurmState(job_id).empty(); }))
      << "job " << job_id << " stayed in squeue";

  executor_ = NewExecutor({});
  ASSERT_TRUE(executor_->Reattach(spec.run_id, spec.run_dir, *handle).ok());
  std::optional<Outcome> outcome = reports_.WaitExit(spec.run_id);
  ASSERT_TRUE(outcome.has_value() && outcome->ok()) << outcome->status();
  EXPECT_TRUE((*outcome)->canceled);
  EXPECT_THAT(ReadFile(spec.run_dir / shim::kStdLogPath), HasSubstr("waiting\n"));
}

// The daemon died between sbatch and recording the job id: the job is
// found by its name (the run id) and adopted; a run never submitted is
// NOT_FOUND, so recovery never submits it a second time.
TEST_F(SlurmExecutorTest, AJobSubmittedButNotRecordedIsFoundByItsName) {
  LaunchSpec spec = Spec("unrecorded",
                         "echo before\n"
                         "while [ ! -e go ]; do sleep 0.1; done\n"
                         "echo after; exit 4\n");
  absl::StatusOr<std::string> handle = executor_->Launch(spec);
  ASSERT_TRUE(handle.ok()) << handle.status();
  executor_.reset();  // the handle was never stored

  executor_ = NewExecutor({});
  absl::StatusOr<std::string> found = executor_->FindUnrecorded(spec.run_id, spec.run_dir, {});
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(JobIdOf(*found), JobIdOf(*handle));
  ASSERT_TRUE(executor_->Reattach(spec.run_id, spec.run_dir, *found).ok());
  WriteFile(SharedDir(spec) / "wd" / "go", "");
  std::optional<Outcome> outcome = reports_.WaitExit(spec.run_id);
  ASSERT_TRUE(outcome.has_value() && outcome->ok()) << outcome->status();
  EXPECT_EQ((*outcome)->exit_code, 4);
  EXPECT_EQ(ReadFile(spec.run_dir / shim::kStdLogPath), "before\nafter\n");
  EXPECT_THAT(ReadFile(spec.run_dir / "system_logs" / "slurm-executor.log"), HasSubstr("found Slurm job"));

  LaunchSpec never = Spec("never-submitted", "exit 0\n");
  absl::StatusOr<std::string> none = executor_->FindUnrecorded(never.run_id, never.run_dir, {});
  EXPECT_TRUE(absl::IsNotFound(none.status())) << none.status();
  EXPECT_THAT(std::string(none.status().message()), HasSubstr("never submitted"));
}

TEST_F(SlurmExecutorTest, AJobSlurmNeverHeardOfIsLost) {
  fs::path run_dir = local_ / "ghost";
  fs::create_directories(run_dir / "system_logs");
  nlohmann::json handle = {{"job_id", "987654"}, {"shared_dir", (shared_ / "ghost").string()}};
  ASSERT_TRUE(executor_->Reattach("ghost", run_dir, handle.dump()).ok());
  std::optional<Outcome> outcome = reports_.WaitExit("ghost");
  ASSERT_TRUE(outcome.has_value());
  ASSERT_FALSE(outcome->ok());
  EXPECT_THAT(std::string(outcome->status().message()),
              HasSubstr("Slurm no longer knows job 987654"));
}

TEST_F(SlurmExecutorTest, RefusesBadHandlesAndSettings) {
  EXPECT_TRUE(absl::IsInvalidArgument(executor_->Reattach("x", local_, "{}")));
  EXPECT_TRUE(absl::IsInvalidArgument(executor_->Reattach("x", local_, "not json")));
  SlurmExecutorOptions relative;
  relative.workdir = "shared";
  relative.shim_path = kShimPath;
  EXPECT_TRUE(absl::IsInvalidArgument(NewSlurmExecutor(relative).status()));
  SlurmExecutorOptions no_shim;
  no_shim.workdir = shared_;
  no_shim.shim_path = local_ / "nope";
  EXPECT_TRUE(absl::IsFailedPrecondition(NewSlurmExecutor(no_shim).status()));
}

}  // namespace
}  // namespace amld::daemon
