// End-to-end: the real `aml` against a real `amld` (build/bin), started with
// `aml daemon start` on a temp data dir and socket for each test and stopped
// with `aml daemon stop` after it. Scripts run with /usr/bin/python3.
//
// Waiting is always "until it happens, with a generous limit"; nothing here
// asserts on how long something took.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "tests/testing/subprocess.h"
#include "tests/e2e/aml_e2e_fixture.h"

namespace {

using namespace amld::e2e;  // NOLINT: the shared e2e fixture and helpers
using amld::testing::Subprocess;
using amld::testing::WriteFile;

absl::Time ParseTime(const std::string& rfc3339) {
  absl::Time t;
  std::string err;
  EXPECT_TRUE(absl::ParseTime(absl::RFC3339_full, rfc3339, &t, &err)) << rfc3339 << ": " << err;
  return t;
}

// The time of the run's `status` transition, from `aml run show --output json`.
std::optional<absl::Time> TransitionTime(const json& run, const std::string& status) {
  std::optional<absl::Time> found;
  for (const auto& t : run["history"]) {
    if (t["status"] == status) found = ParseTime(t["time"].get<std::string>());
  }
  return found;
}

class AmlE2eTest : public AmlDaemonTest {
 protected:
  void SetUp() override { SetUpWorkspace("amld-e2e-"); }
};

// The bytes train.py writes to outputs/weights.bin.
std::string ExpectedWeights() {
  std::string s;
  for (int rep = 0; rep < 800; ++rep) {
    for (int b = 0; b < 256; ++b) s.push_back(static_cast<char>(b));
  }
  return s;
}

TEST_F(AmlE2eTest, SubmitWaitAndDownloadOutputsByteIdentical) {
  StartDaemon();
  WriteFile(project_ / "train.py", R"(import os, sys, json
epochs = int(sys.argv[sys.argv.index("--epochs") + 1])
os.makedirs("outputs/sub", exist_ok=True)
os.makedirs("logs", exist_ok=True)
for e in range(1, epochs + 1):
    print(f"epoch {e} loss {1.0 / e:.3f}")
with open("outputs/model.json", "w") as f:
    json.dump({"weights": [0.5, -1.25], "run": os.environ["AMLD_RUN_ID"]}, f)
with open("outputs/sub/weights.bin", "wb") as f:
    f.write(bytes(range(256)) * 800)
with open("logs/train.log", "w") as f:
    f.write("trained\n")
)");
  WriteFile(project_ / "lib" / "util.py", "X = 1\n");
  ASSERT_EQ(std::system(("cd '" + project_.string() +
                         "' && git init -q && git -c user.name=t -c user.email=t@e "
                         "commit -q --allow-empty -m init && git remote add origin "
                         "https://example.com/proj.git")
                            .c_str()),
            0);

  const std::string id =
      Submit("train.py", {"-e", "e2e-success", "--tag", "kind=smoke"}, {"--epochs", "3"});
  ASSERT_FALSE(id.empty());
  auto wait = Aml({"run", "wait", id, "--show-output"});
  EXPECT_EQ(wait.exit_code, 0) << Describe(wait);
  EXPECT_NE(wait.out.find("epoch 1 loss 1.000\nepoch 2 loss 0.500\nepoch 3 loss 0.333\n"),
            std::string::npos)
      << Describe(wait);

  json run = Show(id);
  EXPECT_EQ(run["status"], "COMPLETED");
  EXPECT_EQ(run["exit_code"], 0);
  EXPECT_EQ(run["config"]["tags"]["kind"], "smoke");
  EXPECT_EQ(run["config"]["git"]["repository_uri"], "https://example.com/proj.git");
  EXPECT_EQ(run["config"]["git"]["dirty"], true);  // the files were never committed
  EXPECT_EQ(run["config"]["git"]["commit"].get<std::string>().size(), 40u);
  for (const char* s : {"QUEUED", "RUNNING", "FINALIZING", "COMPLETED"}) {
    EXPECT_TRUE(TransitionTime(run, s).has_value()) << s;
  }
  auto show = Aml({"run", "show", id});
  EXPECT_NE(show.out.find("COMPLETED"), std::string::npos) << show.out;
  EXPECT_NE(show.out.find("https://example.com/proj.git"), std::string::npos) << show.out;

  auto files = Aml({"run", "files", id});
  EXPECT_NE(files.out.find("outputs/model.json"), std::string::npos) << Describe(files);
  EXPECT_NE(files.out.find("logs/train.log"), std::string::npos) << Describe(files);

  const std::string model = R"({"weights": [0.5, -1.25], "run": ")" + id + "\"}";
  auto one =
      Aml({"run", "download", id, "outputs/model.json", "-o", (dir_ / "model.json").string()});
  ASSERT_EQ(one.exit_code, 0) << Describe(one);
  EXPECT_EQ(ReadFile(dir_ / "model.json"), model);

  auto all = Aml({"run", "download", id, "--prefix", "outputs/", "-o", (dir_ / "dl").string()});
  ASSERT_EQ(all.exit_code, 0) << Describe(all);
  EXPECT_EQ(ReadFile(dir_ / "dl" / "outputs" / "model.json"), model);
  EXPECT_EQ(ReadFile(dir_ / "dl" / "outputs" / "sub" / "weights.bin"), ExpectedWeights());

  auto logs = Aml({"run", "logs", id});
  EXPECT_EQ(logs.out, "epoch 1 loss 1.000\nepoch 2 loss 0.500\nepoch 3 loss 0.333\n");
  auto experiments = Aml({"experiment", "list"});
  EXPECT_NE(experiments.out.find("e2e-success"), std::string::npos) << Describe(experiments);
  auto list = Aml({"run", "list", "-e", "e2e-success", "--status", "completed"});
  EXPECT_NE(list.out.find(id), std::string::npos) << Describe(list);

  // --wait exits 0 for COMPLETED; with -q stdout has the id and nothing else.
  auto quiet = Aml({"run", "submit", "-q", "--wait", "-s", project_.string(), "--interpreter",
                    kPython, "train.py", "--", "--epochs", "1"});
  EXPECT_EQ(quiet.exit_code, 0) << Describe(quiet);
  EXPECT_EQ(std::count(quiet.out.begin(), quiet.out.end(), '\n'), 1) << Describe(quiet);
  // A command line instead of a script, with the arguments appended.
  auto command = Aml({"run", "submit", "--wait", "-s", project_.string(), "--command",
                      "echo from-command", "--", "and", "args"});
  EXPECT_EQ(command.exit_code, 0) << Describe(command);
  EXPECT_NE(command.out.find("from-command and args\n"), std::string::npos) << Describe(command);
}

TEST_F(AmlE2eTest, FailingScriptEndsFailedWithItsExitCode) {
  StartDaemon();
  WriteFile(project_ / "fail.py", "print('about to fail')\nraise SystemExit(3)\n");
  auto r = Aml(
      {"run", "submit", "-s", project_.string(), "--interpreter", kPython, "--wait", "fail.py"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_NE(r.out.find("about to fail"), std::string::npos) << Describe(r);
  EXPECT_NE(r.err.find("FAILED"), std::string::npos) << Describe(r);

  json list = AmlJson({"run", "list", "-e", "proj"});
  ASSERT_EQ(list["runs"].size(), 1u) << list.dump();
  const std::string id = list["runs"][0]["id"];
  json run = Show(id);
  EXPECT_EQ(run["status"], "FAILED");
  EXPECT_EQ(run["exit_code"], 3);
  EXPECT_NE(run["error"].get<std::string>().find("exit code 3"), std::string::npos) << run.dump();
  EXPECT_EQ(Aml({"run", "wait", id}).exit_code, 1);
}

TEST_F(AmlE2eTest, PriorityAndGpusFromSubmitToShowAndDaemonStatus) {
  const fs::path config = dir_ / "amld.yaml";
  WriteFile(config, "max_concurrent_runs: 1\ncpus: 4\ngpus: [0, 1]\n");
  StartDaemon({"--config", config.string()});
  auto status = Aml({"daemon", "status"});
  EXPECT_NE(status.out.find("uptime:"), std::string::npos) << Describe(status);
  EXPECT_NE(status.out.find("data dir:      " + data_.string()), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("0 queued, 0 running"), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("GPUs 0,1 (free: 0,1)"), std::string::npos) << status.out;

  WriteFile(project_ / "hold.py",
            "import os, sys, time\n"
            "print('visible', repr(os.environ['CUDA_VISIBLE_DEVICES']), flush=True)\n"
            "while not os.path.exists(sys.argv[1]): time.sleep(0.05)\n"
            "sys.exit(int(sys.argv[2]))\n");
  const std::string go = (dir_ / "go").string();
  const std::string first = Submit("hold.py", {"--gpus", "1"}, {go, "0"});
  ASSERT_TRUE(Eventually([&] { return Show(first)["status"] == "RUNNING"; }));
  const std::string low = Submit("hold.py", {"--priority", "-5"}, {go, "0"});
  const std::string high = Submit("hold.py", {"--gpus", "2", "--priority", "7"}, {go, "3"});
  json info = AmlJson({"daemon", "status"});
  EXPECT_EQ(info["run_counts"]["QUEUED"], 2) << info.dump();  // numbers as numbers
  EXPECT_EQ(info["run_counts"]["RUNNING"], 1) << info.dump();
  EXPECT_EQ(info["free_gpus"], json::array({1})) << info.dump();
  WriteFile(dir_ / "go", "");
  EXPECT_EQ(Aml({"run", "wait", low}).exit_code, 0);

  json run = Show(high);
  EXPECT_EQ(run["status"], "FAILED");
  EXPECT_EQ(run["assigned_gpus"], json::array({0, 1})) << run.dump();
  EXPECT_EQ(run["config"]["priority"], 7);
  EXPECT_EQ(run["config"]["resources"]["gpus"], 2);
  // The higher priority went first although it was submitted last.
  EXPECT_LT(*TransitionTime(run, "RUNNING"), *TransitionTime(Show(low), "RUNNING"));
  EXPECT_EQ(Aml({"run", "logs", high}).out, "visible '0,1'\n");
  // A run without a GPU on a machine with GPUs says so first (CUDA would
  // quietly run on the CPU).
  const std::string low_log = Aml({"run", "logs", low}).out;
  EXPECT_TRUE(absl::StartsWith(low_log, "amld: this run has no GPU (CUDA_VISIBLE_DEVICES is "
                                        "empty; this machine has 2: 0,1)"))
      << low_log;
  EXPECT_TRUE(absl::EndsWith(low_log, "--gpus N`, run_config.gpus = N in the Python SDK, or "
                                      "resources.gpus in a job YAML\nvisible ''\n"))
      << low_log;
  auto show = Aml({"run", "show", high});
  // The exit is the reason: said once.
  EXPECT_EQ(show.out.find("reason:"), std::string::npos) << show.out;
  for (const char* line : {"exit status:   exit code 3\n",
                           "priority:      7\n", "resources:     1 CPU slot, 2 GPUs\n",
                           "GPUs:          0,1\n", "queue wait:    ", "run time:      "}) {
    EXPECT_NE(show.out.find(line), std::string::npos) << line << "\n" << show.out;
  }

  auto refused = Aml({"run", "submit", "-s", project_.string(), "--gpus", "3", "hold.py"});
  EXPECT_EQ(refused.exit_code, 1) << Describe(refused);
  EXPECT_NE(refused.err.find("the local target has 2 (ids 0,1)"), std::string::npos)
      << Describe(refused);
}

TEST_F(AmlE2eTest, CancelOfASleepingScriptEndsCanceledWithNoProcessLeft) {
  StartDaemon({"--kill-grace-seconds", "5"});
  const fs::path pidfile = dir_ / "pids";
  WriteFile(project_ / "sleepy.py", R"(import os, subprocess, time
child = subprocess.Popen(["sleep", "300"])
with open(os.environ["PIDFILE"] + ".tmp", "w") as f:
    f.write(f"{os.getpid()} {child.pid}\n")
os.rename(os.environ["PIDFILE"] + ".tmp", os.environ["PIDFILE"])
print("sleeping", flush=True)
time.sleep(300)
)");
  const std::string id = Submit("sleepy.py", {"--env", "PIDFILE=" + pidfile.string()});
  ASSERT_TRUE(Eventually([&] { return fs::exists(pidfile); })) << "the script never started";
  std::vector<pid_t> pids;
  for (absl::string_view p :
       absl::StrSplit(ReadFile(pidfile), absl::ByAnyChar(" \n"), absl::SkipEmpty())) {
    pids.push_back(std::stoi(std::string(p)));
  }
  ASSERT_EQ(pids.size(), 2u);
  for (pid_t pid : pids) ASSERT_FALSE(ProcessGone(pid));

  auto cancel = Aml({"run", "cancel", id});
  EXPECT_EQ(cancel.exit_code, 0) << Describe(cancel);
  auto wait = Aml({"run", "wait", id});
  EXPECT_EQ(wait.exit_code, 1) << Describe(wait);
  json run = Show(id);
  EXPECT_EQ(run["status"], "CANCELED") << run.dump();
  for (pid_t pid : pids) {
    EXPECT_TRUE(Eventually([pid] { return ProcessGone(pid); }, absl::Seconds(15)))
        << "process " << pid << " of the canceled run is still alive";
  }
}

// As azureml, which cancels a run past its max_run_duration_seconds.
TEST_F(AmlE2eTest, MaxDurationEndsCanceledSayingItTimedOut) {
  StartDaemon({"--kill-grace-seconds", "2"});
  WriteFile(project_ / "forever.py", "import time\nprint('start', flush=True)\ntime.sleep(300)\n");
  const std::string id = Submit("forever.py", {"--max-duration", "2"});
  auto wait = Aml({"run", "wait", id});
  EXPECT_EQ(wait.exit_code, 1) << Describe(wait);
  json run = Show(id);
  EXPECT_EQ(run["status"], "CANCELED") << run.dump();
  EXPECT_NE(run["error"].get<std::string>().find("timed out"), std::string::npos) << run.dump();
}

TEST_F(AmlE2eTest, ResubmitAfterChangingOneFileUploadsExactlyOneFileBlob) {
  upload_snapshots_ = true;  // the client's upload, not the daemon's read
  StartDaemon();
  WriteFile(project_ / "main.py", "print('v1')\n");
  for (int i = 0; i < 20; ++i) {
    WriteFile(project_ / "pkg" / ("mod" + std::to_string(i) + ".py"),
              "VALUE = " + std::to_string(i) + "\n");
  }
  auto submit = [&] {
    return AmlJson({"run", "submit", "-s", project_.string(), "--interpreter", kPython, "main.py"});
  };
  json first = submit();
  EXPECT_EQ(first["upload"]["files_total"], 21) << first.dump();
  EXPECT_EQ(first["upload"]["files_uploaded"], 21) << first.dump();
  EXPECT_FALSE(first["run_id"].get<std::string>().empty());

  json unchanged = submit();
  EXPECT_EQ(unchanged["upload"]["files_uploaded"], 0) << unchanged.dump();
  EXPECT_EQ(unchanged["upload"]["directories_uploaded"], 0) << unchanged.dump();
  EXPECT_EQ(unchanged["snapshot_root"], first["snapshot_root"]);

  WriteFile(project_ / "pkg" / "mod7.py", "VALUE = 'seven, changed'\n");
  json changed = submit();
  EXPECT_EQ(changed["upload"]["files_uploaded"], 1) << changed.dump();
  EXPECT_EQ(changed["upload"]["directories_uploaded"], 2) << changed.dump();  // pkg/ and root
  EXPECT_NE(changed["snapshot_root"], first["snapshot_root"]);
  for (const json* j : {&first, &unchanged, &changed}) {
    EXPECT_EQ(Aml({"run", "wait", (*j)["run_id"]}).exit_code, 0);
  }
}

TEST_F(AmlE2eTest, DownloadsThatEscapeTheRunAreRefusedAndTheDaemonLivesOn) {
  StartDaemon();
  WriteFile(project_ / "links.py", R"(import os
os.makedirs("outputs", exist_ok=True)
with open("outputs/ok.txt", "w") as f:
    f.write("fine\n")
os.symlink("/etc/passwd", "outputs/abs_link")
os.symlink("../../../../../../../../etc/passwd", "outputs/up_link")
)");
  const std::string id = Submit("links.py");
  ASSERT_EQ(Aml({"run", "wait", id}).exit_code, 0);
  const fs::path out_dir = dir_ / "downloads";
  fs::create_directories(out_dir);

  for (const std::string bad : {"../../../../etc/passwd", "outputs/../../../etc/passwd",
                                "/etc/passwd", "outputs/abs_link", "outputs/up_link"}) {
    auto r =
        Aml({"--output", "json", "run", "download", id, bad, "-o", (out_dir / "got").string()});
    EXPECT_EQ(r.exit_code, 1) << bad << "\n" << Describe(r);
    auto j = json::parse(r.out, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << Describe(r);
    EXPECT_EQ(j["error"]["code"], "INVALID_ARGUMENT") << bad << "\n" << Describe(r);
    EXPECT_EQ(r.err.rfind("aml: cannot download " + bad, 0), 0u) << Describe(r);
    EXPECT_NE(r.err.find("(INVALID_ARGUMENT)"), std::string::npos) << Describe(r);
    EXPECT_FALSE(fs::exists(out_dir / "got")) << bad;
    EXPECT_FALSE(fs::exists(out_dir / "got.part")) << bad;
    auto alive = Aml({"daemon", "status"});
    ASSERT_EQ(alive.exit_code, 0) << "after " << bad << "\n" << Describe(alive);
  }
  auto logs = Aml({"--output", "json", "run", "logs", id, "--path", "../../../../etc/passwd"});
  EXPECT_EQ(logs.exit_code, 1) << Describe(logs);
  EXPECT_NE(logs.out.find("INVALID_ARGUMENT"), std::string::npos) << Describe(logs);
  EXPECT_EQ(Aml({"daemon", "status"}).exit_code, 0);

  auto ok = Aml({"run", "download", id, "outputs/ok.txt", "-o", (out_dir / "ok.txt").string()});
  EXPECT_EQ(ok.exit_code, 0) << Describe(ok);
  EXPECT_EQ(ReadFile(out_dir / "ok.txt"), "fine\n");
}

TEST_F(AmlE2eTest, TwoRunsRespectASlotLimitOfOne) {
  StartDaemon({"--max-concurrent-runs", "1"});
  WriteFile(project_ / "nap.py", "import time\nprint('nap', flush=True)\ntime.sleep(1.5)\n");
  const std::string a = Submit("nap.py");
  const std::string b = Submit("nap.py");
  EXPECT_EQ(Aml({"run", "wait", a}).exit_code, 0);
  EXPECT_EQ(Aml({"run", "wait", b}).exit_code, 0);
  json ra = Show(a);
  json rb = Show(b);
  auto a_running = TransitionTime(ra, "RUNNING");
  auto b_running = TransitionTime(rb, "RUNNING");
  ASSERT_TRUE(a_running && b_running) << ra.dump() << rb.dump();
  const json& first = *a_running <= *b_running ? ra : rb;
  const json& second = *a_running <= *b_running ? rb : ra;
  // The first run's process had ended (FINALIZING) before the second ran.
  auto first_end = TransitionTime(first, "FINALIZING");
  auto second_running = TransitionTime(second, "RUNNING");
  ASSERT_TRUE(first_end && second_running);
  EXPECT_GE(*second_running, *first_end) << first.dump() << second.dump();
}

TEST_F(AmlE2eTest, LogIsCompleteAfterFollowingHalfwayAndReattaching) {
  StartDaemon();
  std::string expected;
  for (int i = 1; i <= 40; ++i) expected += "line " + std::to_string(i) + "\n";
  WriteFile(project_ / "chatty.py",
            "import time\nfor i in range(1, 41):\n    print(f'line {i}', flush=True)\n"
            "    time.sleep(0.05)\n");
  const std::string id = Submit("chatty.py");

  std::string first_part;
  {
    Subprocess follower(Argv({"run", "logs", "-f", id}), Options());
    ASSERT_TRUE(Eventually([&] {
      return follower.StdoutSoFar().find("line 5\n") != std::string::npos;
    })) << "the follower never got line 5";
    follower.Signal(SIGKILL);
    follower.Wait();
    first_part = follower.StdoutSoFar();
  }
  ASSERT_FALSE(first_part.empty());
  ASSERT_EQ(expected.compare(0, first_part.size(), first_part), 0) << first_part;

  auto rest = Aml({"run", "logs", "-f", "--offset", std::to_string(first_part.size()), id});
  EXPECT_EQ(rest.exit_code, 0) << Describe(rest);
  EXPECT_EQ(first_part + rest.out, expected);
  auto whole = Aml({"run", "logs", id});
  EXPECT_EQ(whole.out, expected);
}

TEST_F(AmlE2eTest, WaitWithOutputSurvivesADaemonRestart) {
  StartDaemon();
  std::string expected;
  for (int i = 1; i <= 30; ++i) expected += "line " + std::to_string(i) + "\n";
  WriteFile(project_ / "count.py",
            "import time\nfor i in range(1, 31):\n    print(f'line {i}', flush=True)\n"
            "    time.sleep(0.1)\n");
  const std::string id = Submit("count.py");
  Subprocess waiter(Argv({"run", "wait", id, "--show-output"}), Options());
  ASSERT_TRUE(
      Eventually([&] { return waiter.StdoutSoFar().find("line 3\n") != std::string::npos; }));
  auto stop = Aml({"daemon", "stop"});
  ASSERT_EQ(stop.exit_code, 0) << Describe(stop);
  StartDaemon();
  auto r = waiter.Wait();
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.out, expected);
  EXPECT_EQ(Aml({"run", "logs", id}).out, expected);
}

TEST_F(AmlE2eTest, CtrlCWhileWaitingLeavesTheRunRunning) {
  StartDaemon({"--kill-grace-seconds", "2"});
  WriteFile(project_ / "slow.py", "import time\nprint('started', flush=True)\ntime.sleep(300)\n");
  const std::string id = Submit("slow.py");
  Subprocess waiter(Argv({"run", "wait", id, "--show-output"}), Options());
  ASSERT_TRUE(
      Eventually([&] { return waiter.StdoutSoFar().find("started") != std::string::npos; }));
  waiter.Signal(SIGINT);
  auto r = waiter.Wait();
  EXPECT_EQ(r.exit_code, 130) << Describe(r);
  EXPECT_NE(r.err.find("run " + id + " is still running; reattach with: aml run wait " + id +
                       " --show-output"),
            std::string::npos)
      << Describe(r);
  EXPECT_EQ(Show(id)["status"], "RUNNING");
  EXPECT_EQ(Aml({"run", "cancel", id}).exit_code, 0);
  EXPECT_EQ(Aml({"run", "wait", id}).exit_code, 1);
}

TEST_F(AmlE2eTest, DaemonStartTwiceReportsTheRunningOneAndStopEndsIt) {
  StartDaemon();
  json info = AmlJson({"daemon", "status"});
  const int64_t pid = info["pid"].is_string() ? std::stoll(info["pid"].get<std::string>())
                                              : info["pid"].get<int64_t>();
  ASSERT_GT(pid, 1);
  EXPECT_EQ(fs::status(data_).permissions() & fs::perms::all, fs::perms::owner_all);
  auto again = Aml({"daemon", "start", "--data-dir", data_.string()});
  EXPECT_EQ(again.exit_code, 0) << Describe(again);
  EXPECT_NE(again.out.find("already running"), std::string::npos) << Describe(again);
  // A second daemon on the same data dir (another socket) is refused, and
  // `aml daemon start` says why.
  auto second = amld::testing::RunProcess({kAml, "--socket", (dir_ / "other.sock").string(),
                                           "daemon", "start", "--data-dir", data_.string()},
                                          Options());
  EXPECT_EQ(second.exit_code, 1) << Describe(second);
  EXPECT_NE(second.err.find("amld exited with code 1 before answering"), std::string::npos)
      << Describe(second);
  EXPECT_NE(second.err.find(absl::StrCat("pid ", pid)), std::string::npos) << Describe(second);
  auto stop = Aml({"daemon", "stop"});
  EXPECT_EQ(stop.exit_code, 0) << Describe(stop);
  EXPECT_TRUE(ProcessGone(static_cast<pid_t>(pid)));
  auto status = Aml({"daemon", "status"});
  EXPECT_EQ(status.exit_code, 1);
  EXPECT_NE(status.err.find("amld is not running at " + socket_.string()), std::string::npos);
  started_ = false;
}

}  // namespace
