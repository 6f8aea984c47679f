// End-to-end on an SSH target: the real `aml` and `amld` against the real
// sshd that scripts/test-env/sshd starts as the ctest fixture `sshd` (user
// amldtest on 127.0.0.1, port 2222 or a free one; AMLD_TEST_SSH_STATE names
// its folder, whose env file says which). The
// same `aml run submit ... -c <target>` as on local: success with outputs
// downloaded byte-identical, an exit code, cancel, timeout, live logs, an
// unreachable host, the compute target commands, and `kill -9` of the
// daemon while an ssh run is in flight.
//
// Waiting is always "until it happens, with a generous limit"; nothing here
// asserts on how long something took.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "tests/testing/build_paths.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/test_env.h"
#include "tests/e2e/aml_e2e_fixture.h"

namespace {

using namespace amld::e2e;  // NOLINT: the shared e2e fixture and helpers
using amld::testing::Subprocess;
using amld::testing::WriteFile;

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

// The bytes train.py writes to outputs/sub/weights.bin.
std::string ExpectedWeights() {
  std::string s;
  for (int rep = 0; rep < 800; ++rep) {
    for (int b = 0; b < 256; ++b) s.push_back(static_cast<char>(b));
  }
  return s;
}

class SshE2eTest : public AmlDaemonTest {
 protected:
  void SetUp() override {
    const amld::testing::SshTestHost h = amld::testing::LoadSshTestHost();
    ASSERT_FALSE(h.host.empty());
    host_ = h.host;
    port_ = absl::StrCat(h.port);
    user_ = h.user;
    key_ = h.key;
    SetUpWorkspace("amld-ssh-e2e-");
    std::random_device rd;
    workdir_ = absl::StrCat(h.home, "/amld-e2e-", rd() % 100000000);
    // A sleep length only this test's processes carry (another build may run
    // the same tests against the same user at the same time).
    token_ = absl::StrCat(100000 + rd() % 900000);
  }

  void TearDown() override {
    AmlDaemonTest::TearDown();
    Remote("rm -rf " + workdir_);
  }

  // `aml compute create NAME --type ssh ...` for the test host.
  void CreateBox(const std::string& name = "box", const std::string& port = "") {
    auto r = Aml({"compute", "create", name, "--type", "ssh", "--host", host_, "--port",
                  port.empty() ? port_ : port, "--user", user_, "--identity-file", key_,
                  "--workdir", workdir_});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
  }

  std::string Submit(const std::string& target, const std::string& script,
                     std::vector<std::string> flags = {}) const {
    flags.insert(flags.begin(), {"-c", target});
    return AmlDaemonTest::Submit(script, flags);
  }

  // Runs `command` on the test host as its user.
  std::string Remote(const std::string& command) const {
    auto r = amld::testing::RunProcess(
        {"/usr/bin/ssh", "-i", key_, "-p", port_, "-o", "BatchMode=yes", "-o",
         "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
         absl::StrCat(user_, "@", host_), command},
        ProcessOptions());
    EXPECT_EQ(r.exit_code, 0) << command << "\n" << Describe(r);
    return r.out;
  }
  // The test host's processes (pgrep -u amldtest) whose command line has `token`.
  std::string RemoteProcessesWith(const std::string& token) const {
    std::string out;
    for (absl::string_view line : absl::StrSplit(Remote("pgrep -u " + user_ + " -a ."), '\n')) {
      if (absl::StrContains(line, token) && !absl::StrContains(line, "pgrep")) {
        absl::StrAppend(&out, line, "\n");
      }
    }
    return out;
  }

  std::string host_, port_, user_, key_, workdir_, token_;
};

TEST_F(SshE2eTest, TheSameSubmitRunsOverSshAndOutputsDownloadByteIdentical) {
  StartDaemon();
  CreateBox();
  WriteFile(project_ / "train.py", R"(import os, json, getpass
for e in range(1, 4):
    print(f"epoch {e} loss {1.0 / e:.3f}")
print("user", getpass.getuser())
os.makedirs("outputs/sub", exist_ok=True)
with open("outputs/model.json", "w") as f:
    json.dump({"run": os.environ["AMLD_RUN_ID"], "cwd": os.getcwd()}, f)
with open("outputs/sub/weights.bin", "wb") as f:
    f.write(bytes(range(256)) * 800)
with open("logs/train.log", "w") as f:
    f.write("trained\n")
)");
  const std::string id = Submit("box", "train.py", {"-e", "ssh-e2e"});
  ASSERT_FALSE(id.empty());
  auto wait = Aml({"run", "wait", id, "--show-output"});
  EXPECT_EQ(wait.exit_code, 0) << Describe(wait);
  EXPECT_NE(wait.out.find("epoch 1 loss 1.000\nepoch 2 loss 0.500\nepoch 3 loss 0.333\n"),
            std::string::npos)
      << Describe(wait);
  EXPECT_NE(wait.out.find("user amldtest\n"), std::string::npos) << Describe(wait);

  json run = Show(id);
  EXPECT_EQ(run["status"], "COMPLETED") << run.dump();
  const std::string where = absl::StrCat("ssh:", user_, "@", host_, ":", port_);
  EXPECT_EQ(run["placement"], where) << run.dump();
  EXPECT_EQ(run["config"]["compute_target"], "box");
  EXPECT_EQ(Statuses(run), (std::vector<std::string>{"QUEUED", "PREPARING", "STARTING", "RUNNING",
                                                     "FINALIZING", "COMPLETED"}));
  auto show = Aml({"run", "show", id});
  EXPECT_NE(show.out.find("placement:     " + where), std::string::npos) << show.out;

  const fs::path dl = dir_ / "dl";
  auto got = Aml({"run", "download", id, "--prefix", "outputs/", "-o", dl.string()});
  ASSERT_EQ(got.exit_code, 0) << Describe(got);
  EXPECT_EQ(ReadFile(dl / "outputs/sub/weights.bin"), ExpectedWeights());
  json model = json::parse(ReadFile(dl / "outputs/model.json"), nullptr, false);
  EXPECT_EQ(model["run"], id);
  EXPECT_EQ(model["cwd"], absl::StrCat(workdir_, "/", id, "/wd"));  // it ran on the host
  auto log = Aml({"run", "download", id, "logs/train.log", "-o", (dir_ / "train.log").string()});
  EXPECT_EQ(log.exit_code, 0) << Describe(log);
  EXPECT_EQ(ReadFile(dir_ / "train.log"), "trained\n");
}

TEST_F(SshE2eTest, ExitCodeCancelAndTimeout) {
  StartDaemon();
  CreateBox();
  WriteFile(project_ / "fail.py", "print('about to fail')\nraise SystemExit(3)\n");
  WriteFile(project_ / "sleep.py", absl::StrCat("import subprocess, time\n"
                                                "child = subprocess.Popen(['sleep', '",
                                                token_,
                                                "'])\n"
                                                "print('started', flush=True)\n"
                                                "time.sleep(",
                                                token_, ")\n"));
  const std::string failed = Submit("box", "fail.py");
  const std::string canceled = Submit("box", "sleep.py");
  const std::string timed_out = Submit("box", "sleep.py", {"--max-duration", "2"});

  EXPECT_EQ(Aml({"run", "wait", failed}).exit_code, 1);
  json f = Show(failed);
  EXPECT_EQ(f["status"], "FAILED");
  EXPECT_EQ(f["exit_code"], 3);
  EXPECT_NE(f["error"].get<std::string>().find("exit code 3"), std::string::npos) << f.dump();
  EXPECT_EQ(Aml({"run", "logs", failed}).out, "about to fail\n");

  ASSERT_TRUE(Eventually([&] { return Aml({"run", "logs", canceled}).out == "started\n"; }));
  EXPECT_NE(RemoteProcessesWith(token_), "");
  auto c = Aml({"run", "cancel", canceled});
  EXPECT_EQ(c.exit_code, 0) << Describe(c);
  EXPECT_EQ(Aml({"run", "wait", canceled}).exit_code, 1);
  EXPECT_EQ(Show(canceled)["status"], "CANCELED");

  EXPECT_EQ(Aml({"run", "wait", timed_out}).exit_code, 1);
  json t = Show(timed_out);
  EXPECT_EQ(t["status"], "CANCELED");  // as azureml cancels a run past its limit
  EXPECT_NE(t["error"].get<std::string>().find("timed out after 2 s"), std::string::npos)
      << t.dump();
  // Neither the canceled nor the timed-out run left a process on the host.
  EXPECT_EQ(RemoteProcessesWith(token_), "");
}

TEST_F(SshE2eTest, LogsArriveWhileTheRunRuns) {
  StartDaemon();
  CreateBox();
  WriteFile(project_ / "live.py",
            "import os, time\n"
            "print('first line', flush=True)\n"
            "while not os.path.exists('../go'): time.sleep(0.05)\n"
            "print('second line')\n");
  const std::string id = Submit("box", "live.py");
  ASSERT_TRUE(Eventually([&] { return Aml({"run", "logs", id}).out == "first line\n"; }));
  EXPECT_EQ(Show(id)["status"], "RUNNING") << "the run waits for ../go";

  Subprocess follow(
      std::vector<std::string>{kAml, "--socket", socket_.string(), "run", "logs", id, "--follow"},
      ProcessOptions());
  Remote(absl::StrCat("touch ", workdir_, "/", id, "/go"));
  ProcessResult followed = follow.Wait();
  EXPECT_EQ(followed.exit_code, 0) << Describe(followed);
  EXPECT_EQ(followed.out, "first line\nsecond line\n");
  EXPECT_EQ(Show(id)["status"], "COMPLETED");
}

// `aml tensorboard`'s mirror follows an SSH run's logs/ while it runs (what
// the daemon pulls from the host, not the remote folder), and the event
// file's scalars become the run's metrics. No tensorboard is installed
// here: the command says so and mirrors all the same.
TEST_F(SshE2eTest, TheTensorboardMirrorFollowsAnSshRunsLogs) {
  StartDaemon();
  CreateBox();
  std::filesystem::copy_file(amld::testing::SourceDir() / "tests/python/tfevents.py",
                             project_ / "tfevents.py");
  WriteFile(project_ / "tb.py",
            "import os, time\n"
            "from tfevents import EventsWriter\n"
            "w = EventsWriter('logs/tb')\n"
            "w.scalar('loss', 1.0, step=0)\n"
            "while not os.path.exists('../go'): time.sleep(0.05)\n"
            "w.scalar('loss', 0.5, step=1)\n");
  const std::string id = Submit("box", "tb.py");
  const std::filesystem::path logdir = project_ / "tb-mirror";
  ProcessOptions options = Options();
  options.timeout = absl::Seconds(300);
  std::filesystem::create_directories(dir_ / "no-tools");
  options.env.emplace_back("PATH", (dir_ / "no-tools").string());  // no tensorboard on it
  options.unset_env.push_back("AMLD_TENSORBOARD");
  Subprocess board({kAml, "--socket", socket_.string(), "tensorboard", id, "--logdir",
                    logdir.string()},
                   options);
  // The mirrored events file: its size, 0 while there is none.
  auto mirrored = [&]() -> uintmax_t {
    std::error_code ec;
    for (std::filesystem::recursive_directory_iterator it(logdir / id, ec), end; !ec && it != end;
         it.increment(ec)) {
      if (absl::StartsWith(it->path().filename().string(), "events.out.tfevents.")) {
        return std::filesystem::file_size(it->path(), ec);
      }
    }
    return 0;
  };
  uintmax_t first = 0;
  ASSERT_TRUE(Eventually([&] { return (first = mirrored()) > 0; }));
  EXPECT_EQ(Show(id)["status"], "RUNNING") << "the run waits for ../go";
  Remote(absl::StrCat("touch ", workdir_, "/", id, "/go"));
  ASSERT_TRUE(Eventually([&] { return mirrored() > first; }));
  ASSERT_TRUE(Eventually([&] { return Show(id)["status"] == "COMPLETED"; }));
  auto metrics = Aml({"--output", "json", "run", "metrics", id, "--name", "loss"});
  ASSERT_EQ(metrics.exit_code, 0) << Describe(metrics);
  const nlohmann::json values = nlohmann::json::parse(metrics.out)["metrics"][0]["values"];
  ASSERT_EQ(values.size(), 2u) << metrics.out;
  EXPECT_EQ(values[0]["value"], 1.0);
  EXPECT_EQ(values[1]["value"], 0.5);
  board.Signal(SIGINT);
  ProcessResult done = board.Wait();
  EXPECT_EQ(done.exit_code, 0) << Describe(done);
  EXPECT_NE(done.err.find("pip install tensorboard"), std::string::npos) << Describe(done);
}

TEST_F(SshE2eTest, KillingTheDaemonLosesNoSshRun) {
  StartDaemon();
  CreateBox();
  WriteFile(project_ / "hold.py",
            "import os, time\n"
            "print('before', flush=True)\n"
            "while not os.path.exists('../go'): time.sleep(0.05)\n"
            "print('after')\n"
            "open('outputs/result.txt', 'w').write('kept')\n");
  const std::string id = Submit("box", "hold.py");
  ASSERT_TRUE(Eventually([&] { return Aml({"run", "logs", id}).out == "before\n"; }));

  const pid_t pid = DaemonPid();
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  ASSERT_TRUE(Eventually([&] { return Aml({"daemon", "status"}).exit_code != 0; }));
  // The run goes on on the host without any daemon.
  EXPECT_NE(RemoteProcessesWith(absl::StrCat(workdir_, "/", id)), "");
  Remote(absl::StrCat("touch ", workdir_, "/", id, "/go"));

  StartDaemon();
  EXPECT_EQ(Aml({"run", "wait", id}).exit_code, 0);
  json run = Show(id);
  EXPECT_EQ(run["status"], "COMPLETED") << run.dump();
  EXPECT_EQ(Aml({"run", "logs", id}).out, "before\nafter\n");  // every line once
  auto got = Aml({"run", "download", id, "outputs/result.txt", "-o", (dir_ / "r.txt").string()});
  EXPECT_EQ(got.exit_code, 0) << Describe(got);
  EXPECT_EQ(ReadFile(dir_ / "r.txt"), "kept");
  EXPECT_NE(ReadFile(data_ / "amld.log").find("re-adopted"), std::string::npos);
}

TEST_F(SshE2eTest, AnUnreachableHostFailsTheRunWithSshsMessage) {
  StartDaemon();
  CreateBox("nowhere", std::to_string(DeadPort()));
  WriteFile(project_ / "train.py", "print('never')\n");
  const std::string id = Submit("nowhere", "train.py");
  EXPECT_EQ(Aml({"run", "wait", id}).exit_code, 1);
  json run = Show(id);
  EXPECT_EQ(run["status"], "FAILED");
  const std::string error = run["error"];
  EXPECT_NE(error.find("Connection refused"), std::string::npos) << error;
  EXPECT_NE(error.find("3 attempts"), std::string::npos) << error;
}

TEST_F(SshE2eTest, ComputeTargetCommands) {
  StartDaemon();
  json list = AmlJson({"compute", "list"});
  ASSERT_EQ(list["targets"].size(), 1u) << list.dump();
  EXPECT_EQ(list["targets"][0]["name"], "local");

  CreateBox();
  json box = AmlJson({"compute", "show", "box"});
  EXPECT_EQ(box["ssh"]["host"], host_);
  EXPECT_EQ(box["ssh"]["port"], std::stoi(port_));
  EXPECT_EQ(box["ssh"]["identity_file"], key_);
  auto table = Aml({"compute", "list"});
  EXPECT_NE(table.out.find("box    ssh    " + user_ + "@" + host_ + ":" + port_), std::string::npos)
      << table.out;

  auto again =
      Aml({"--output", "json", "compute", "create", "box", "--type", "ssh", "--host", "x"});
  EXPECT_EQ(again.exit_code, 1) << Describe(again);
  EXPECT_NE(again.out.find("ALREADY_EXISTS"), std::string::npos) << Describe(again);
  auto local = Aml({"--output", "json", "compute", "delete", "local"});
  EXPECT_NE(local.out.find("FAILED_PRECONDITION"), std::string::npos) << Describe(local);
  auto usage = Aml({"compute", "create", "c", "--type", "ssh", "--partition", "gpu"});
  EXPECT_EQ(usage.exit_code, 2) << Describe(usage);
  auto no_key = Aml({"compute", "create", "c", "--type", "ssh", "--host", "h", "--identity-file",
                     (dir_ / "missing").string()});
  EXPECT_EQ(no_key.exit_code, 1) << Describe(no_key);
  EXPECT_NE(no_key.err.find("cannot be read by the daemon"), std::string::npos) << Describe(no_key);

  WriteFile(project_ / "hold.py",
            "import os, time\nwhile not os.path.exists('../go'): time.sleep(0.05)\n");
  auto unknown = Aml({"run", "submit", "-s", project_.string(), "-c", "nope", "hold.py"});
  EXPECT_EQ(unknown.exit_code, 1) << Describe(unknown);
  EXPECT_NE(unknown.err.find("compute target \"nope\" does not exist"), std::string::npos)
      << Describe(unknown);

  const std::string id = Submit("box", "hold.py");
  auto busy = Aml({"compute", "delete", "box"});
  EXPECT_EQ(busy.exit_code, 1) << Describe(busy);
  EXPECT_NE(busy.err.find("in use by run " + id), std::string::npos) << Describe(busy);
  ASSERT_TRUE(Eventually([&] { return Show(id)["status"] == "RUNNING"; }));
  Remote(absl::StrCat("touch ", workdir_, "/", id, "/go"));
  EXPECT_EQ(Aml({"run", "wait", id}).exit_code, 0);
  auto deleted = Aml({"compute", "delete", "box"});
  EXPECT_EQ(deleted.exit_code, 0) << Describe(deleted);
  EXPECT_EQ(AmlJson({"compute", "list"})["targets"].size(), 1u);
  EXPECT_EQ(Show(id)["config"]["compute_target"], "box");  // the run keeps its target's name
}

// A sweep's children go to the sweep's compute target like any run: each
// child of a grid sweep with `compute: box` runs on the SSH host, and its
// metrics come back with its logs.
TEST_F(SshE2eTest, ASweepRunsItsChildrenOnTheSweepsSshTarget) {
  StartDaemon();
  CreateBox();
  json children = RunLrGridSweep("box", "SSH_CONNECTION");
  EXPECT_EQ(children.size(), 3u);
  for (const json& child : children) {
    const std::string id = child["run_id"];
    EXPECT_TRUE(absl::StartsWith(Show(id).value("placement", ""), "ssh:")) << Show(id).dump();
    // SSH_CONNECTION is set only in a process sshd started.
    const std::string logs = Aml({"run", "logs", id}).out;
    EXPECT_TRUE(absl::StartsWith(logs, "SSH_CONNECTION ") && !absl::StrContains(logs, " None "))
        << logs;
  }
}

// A training script written for Azure ML runs unchanged on an SSH host that
// has no amld SDK on its path: amld installs its Python beside amld-shim
// once (.amld/python-<digest>) and puts it on the run's PYTHONPATH, and what
// the script logged, tagged, uploaded and registered is the daemon's.
TEST_F(SshE2eTest, AnAzuremlSamplesScriptRunsUnchangedOnTheHost) {
  StartDaemon();
  CreateBox();
  const std::string first = RunSamplesStyleScript("box");
  ASSERT_FALSE(first.empty());
  EXPECT_EQ(Show(first)["placement"], absl::StrCat("ssh:", user_, "@", host_, ":", port_));
  // The host's login has no SDK of its own.
  EXPECT_EQ(Remote("python3 -c 'import amld' 2>&1 | grep -c ModuleNotFoundError || true"), "1\n");
  RunSamplesStyleScript("box");
  // Installed once for both runs.
  EXPECT_EQ(Remote("ls -d " + workdir_ + "/.amld/python-* | wc -l"), "1\n");
}

// A distributed run on one SSH host: its processes start under the host's
// amld-launch (installed beside amld-shim), gloo's all_reduce runs across
// them, each rank's log comes back, and a failing rank fails the run by name.
TEST_F(SshE2eTest, APyTorchRunOfTwoProcessesAllReducesOnTheHost) {
  StartDaemon();
  CreateBox();
  fs::create_directories(project_ / "dist");
  // With an argument, that rank gives up at once; the other then waits in
  // init_process_group until amld-launch stops it.
  WriteFile(project_ / "dist/all_reduce.py", R"(import os, sys
if len(sys.argv) > 1 and os.environ["RANK"] == sys.argv[1]:
    sys.exit(4)
import torch
import torch.distributed as dist
dist.init_process_group("gloo")
t = torch.tensor([float(dist.get_rank() + 1)])
dist.all_reduce(t)
print("rank", dist.get_rank(), "of", dist.get_world_size(), "local", os.environ["LOCAL_RANK"],
      "ssh", "SSH_CONNECTION" in os.environ, "sum", int(t.item()), flush=True)
dist.destroy_process_group()
)");
  auto job = [&](const std::string& name, const std::string& args) {
    WriteFile(project_ / name, absl::StrCat("experiment_name: ssh-dist\ncode: ./dist\n"
                                            "compute: azureml:box\n"
                                            "command: python3 all_reduce.py", args, "\n",
                                            "distribution:\n  type: pytorch\n"
                                            "  process_count_per_instance: 2\n"));
    json run = AmlJson({"run", "submit", "-f", (project_ / name).string(), "--wait"},
                       args.empty() ? 0 : 1);
    return run.value("id", "");
  };
  const std::string id = job("ok.yml", "");
  ASSERT_FALSE(id.empty());
  json run = Show(id);
  EXPECT_EQ(run["status"], "COMPLETED") << run.dump();
  EXPECT_TRUE(absl::StartsWith(run.value("placement", ""), "ssh:")) << run.dump();
  for (int rank : {0, 1}) {
    auto logs = Aml({"run", "logs", id, "--rank", absl::StrCat(rank)});
    EXPECT_TRUE(absl::EndsWith(
        logs.out, absl::StrCat("rank ", rank, " of 2 local ", rank, " ssh True sum 3\n")))
        << Describe(logs);
  }
  // amld-launch's record of the processes came back with the logs.
  const std::string shown = Aml({"run", "show", id}).out;
  EXPECT_TRUE(absl::StrContains(shown, "  rank 1  node ") && absl::StrContains(shown, "  exit 0"))
      << shown;

  const std::string failed = job("fail.yml", " 1");
  ASSERT_FALSE(failed.empty());
  json f = Show(failed);
  EXPECT_EQ(f["status"], "FAILED");
  EXPECT_NE(f.value("error", "").find("rank 1 exited with code 4"), std::string::npos) << f.dump();
}

// A managed environment on an SSH target is built on the host, under the
// target's workdir (<workdir>/envs/<digest>), streamed into the run's log,
// and reused by the next run; a broken one fails the run and leaves nothing.
TEST_F(SshE2eTest, AManagedEnvironmentIsBuiltOnTheHostOnceAndReused) {
  const fs::path wheels = amld::testing::MakeTempDir("amld-wheels-");
  const fs::path job = WriteEnvironmentJob(wheels, "box", "alpha", {"amldtest-alpha"});
  StartDaemon();
  CreateBox();
  json first = AmlJson({"run", "submit", "-f", job.string(), "--wait"});
  EXPECT_EQ(first["status"], "COMPLETED") << first.dump();
  const std::string digest = first["config"]["environment"]["digest"];
  ASSERT_EQ(digest.size(), 64u);
  const std::string log1 = Aml({"run", "logs", first["id"]}).out;
  EXPECT_NE(log1.find("amld: building environment " + digest.substr(0, 12) + " in " + workdir_ +
                      "/envs/.build-"),
            std::string::npos)
      << log1;
  EXPECT_NE(log1.find("Successfully installed amldtest-alpha-1.0 amldtest-beta-1.0"),
            std::string::npos)
      << log1;
  EXPECT_NE(log1.find("alpha sees beta 42\nprefix " + workdir_ + "/envs/.build-"),
            std::string::npos)
      << log1;
  // One build folder, the one <digest> links to.
  EXPECT_EQ(Remote(absl::StrCat("cd ", workdir_, "/envs && test -x ", digest,
                                "/bin/python && ls -d .build-*")),
            Remote(absl::StrCat("readlink ", workdir_, "/envs/", digest)));

  json second = AmlJson({"run", "submit", "-f", job.string(), "--wait"});
  EXPECT_EQ(second["status"], "COMPLETED") << second.dump();
  const std::string log2 = Aml({"run", "logs", second["id"]}).out;
  EXPECT_NE(log2.find("amld: using environment " + digest.substr(0, 12) +
                      " (built before on this target)"),
            std::string::npos)
      << log2;
  EXPECT_EQ(log2.find("Successfully installed"), std::string::npos) << log2;
  EXPECT_NE(log2.find("alpha sees beta 42"), std::string::npos) << log2;

  const fs::path broken = WriteEnvironmentJob(wheels, "box", "broken", {"amldtest-nope"});
  json failed = AmlJson({"run", "submit", "-f", broken.string(), "--wait"}, 1);
  EXPECT_EQ(failed["status"], "FAILED") << failed.dump();
  const std::string log3 = Aml({"run", "logs", failed["id"]}).out;
  EXPECT_NE(log3.find("No matching distribution found for amldtest-nope"), std::string::npos)
      << log3;
  EXPECT_NE(log3.find("could not be built on"), std::string::npos) << log3;
  EXPECT_NE(failed["error"].get<std::string>().find("could not build environment"),
            std::string::npos)
      << failed.dump();
  EXPECT_EQ(Remote(absl::StrCat("ls -d ", workdir_, "/envs/.build-* | wc -l")), "1\n");
  fs::remove_all(wheels);
}

}  // namespace

