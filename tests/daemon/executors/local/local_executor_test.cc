// Real processes under the real amld-shim. No timing assertions: tests wait
// (with a generous timeout) for the exit callback or for a file a script
// writes.
#include "daemon/executors/local/local_executor.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "daemon/executors/shim/shim_protocol.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "base/file_util.h"
#include "tests/testing/build_paths.h"
#include "tests/testing/exit_outcomes.h"
#include "tests/testing/test_util.h"

namespace amld::daemon {
namespace {

namespace fs = std::filesystem;
using amld::testing::Eventually;
using ::testing::HasSubstr;

constexpr absl::Duration kGenerousWait = absl::Seconds(60);
const fs::path kShimPath = testing::BinaryDir() / "bin/amld-shim";
const fs::path kStampPath = testing::BinaryDir() / "bin/amld_realtime_stamp";

using Outcome = absl::StatusOr<ExitStatus>;

// Exit callbacks, waited for generously.
class Outcomes : public testing::ExitOutcomes {
 public:
  Outcomes() : ExitOutcomes(kGenerousWait) {}
};

std::unique_ptr<Executor> NewExecutor(Outcomes& outcomes) {
  absl::StatusOr<std::unique_ptr<Executor>> executor =
      NewLocalExecutor(LocalExecutorOptions{kShimPath});
  EXPECT_TRUE(executor.ok()) << executor.status();
  if (!executor.ok()) std::abort();
  (*executor)->SetExitCallback(outcomes.Callback());
  return std::move(*executor);
}

std::string ReadFile(const fs::path& path) {
  absl::StatusOr<std::string> text = base::ReadFileToString(path);
  return text.ok() ? *text : "<" + std::string(text.status().message()) + ">";
}

// Waits until a script has written a number into `path` (scripts write a
// temp file and rename it, so the content is complete when it appears).
pid_t WaitForPidFile(const fs::path& path) {
  int pid = 0;
  if (!Eventually([&] {
        return fs::exists(path) &&
               absl::SimpleAtoi(absl::StripAsciiWhitespace(ReadFile(path)), &pid);
      })) {
    ADD_FAILURE() << "no pid file " << path;
  }
  return pid;
}

bool ProcessGroupGone(pid_t pgid) { return ::kill(-pgid, 0) == -1 && errno == ESRCH; }
bool ProcessGone(pid_t pid) { return ::kill(pid, 0) == -1 && errno == ESRCH; }

// Shell snippet: writes `value` into ../<name> atomically.
std::string WritePid(const std::string& value, const std::string& name) {
  return absl::StrCat("echo ", value, " > ../", name, ".tmp && mv ../", name, ".tmp ../", name,
                      "; ");
}

class LocalExecutorTest : public ::testing::Test {
 protected:
  void SetUp() override { executor_ = NewExecutor(outcomes_); }

  void TearDown() override { executor_.reset(); }

  LaunchSpec Spec(const std::string& name, std::vector<std::string> argv) {
    LaunchSpec spec;
    spec.run_id = name;
    spec.run_dir = root_ / name;
    fs::create_directories(spec.run_dir / "wd");
    spec.argv = std::move(argv);
    spec.env = {{"PATH", "/usr/bin:/bin"}};
    spec.kill_grace = absl::Milliseconds(500);
    return spec;
  }

  LaunchSpec ShellSpec(const std::string& name, const std::string& script) {
    return Spec(name, {"sh", "-c", script});
  }

  // Launches and waits for the outcome, which must be an exit status.
  ExitStatus Run(const LaunchSpec& spec) {
    absl::StatusOr<std::string> handle = executor_->Launch(spec);
    EXPECT_TRUE(handle.ok()) << handle.status();
    if (!handle.ok()) return ExitStatus{};
    return WaitStatus(outcomes_, spec.run_id);
  }

  static ExitStatus WaitStatus(Outcomes& outcomes, const std::string& run_id) {
    std::optional<Outcome> outcome = outcomes.Wait(run_id);
    EXPECT_TRUE(outcome.has_value()) << "no exit callback for " << run_id;
    if (!outcome) return ExitStatus{};
    EXPECT_TRUE(outcome->ok()) << outcome->status();
    return outcome->ok() ? **outcome : ExitStatus{};
  }

  std::string StdLog(const LaunchSpec& spec) {
    return ReadFile(spec.run_dir / "user_logs" / "std_log.txt");
  }

  amld::testing::TempDir tmp_{"amld-exec-test-"};
  const fs::path root_ = tmp_.path();
  Outcomes outcomes_;
  std::unique_ptr<Executor> executor_;
};

TEST_F(LocalExecutorTest, StdoutAndStderrGoToTheLogInOrder) {
  LaunchSpec spec = ShellSpec("order", "echo out1; echo err1 >&2; echo out2");
  ExitStatus status = Run(spec);
  EXPECT_EQ(status.exit_code, 0);
  EXPECT_EQ(status.signal, 0);
  EXPECT_FALSE(status.canceled);
  EXPECT_FALSE(status.timed_out);
  EXPECT_EQ(status.launch_error, "");
  EXPECT_LE(status.start_time, status.end_time);
  EXPECT_GT(status.start_time, absl::Now() - absl::Hours(1));
  EXPECT_EQ(StdLog(spec), "out1\nerr1\nout2\n");
  EXPECT_TRUE(fs::exists(spec.run_dir / "exit.json"));
}

TEST_F(LocalExecutorTest, ExitCodeIsRecorded) {
  ExitStatus status = Run(ShellSpec("exit3", "exit 3"));
  EXPECT_EQ(status.exit_code, 3);
  EXPECT_EQ(status.signal, 0);
}

TEST_F(LocalExecutorTest, TerminatingSignalIsRecorded) {
  ExitStatus status = Run(ShellSpec("signaled", "kill -USR1 $$"));
  EXPECT_EQ(status.signal, SIGUSR1);
  EXPECT_FALSE(status.canceled);
}

TEST_F(LocalExecutorTest, MissingProgramIsALaunchError) {
  LaunchSpec spec = Spec("missing", {"amld-no-such-program", "x"});
  ExitStatus status = Run(spec);
  EXPECT_EQ(status.exit_code, 127);
  EXPECT_EQ(status.launch_error, "exec amld-no-such-program: No such file or directory");
  EXPECT_EQ(StdLog(spec), "amld-shim: exec amld-no-such-program: No such file or directory\n");
}

TEST_F(LocalExecutorTest, ProgramIsLookedUpInTheRunsPath) {
  fs::path bin = root_ / "bin";
  fs::create_directories(bin);
  {
    std::ofstream tool(bin / "amld-test-tool");
    tool << "#!/bin/sh\necho tool-ran \"$@\"\n";
  }
  fs::permissions(bin / "amld-test-tool", fs::perms::owner_all);
  LaunchSpec spec = Spec("pathlookup", {"amld-test-tool", "a b"});
  spec.env = {{"PATH", bin.string() + ":/usr/bin:/bin"}};
  EXPECT_EQ(Run(spec).exit_code, 0);
  EXPECT_EQ(StdLog(spec), "tool-ran a b\n");
}

TEST_F(LocalExecutorTest, EnvironmentIsExactlyTheGivenOne) {
  ::setenv("AMLD_TEST_DAEMON_ONLY", "must-not-leak", 1);
  LaunchSpec spec = Spec("env", {"env"});
  spec.env = {{"PATH", "/usr/bin:/bin"}, {"AMLD_TEST_VAR", "hello world"}};
  EXPECT_EQ(Run(spec).exit_code, 0);
  EXPECT_EQ(StdLog(spec), "PATH=/usr/bin:/bin\nAMLD_TEST_VAR=hello world\n");
}

TEST_F(LocalExecutorTest, RunsInWdWithStdinFromDevNullAndNoDaemonFds) {
  int leaked = ::open("/dev/null", O_RDONLY);  // deliberately without O_CLOEXEC
  ASSERT_GE(leaked, 0);
  LaunchSpec spec =
      ShellSpec("cwd", absl::StrCat("pwd -P; cat; echo stdin-empty; test -e /proc/$$/fd/", leaked,
                                    " && echo fd-leaked || echo fds-clean"));
  EXPECT_EQ(Run(spec).exit_code, 0);
  ::close(leaked);
  EXPECT_EQ(StdLog(spec),
            fs::canonical(spec.run_dir / "wd").string() + "\nstdin-empty\nfds-clean\n");
}

TEST_F(LocalExecutorTest, CancelKillsTheProcessGroup) {
  LaunchSpec spec = ShellSpec("cancel", WritePid("$$", "pgid") + "sleep 1000");
  ASSERT_TRUE(executor_->Launch(spec).ok());
  pid_t pgid = WaitForPidFile(spec.run_dir / "pgid");
  ASSERT_TRUE(executor_->Cancel("cancel").ok());
  ExitStatus status = WaitStatus(outcomes_, "cancel");
  EXPECT_TRUE(status.canceled);
  EXPECT_FALSE(status.timed_out);
  EXPECT_EQ(status.signal, SIGTERM);
  EXPECT_TRUE(ProcessGroupGone(pgid));
  EXPECT_EQ(executor_->Cancel("cancel").code(), absl::StatusCode::kNotFound);
}

TEST_F(LocalExecutorTest, CancelSendsSigkillAfterGraceWhenTermIsIgnored) {
  LaunchSpec spec =
      ShellSpec("stubborn", "trap '' TERM; " + WritePid("$$", "pgid") + "sleep 1000 & wait");
  ASSERT_TRUE(executor_->Launch(spec).ok());
  pid_t pgid = WaitForPidFile(spec.run_dir / "pgid");
  ASSERT_TRUE(executor_->Cancel("stubborn").ok());
  ExitStatus status = WaitStatus(outcomes_, "stubborn");
  EXPECT_TRUE(status.canceled);
  EXPECT_EQ(status.signal, SIGKILL);
  EXPECT_TRUE(ProcessGroupGone(pgid));
}

TEST_F(LocalExecutorTest, CancelLeavesNoGrandchildThatIgnoresTerm) {
  LaunchSpec spec =
      ShellSpec("grandchild", "sh -c 'trap \"\" TERM; sleep 1000' & " +
                                  WritePid("$!", "grandchild") + WritePid("$$", "pgid") + "wait");
  ASSERT_TRUE(executor_->Launch(spec).ok());
  pid_t pgid = WaitForPidFile(spec.run_dir / "pgid");
  pid_t grandchild = WaitForPidFile(spec.run_dir / "grandchild");
  ASSERT_TRUE(executor_->Cancel("grandchild").ok());
  ExitStatus status = WaitStatus(outcomes_, "grandchild");
  EXPECT_TRUE(status.canceled);
  EXPECT_TRUE(ProcessGroupGone(pgid));
  EXPECT_TRUE(ProcessGone(grandchild));
}

TEST_F(LocalExecutorTest, MaxDurationTimesTheRunOut) {
  LaunchSpec spec = Spec("timeout", {"sleep", "1000"});
  spec.max_duration = absl::Seconds(1);
  ExitStatus status = Run(spec);
  EXPECT_TRUE(status.timed_out);
  EXPECT_FALSE(status.canceled);
  EXPECT_EQ(status.signal, SIGTERM);
  EXPECT_GE(status.end_time - status.start_time, absl::Seconds(1));
}

TEST_F(LocalExecutorTest, BackgroundChildIsKilledWhenTheScriptExits) {
  LaunchSpec spec = ShellSpec(
      "background", "sleep 1000 & " + WritePid("$$", "pgid") + WritePid("$!", "child") + "exit 0");
  ExitStatus status = Run(spec);
  EXPECT_EQ(status.exit_code, 0);
  EXPECT_FALSE(status.canceled);
  EXPECT_TRUE(ProcessGroupGone(WaitForPidFile(spec.run_dir / "pgid")));
  EXPECT_TRUE(ProcessGone(WaitForPidFile(spec.run_dir / "child")));
}

TEST_F(LocalExecutorTest, ProcessThatLeftTheGroupIsKilledToo) {
  LaunchSpec spec =
      ShellSpec("escaped", "setsid sleep 1000 & " + WritePid("$!", "escaped") + "exit 0");
  EXPECT_EQ(Run(spec).exit_code, 0);
  EXPECT_TRUE(ProcessGone(WaitForPidFile(spec.run_dir / "escaped")));
}

TEST_F(LocalExecutorTest, BadLaunchesAreRefused) {
  LaunchSpec no_wd = Spec("nowd", {"true"});
  fs::remove(no_wd.run_dir / "wd");
  EXPECT_EQ(executor_->Launch(no_wd).status().code(), absl::StatusCode::kFailedPrecondition);

  LaunchSpec empty = Spec("empty", {});
  EXPECT_EQ(executor_->Launch(empty).status().code(), absl::StatusCode::kInvalidArgument);

  LaunchSpec bad_env = Spec("badenv", {"true"});
  bad_env.env.emplace_back("A=B", "c");
  EXPECT_EQ(executor_->Launch(bad_env).status().code(), absl::StatusCode::kInvalidArgument);

  EXPECT_EQ(executor_->Cancel("never-launched").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(executor_->Reattach("x", root_, "not json").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(executor_->Reattach("x", root_, "{\"shim_pid\":-1,\"shim_start_time\":1}").code(),
            absl::StatusCode::kInvalidArgument);

  absl::StatusOr<std::unique_ptr<Executor>> no_shim =
      NewLocalExecutor(LocalExecutorOptions{root_ / "no-such-shim"});
  EXPECT_EQ(no_shim.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(LocalExecutorTest, DuplicateRunIdIsRefused) {
  LaunchSpec spec = ShellSpec("dup", "sleep 1000");
  ASSERT_TRUE(executor_->Launch(spec).ok());
  EXPECT_EQ(executor_->Launch(spec).status().code(), absl::StatusCode::kAlreadyExists);
  ASSERT_TRUE(executor_->Cancel("dup").ok());
  EXPECT_TRUE(WaitStatus(outcomes_, "dup").canceled);
}

TEST_F(LocalExecutorTest, ConcurrentLaunchesEachReportOnce) {
  constexpr int kThreads = 4, kRunsPerThread = 5;
  std::vector<LaunchSpec> specs;
  for (int i = 0; i < kThreads * kRunsPerThread; ++i) {
    specs.push_back(ShellSpec(absl::StrCat("many", i), absl::StrCat("exit ", i)));
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = t * kRunsPerThread; i < (t + 1) * kRunsPerThread; ++i) {
        EXPECT_TRUE(executor_->Launch(specs[i]).ok());
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (int i = 0; i < kThreads * kRunsPerThread; ++i) {
    EXPECT_EQ(WaitStatus(outcomes_, specs[i].run_id).exit_code, i);
  }
  for (const LaunchSpec& spec : specs) EXPECT_EQ(outcomes_.CountFor(spec.run_id), 1);
}

pid_t ShimPid(const std::string& handle) {
  const std::string key = "\"shim_pid\":";
  size_t at = handle.find(key);
  if (at == std::string::npos) return 0;
  return static_cast<pid_t>(std::atoi(handle.c_str() + at + key.size()));
}

// Opens the fifo a script reads from and writes a line, so the script ends.
void ReleaseScript(const fs::path& fifo) {
  int fd = -1;
  // ENXIO until the script has opened it for reading.
  EXPECT_TRUE(Eventually(
      [&] { return (fd = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC)) >= 0; }));
  ASSERT_GE(fd, 0) << "the script never opened " << fifo;
  ASSERT_EQ(::write(fd, "go\n", 3), 3);
  ::close(fd);
}

TEST_F(LocalExecutorTest, NewExecutorReattachesToARunningShim) {
  LaunchSpec spec = ShellSpec("reattach", "read line < ../go; exit 4");
  ASSERT_EQ(::mkfifo((spec.run_dir / "go").c_str(), 0600), 0);
  absl::StatusOr<std::string> handle = executor_->Launch(spec);
  ASSERT_TRUE(handle.ok()) << handle.status();

  // The shim is not our child and moves into a session of its own, so it
  // would survive the daemon being killed.
  pid_t shim = ShimPid(*handle);
  ASSERT_GT(shim, 0) << *handle;
  EXPECT_TRUE(Eventually([&] { return ::getsid(shim) == shim; }));
  std::string stat = ReadFile("/proc/" + std::to_string(shim) + "/stat");
  int ppid = 0;
  char state;
  std::istringstream(stat.substr(stat.rfind(')') + 2)) >> state >> ppid;
  EXPECT_NE(ppid, ::getpid());

  executor_.reset();  // the daemon goes away; the run goes on
  Outcomes outcomes_b;
  std::unique_ptr<Executor> b = NewExecutor(outcomes_b);
  ASSERT_TRUE(b->Reattach("reattach", spec.run_dir, *handle).ok());
  EXPECT_EQ(b->Reattach("reattach", spec.run_dir, *handle).code(),
            absl::StatusCode::kAlreadyExists);
  ReleaseScript(spec.run_dir / "go");
  ExitStatus status = WaitStatus(outcomes_b, "reattach");
  EXPECT_EQ(status.exit_code, 4);
  EXPECT_EQ(outcomes_.CountFor("reattach"), 0);
}

TEST_F(LocalExecutorTest, CancelThroughTheExecutorThatReattached) {
  LaunchSpec spec = ShellSpec("recancel", WritePid("$$", "pgid") + "sleep 1000");
  absl::StatusOr<std::string> handle = executor_->Launch(spec);
  ASSERT_TRUE(handle.ok()) << handle.status();
  pid_t pgid = WaitForPidFile(spec.run_dir / "pgid");
  executor_.reset();
  Outcomes outcomes_b;
  std::unique_ptr<Executor> b = NewExecutor(outcomes_b);
  ASSERT_TRUE(b->Reattach("recancel", spec.run_dir, *handle).ok());
  ASSERT_TRUE(b->Cancel("recancel").ok());
  EXPECT_TRUE(WaitStatus(outcomes_b, "recancel").canceled);
  EXPECT_TRUE(ProcessGroupGone(pgid));
}

TEST_F(LocalExecutorTest, ReattachToAnEndedRunReportsItsExitFile) {
  LaunchSpec spec = ShellSpec("ended", "exit 5");
  absl::StatusOr<std::string> handle = executor_->Launch(spec);
  ASSERT_TRUE(handle.ok()) << handle.status();
  EXPECT_EQ(WaitStatus(outcomes_, "ended").exit_code, 5);

  Outcomes outcomes_b;
  std::unique_ptr<Executor> b = NewExecutor(outcomes_b);
  ASSERT_TRUE(b->Reattach("ended", spec.run_dir, *handle).ok());
  EXPECT_EQ(WaitStatus(outcomes_b, "ended").exit_code, 5);
}

std::string HandleFor(pid_t pid, uint64_t start_time) {
  return absl::StrCat("{\"shim_pid\":", pid, ",\"shim_start_time\":", start_time, "}");
}

TEST_F(LocalExecutorTest, LivePidWithAnotherStartTimeIsNotTheShim) {
  // Our own pid, alive, but not started at that time: a reused pid.
  std::optional<uint64_t> own_start = shim::ReadProcessStartTime(0);
  ASSERT_TRUE(own_start.has_value());
  std::string handle = HandleFor(::getpid(), *own_start + 1);

  fs::path lost_dir = root_ / "lost";
  fs::create_directories(lost_dir);
  ASSERT_TRUE(executor_->Reattach("lost", lost_dir, handle).ok());
  std::optional<Outcome> lost = outcomes_.Wait("lost");
  ASSERT_TRUE(lost.has_value());
  EXPECT_EQ(lost->status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(lost->status().message()), HasSubstr("supervisor lost"));

  // The same, when the real shim had left its exit file: that is reported.
  fs::path done_dir = root_ / "done";
  fs::create_directories(done_dir);
  shim::ExitRecord record;
  record.exit_code = 7;
  record.start_time_ns = 1'700'000'000'000'000'000;
  record.end_time_ns = record.start_time_ns + 5;
  ASSERT_TRUE(
      base::WriteFileAtomically(done_dir / "exit.json", shim::FormatExitRecord(record)).ok());
  ASSERT_TRUE(executor_->Reattach("done", done_dir, handle).ok());
  ExitStatus status = WaitStatus(outcomes_, "done");
  EXPECT_EQ(status.exit_code, 7);
  EXPECT_EQ(status.end_time - status.start_time, absl::Nanoseconds(5));
}

TEST_F(LocalExecutorTest, HandleFromAnotherBootIsNotTheShim) {
  std::optional<uint64_t> own_start = shim::ReadProcessStartTime(0);
  ASSERT_TRUE(own_start.has_value());
  std::string handle =
      absl::StrCat("{\"shim_pid\":", ::getpid(), ",\"shim_start_time\":", *own_start,
                   ",\"boot_id\":\"another-boot\"}");
  fs::path dir = root_ / "otherboot";
  fs::create_directories(dir);
  ASSERT_TRUE(executor_->Reattach("otherboot", dir, handle).ok());
  std::optional<Outcome> outcome = outcomes_.Wait("otherboot");
  ASSERT_TRUE(outcome.has_value());
  EXPECT_THAT(std::string(outcome->status().message()), HasSubstr("supervisor lost"));
}

// Not a check: prints how long Launch() takes to get the run's first
// instruction executed (a static program printing CLOCK_REALTIME).
TEST_F(LocalExecutorTest, PrintLaunchToFirstInstructionLatency) {
  std::vector<int64_t> to_first_instruction_us, launch_returned_us;
  for (int i = 0; i < 20; ++i) {
    LaunchSpec spec = Spec(absl::StrCat("latency", i), {kStampPath.string()});
    int64_t t0 = absl::ToUnixNanos(absl::Now());
    absl::StatusOr<std::string> handle = executor_->Launch(spec);
    int64_t t1 = absl::ToUnixNanos(absl::Now());
    ASSERT_TRUE(handle.ok()) << handle.status();
    ASSERT_EQ(WaitStatus(outcomes_, spec.run_id).exit_code, 0);
    int64_t stamp = 0;
    ASSERT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(StdLog(spec)), &stamp));
    to_first_instruction_us.push_back((stamp - t0) / 1000);
    launch_returned_us.push_back((t1 - t0) / 1000);
  }
  std::sort(to_first_instruction_us.begin(), to_first_instruction_us.end());
  std::sort(launch_returned_us.begin(), launch_returned_us.end());
  std::printf("Launch() -> first instruction: median %lld us, min %lld us, max %lld us (n=20)\n",
              static_cast<long long>(to_first_instruction_us[10]),
              static_cast<long long>(to_first_instruction_us.front()),
              static_cast<long long>(to_first_instruction_us.back()));
  std::printf("Launch() returned after: median %lld us (n=20)\n",
              static_cast<long long>(launch_returned_us[10]));
}

}  // namespace
}  // namespace amld::daemon
