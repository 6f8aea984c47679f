// The SSH executor against a real sshd on 127.0.0.1 (the ctest fixture `sshd`:
// scripts/test-env/sshd, user amldtest, port and key in its state folder).
// Real rsync, real amld-shim on the "remote" side. No timing assertions:
// tests wait (generously) for the exit callback or for a file to appear.
#include "daemon/executors/ssh/ssh_executor.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
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
#include "tests/testing/exit_outcomes.h"
#include "tests/testing/test_env.h"
#include "tests/testing/test_util.h"

namespace amld::daemon {
namespace {

namespace fs = std::filesystem;
using amld::testing::Eventually;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr absl::Duration kGenerousWait = absl::Seconds(90);
const fs::path kShimPath = testing::BinaryDir() / "bin/amld-shim";

using Outcome = absl::StatusOr<ExitStatus>;

// A TCP port on 127.0.0.1 with nothing listening.
int DeadPort() {
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(s, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(s);
  return ntohs(addr.sin_port);
}

// Exit callbacks, waited for generously.
class Outcomes : public testing::ExitOutcomes {
 public:
  Outcomes() : ExitOutcomes(kGenerousWait) {}
};

std::string ReadFile(const fs::path& path) {
  absl::StatusOr<std::string> text = base::ReadFileToString(path);
  return text.ok() ? *text : "<" + std::string(text.status().message()) + ">";
}

class SshExecutorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    host_ = amld::testing::LoadSshTestHost();
    ASSERT_FALSE(host_.host.empty());
    std::random_device rd;
    remote_workdir_ = absl::StrCat(host_.home, "/amld-test-", rd() % 100000000);
    // A sleep length only this test's processes carry (another build may run
    // the same tests against the same user at the same time).
    token_ = absl::StrCat(100000 + rd() % 900000);
    executor_ = NewExecutor(host_.port);
  }

  void TearDown() override {
    executor_.reset();
    (void)Remote(absl::StrCat("rm -rf ", remote_workdir_));
  }

  SshExecutorOptions Options(int port) {
    SshExecutorOptions o;
    o.endpoint = SshEndpoint{host_.host, port, host_.user, host_.key};
    o.workdir = remote_workdir_;
    o.shim_path = kShimPath;
    o.state_dir = root_ / "ssh";
    o.sync_interval = absl::Milliseconds(500);
    o.backoff = absl::Milliseconds(200);
    o.connect_timeout = absl::Seconds(5);
    return o;
  }

  std::unique_ptr<Executor> NewExecutor(int port) {
    absl::StatusOr<std::unique_ptr<Executor>> e = NewSshExecutor(Options(port));
    EXPECT_TRUE(e.ok()) << e.status();
    if (!e.ok()) std::abort();
    (*e)->SetExitCallback(outcomes_.Callback());
    return std::move(*e);
  }

  // Runs `command` on the test host as its user, with a connection of the
  // test's own.
  std::string Remote(const std::string& command) {
    absl::StatusOr<CommandResult> r = SystemCommandRunner().Run(
        Command{{"ssh", "-i", host_.key, "-p", absl::StrCat(host_.port), "-o", "BatchMode=yes",
                 "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o",
                 "LogLevel=ERROR", absl::StrCat(host_.user, "@", host_.host), command},
                absl::Seconds(60)});
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->out : "";
  }

  // The test host's processes whose command line has `token` (the run's own
  // processes: the executor's sessions never carry it).
  std::string RemoteProcessesWith(const std::string& token) {
    std::string out;
    for (absl::string_view line : absl::StrSplit(Remote("pgrep -u amldtest -a ."), '\n')) {
      if (absl::StrContains(line, token) && !absl::StrContains(line, "pgrep")) {
        absl::StrAppend(&out, line, "\n");
      }
    }
    return out;
  }

  // A run folder as the daemon prepares it, running `script` with sh.
  LaunchSpec Spec(const std::string& name, const std::string& script) {
    LaunchSpec spec;
    spec.run_id = name;
    spec.run_dir = root_ / "runs" / name;
    for (const char* sub : {"wd/outputs", "wd/logs", "user_logs", "system_logs"}) {
      fs::create_directories(spec.run_dir / sub);
    }
    std::ofstream(spec.run_dir / "user_logs/std_log.txt").flush();
    std::ofstream(spec.run_dir / "wd/train.sh") << script;
    spec.argv = {"sh", "train.sh"};
    spec.run_env = {{"AMLD_RUN_ID", name},
                    {"AMLD_OUTPUTS_DIR", (spec.run_dir / "wd/outputs").string()},
                    {"AMLD_METRICS_FILE", (spec.run_dir / "metrics.jsonl").string()},
                    {"TRICKY", "it's \"quoted\" $HOME `x`"},
                    {"PYTHONUNBUFFERED", "1"}};
    spec.env = spec.run_env;
    spec.kill_grace = absl::Milliseconds(500);
    return spec;
  }

  std::string RemoteRunDir(const std::string& name) {
    return absl::StrCat(remote_workdir_, "/", name);
  }

  amld::testing::SshTestHost host_;
  amld::testing::TempDir tmp_{"amld-ssh-test-"};
  const fs::path root_ = tmp_.path();
  std::string remote_workdir_;
  std::string token_;
  Outcomes outcomes_;
  std::unique_ptr<Executor> executor_;
};

TEST_F(SshExecutorTest, SuccessCopiesTheSnapshotOverAndOutputsLogsBackByteIdentical) {
  LaunchSpec spec = Spec("ok_1", R"sh(
echo "hello from $(hostname) as $(id -un)"
cp input.bin outputs/copy.bin
mkdir -p outputs/nested && printf 'deep' > outputs/nested/file.txt
echo "training log" > logs/train.log
echo '{"name":"loss","value":0.5}' >> "$AMLD_METRICS_FILE"
echo "outputs at $AMLD_OUTPUTS_DIR"
printenv TRICKY
echo done
)sh");
  std::string input(3 << 20, '\0');
  std::mt19937 gen(42);
  for (char& c : input) c = static_cast<char>(gen());
  std::ofstream(spec.run_dir / "wd/input.bin", std::ios::binary) << input;

  absl::StatusOr<std::string> handle = executor_->Launch(spec);
  ASSERT_TRUE(handle.ok()) << handle.status();
  nlohmann::json h = nlohmann::json::parse(*handle);
  EXPECT_EQ(h["host"], host_.host);
  EXPECT_EQ(h["port"], host_.port);
  EXPECT_EQ(h["remote_dir"], RemoteRunDir("ok_1"));
  EXPECT_GT(h["shim_pid"].get<int64_t>(), 0);
  EXPECT_EQ(executor_->Placement("ok_1", *handle),
            absl::StrCat("ssh:", host_.user, "@", host_.host, ":", host_.port));

  std::optional<Outcome> outcome = outcomes_.Wait("ok_1");
  ASSERT_TRUE(outcome.has_value()) << "no exit reported";
  ASSERT_TRUE(outcome->ok()) << outcome->status();
  EXPECT_EQ((*outcome)->exit_code, 0);
  EXPECT_TRUE((*outcome)->failure.empty()) << (*outcome)->failure;

  EXPECT_EQ(ReadFile(spec.run_dir / "wd/outputs/copy.bin"), input);
  EXPECT_EQ(ReadFile(spec.run_dir / "wd/outputs/nested/file.txt"), "deep");
  EXPECT_EQ(ReadFile(spec.run_dir / "wd/logs/train.log"), "training log\n");
  const std::string log = ReadFile(spec.run_dir / "user_logs/std_log.txt");
  EXPECT_THAT(log, HasSubstr("as amldtest"));
  // The run's paths name the host's run folder, not the daemon's.
  EXPECT_THAT(log, HasSubstr(absl::StrCat("outputs at ", RemoteRunDir("ok_1"), "/wd/outputs")));
  EXPECT_THAT(log, HasSubstr("it's \"quoted\" $HOME `x`\n"));
  EXPECT_THAT(log, HasSubstr("done\n"));
  EXPECT_THAT(ReadFile(spec.run_dir / "exit.json"), HasSubstr("\"exit_code\":0"));
  EXPECT_EQ(ReadFile(spec.run_dir / "metrics.jsonl"), "{\"name\":\"loss\",\"value\":0.5}\n");
  // The bulky wd/ is gone from the host; the small record stays.
  EXPECT_EQ(Remote(absl::StrCat("test -d ", RemoteRunDir("ok_1"), "/wd && echo yes || echo no")),
            "no\n");
  EXPECT_EQ(Remote(absl::StrCat("cat ", RemoteRunDir("ok_1"), "/user_logs/std_log.txt")), log);
  EXPECT_EQ(outcomes_.CountFor("ok_1"), 1);
}

TEST_F(SshExecutorTest, FailureExitCodeAndSignalComeBack) {
  ASSERT_TRUE(executor_->Launch(Spec("fail_3", "echo failing >&2; exit 3\n")).ok());
  ASSERT_TRUE(executor_->Launch(Spec("killed", "kill -KILL $$\n")).ok());
  std::optional<Outcome> failed = outcomes_.Wait("fail_3");
  ASSERT_TRUE(failed.has_value() && failed->ok());
  EXPECT_EQ((*failed)->exit_code, 3);
  EXPECT_EQ((*failed)->signal, 0);
  EXPECT_THAT(ReadFile(root_ / "runs/fail_3/user_logs/std_log.txt"), HasSubstr("failing"));
  std::optional<Outcome> killed = outcomes_.Wait("killed");
  ASSERT_TRUE(killed.has_value() && killed->ok());
  EXPECT_EQ((*killed)->signal, 9);
}

TEST_F(SshExecutorTest, ACommandThatCannotStartIsALaunchError) {
  LaunchSpec spec = Spec("noexec", "");
  spec.argv = {"no-such-interpreter-xyz", "train.py"};
  ASSERT_TRUE(executor_->Launch(spec).ok());
  std::optional<Outcome> outcome = outcomes_.Wait("noexec");
  ASSERT_TRUE(outcome.has_value() && outcome->ok());
  EXPECT_THAT((*outcome)->launch_error, HasSubstr("exec no-such-interpreter-xyz"));
}

TEST_F(SshExecutorTest, LogsAndOutputsArriveWhileTheRunRuns) {
  LaunchSpec spec = Spec("live", R"sh(
echo first
echo progress > outputs/progress.txt
while [ ! -e ../stop ]; do sleep 0.1; done
echo second
)sh");
  ASSERT_TRUE(executor_->Launch(spec).ok());
  const fs::path log = spec.run_dir / "user_logs/std_log.txt";
  ASSERT_TRUE(Eventually([&] { return ReadFile(log) == "first\n"; })) << ReadFile(log);
  ASSERT_TRUE(Eventually([&] { return fs::exists(spec.run_dir / "wd/outputs/progress.txt"); }));
  EXPECT_EQ(outcomes_.CountFor("live"), 0) << "the run waits for ../stop";

  Remote(absl::StrCat("touch ", RemoteRunDir("live"), "/stop"));
  std::optional<Outcome> outcome = outcomes_.Wait("live");
  ASSERT_TRUE(outcome.has_value() && outcome->ok());
  EXPECT_EQ((*outcome)->exit_code, 0);
  EXPECT_EQ(ReadFile(log), "first\nsecond\n");  // every byte once
  EXPECT_EQ(ReadFile(spec.run_dir / "wd/outputs/progress.txt"), "progress\n");
}

TEST_F(SshExecutorTest, CancelKillsTheWholeRemoteGroupAndLeavesNothing) {
  LaunchSpec spec =
      Spec("cancel", absl::StrCat("sleep ", token_, " &\necho started\nsleep ", token_, "\n"));
  ASSERT_TRUE(executor_->Launch(spec).ok());
  const fs::path log = spec.run_dir / "user_logs/std_log.txt";
  ASSERT_TRUE(Eventually([&] { return ReadFile(log) == "started\n"; })) << ReadFile(log);
  EXPECT_THAT(RemoteProcessesWith(token_), HasSubstr("sleep " + token_));

  ASSERT_TRUE(executor_->Cancel("cancel").ok());
  std::optional<Outcome> outcome = outcomes_.Wait("cancel");
  ASSERT_TRUE(outcome.has_value() && outcome->ok())
      << (outcome ? outcome->status() : absl::OkStatus());
  EXPECT_TRUE((*outcome)->canceled);
  EXPECT_EQ((*outcome)->signal, SIGTERM);
  EXPECT_EQ(RemoteProcessesWith(token_), "");
  EXPECT_EQ(executor_->Cancel("cancel").code(), absl::StatusCode::kNotFound);
}

TEST_F(SshExecutorTest, MaxDurationIsEnforcedOnTheHost) {
  LaunchSpec spec = Spec("timeout", absl::StrCat("echo start; sleep ", token_, "\n"));
  spec.max_duration = absl::Seconds(1);
  ASSERT_TRUE(executor_->Launch(spec).ok());
  std::optional<Outcome> outcome = outcomes_.Wait("timeout");
  ASSERT_TRUE(outcome.has_value() && outcome->ok());
  EXPECT_TRUE((*outcome)->timed_out);
  EXPECT_FALSE((*outcome)->canceled);
  EXPECT_EQ(RemoteProcessesWith(token_), "");
}

TEST_F(SshExecutorTest, UnreachableHostFailsTheLaunchWithSshsOwnMessageAfterRetries) {
  std::unique_ptr<Executor> dead = NewExecutor(DeadPort());
  absl::StatusOr<std::string> handle = dead->Launch(Spec("unreachable", "echo never\n"));
  ASSERT_FALSE(handle.ok());
  EXPECT_EQ(handle.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(handle.status().message(), HasSubstr("3 attempts"));
  EXPECT_THAT(handle.status().message(), HasSubstr("Connection refused"));
  EXPECT_THAT(handle.status().message(), HasSubstr("ssh: connect to host 127.0.0.1 port"));
  EXPECT_EQ(outcomes_.CountFor("unreachable"), 0);
}

TEST_F(SshExecutorTest, ReattachFollowsARunThatOutlivedItsExecutor) {
  LaunchSpec spec = Spec("outlive", R"sh(
echo before
while [ ! -e ../stop ]; do sleep 0.1; done
echo after
echo result > outputs/result.txt
)sh");
  absl::StatusOr<std::string> handle = executor_->Launch(spec);
  ASSERT_TRUE(handle.ok()) << handle.status();
  const fs::path log = spec.run_dir / "user_logs/std_log.txt";
  ASSERT_TRUE(Eventually([&] { return ReadFile(log) == "before\n"; }));
  executor_.reset();  // the daemon goes away; the run goes on
  EXPECT_EQ(outcomes_.CountFor("outlive"), 0);
  EXPECT_THAT(RemoteProcessesWith(RemoteRunDir("outlive")), HasSubstr("amld-shim"));

  executor_ = NewExecutor(host_.port);
  ASSERT_TRUE(executor_->Reattach("outlive", spec.run_dir, *handle).ok());
  Remote(absl::StrCat("touch ", RemoteRunDir("outlive"), "/stop"));
  std::optional<Outcome> outcome = outcomes_.Wait("outlive");
  ASSERT_TRUE(outcome.has_value() && outcome->ok()) << outcome->status();
  EXPECT_EQ((*outcome)->exit_code, 0);
  EXPECT_EQ(ReadFile(log), "before\nafter\n");
  EXPECT_EQ(ReadFile(spec.run_dir / "wd/outputs/result.txt"), "result\n");
}

TEST_F(SshExecutorTest, ReattachToARunThatEndedMeanwhileReportsItsExit) {
  LaunchSpec spec = Spec("ended", R"sh(
echo one
while [ ! -e ../stop ]; do sleep 0.1; done
echo two
exit 4
)sh");
  absl::StatusOr<std::string> handle = executor_->Launch(spec);
  ASSERT_TRUE(handle.ok()) << handle.status();
  const fs::path log = spec.run_dir / "user_logs/std_log.txt";
  ASSERT_TRUE(Eventually([&] { return ReadFile(log) == "one\n"; }));
  executor_.reset();
  Remote(absl::StrCat("touch ", RemoteRunDir("ended"), "/stop"));
  ASSERT_TRUE(Eventually([&] {
    return Remote(absl::StrCat("test -e ", RemoteRunDir("ended"), "/exit.json && echo y")) == "y\n";
  }));

  executor_ = NewExecutor(host_.port);
  ASSERT_TRUE(executor_->Reattach("ended", spec.run_dir, *handle).ok());
  std::optional<Outcome> outcome = outcomes_.Wait("ended");
  ASSERT_TRUE(outcome.has_value() && outcome->ok()) << outcome->status();
  EXPECT_EQ((*outcome)->exit_code, 4);
  EXPECT_EQ(ReadFile(log), "one\ntwo\n");
}

// The daemon died between starting the shim and recording its handle: the
// run's supervisor is found from the launch script's lock on the host and
// adopted; a run whose launch never got that far is NOT_FOUND (nothing is
// started by looking).
TEST_F(SshExecutorTest, ARunStartedButNotRecordedIsFoundOnTheHost) {
  LaunchSpec spec = Spec("unrecorded", R"sh(
echo before
while [ ! -e ../stop ]; do sleep 0.1; done
echo after
exit 3
)sh");
  absl::StatusOr<std::string> handle = executor_->Launch(spec);
  ASSERT_TRUE(handle.ok()) << handle.status();
  const fs::path log = spec.run_dir / "user_logs/std_log.txt";
  ASSERT_TRUE(Eventually([&] { return ReadFile(log) == "before\n"; }));
  executor_.reset();  // the handle was never stored

  executor_ = NewExecutor(host_.port);
  absl::StatusOr<std::string> found = executor_->FindUnrecorded("unrecorded", spec.run_dir, {});
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(nlohmann::json::parse(*found)["shim_pid"], nlohmann::json::parse(*handle)["shim_pid"]);
  ASSERT_TRUE(executor_->Reattach("unrecorded", spec.run_dir, *found).ok());
  Remote(absl::StrCat("touch ", RemoteRunDir("unrecorded"), "/stop"));
  std::optional<Outcome> outcome = outcomes_.Wait("unrecorded");
  ASSERT_TRUE(outcome.has_value() && outcome->ok()) << outcome->status();
  EXPECT_EQ((*outcome)->exit_code, 3);
  EXPECT_EQ(ReadFile(log), "before\nafter\n");

  absl::StatusOr<std::string> none = executor_->FindUnrecorded("never", root_ / "never", {});
  EXPECT_TRUE(absl::IsNotFound(none.status())) << none.status();
  EXPECT_EQ(Remote(absl::StrCat("test -e ", RemoteRunDir("never"), " && echo exists")), "");
}

TEST_F(SshExecutorTest, ReattachWhenTheHostIsUnreachableFailsTheRunWithSshsMessage) {
  const int dead_port = DeadPort();
  nlohmann::json h = {{"host", host_.host},   {"port", dead_port},
                      {"user", host_.user},   {"remote_dir", RemoteRunDir("gone")},
                      {"shim_pid", 12345},    {"shim_start_time", 678},
                      {"boot_id", "whatever"}};
  std::unique_ptr<Executor> dead = NewExecutor(dead_port);
  LaunchSpec spec = Spec("gone", "");
  ASSERT_TRUE(dead->Reattach("gone", spec.run_dir, h.dump()).ok());
  std::optional<Outcome> outcome = outcomes_.Wait("gone");
  ASSERT_TRUE(outcome.has_value());
  ASSERT_FALSE(outcome->ok()) << "how the run ended is unknown";
  EXPECT_EQ(outcome->status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(outcome->status().message(), HasSubstr("lost contact with"));
  EXPECT_THAT(outcome->status().message(), HasSubstr("(3 attempts)"));
  EXPECT_THAT(outcome->status().message(), HasSubstr("Connection refused"));
}

TEST_F(SshExecutorTest, MalformedHandlesAreRefused) {
  EXPECT_EQ(executor_->Reattach("x", root_ / "x", "{}").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(executor_->Reattach("x", root_ / "x", "not json").code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace amld::daemon
