// End-to-end on a Slurm target: the real `aml` and `amld` against the real
// single-node Slurm that scripts/test-env/slurm starts as the ctest fixture
// `slurm` (which sets SLURM_CONF and AMLD_TEST_SLURM_STATE). The same
// `aml run submit ... -c <target>` as on local: success with outputs and
// logs, an exit code, cancel, timeout, live logs, Slurm's pending reason,
// a job Slurm refuses, and `kill -9` of the daemon while Slurm runs are in
// flight.
//
// Waiting is always "until it happens, with a generous limit"; nothing here
// asserts on how long something took. Duration: ~40 s.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <set>
#include <nlohmann/json.hpp>

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

// "slurm:12 on amldnode" / "slurm:12 PENDING (Resources)" → "12".
std::string JobIdOf(const json& run) {
  std::string p = run.value("placement", "");
  if (!absl::StartsWith(p, "slurm:")) return "";
  p = p.substr(6);
  return p.substr(0, p.find(' '));
}

class SlurmE2eTest : public AmlDaemonTest {
 protected:
  void SetUp() override {
    const char* state = std::getenv("AMLD_TEST_SLURM_STATE");
    ASSERT_NE(state, nullptr) << "run through ctest: the slurm fixture sets AMLD_TEST_SLURM_STATE";
    SetUpWorkspace("amld-slurm-e2e-");
    shared_ = amld::testing::MakeTempDir("e2e-", fs::path(state) / "shared");
  }

  void TearDown() override {
    AmlDaemonTest::TearDown();
    fs::remove_all(shared_);
  }

  // A Slurm target on the shared dir, with extra sbatch arguments.
  void CreateTarget(const std::string& name, std::vector<std::string> sbatch_args = {}) {
    std::vector<std::string> args = {"compute", "create", name,        "--type",
                                     "slurm",   "--workdir", shared_.string()};
    for (const std::string& a : sbatch_args) args.push_back("--sbatch-arg=" + a);
    auto r = Aml(args);
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
  }

  std::string Submit(const std::string& target, const std::string& script,
                     std::vector<std::string> flags = {}) const {
    flags.insert(flags.begin(), {"-c", target});
    return AmlDaemonTest::Submit(script, flags);
  }

  fs::path shared_;
};

TEST_F(SlurmE2eTest, TheSameSubmitRunsOnSlurmAndBringsOutputsAndLogsBack) {
  StartDaemon();
  CreateTarget("cluster");
  json target = AmlJson({"compute", "show", "cluster"});
  EXPECT_EQ(target["slurm"]["workdir"], shared_.string()) << target.dump();
  WriteFile(project_ / "train.py", R"(import os, json, socket
for e in range(1, 4):
    print(f"epoch {e} loss {1.0 / e:.3f}")
os.makedirs("outputs/sub", exist_ok=True)
with open("outputs/model.json", "w") as f:
    json.dump({"run": os.environ["AMLD_RUN_ID"], "job": os.environ["SLURM_JOB_ID"]}, f)
with open("outputs/sub/weights.bin", "wb") as f:
    f.write(bytes(range(256)) * 800)
with open("logs/train.log", "w") as f:
    f.write("trained\n")
)");
  const std::string id = Submit("cluster", "train.py", {"-e", "slurm-e2e"});
  ASSERT_FALSE(id.empty());
  auto wait = Aml({"run", "wait", id, "--show-output"});
  EXPECT_EQ(wait.exit_code, 0) << Describe(wait);
  EXPECT_NE(wait.out.find("epoch 1 loss 1.000\nepoch 2 loss 0.500\nepoch 3 loss 0.333\n"),
            std::string::npos)
      << Describe(wait);

  json run = Show(id);
  EXPECT_EQ(run["status"], "COMPLETED") << run.dump();
  const std::string job = JobIdOf(run);
  ASSERT_FALSE(job.empty()) << run.dump();
  EXPECT_EQ(run["placement"], absl::StrCat("slurm:", job, " on amldnode")) << run.dump();
  EXPECT_EQ(Statuses(run), (std::vector<std::string>{"QUEUED", "PREPARING", "STARTING", "RUNNING",
                                                     "FINALIZING", "COMPLETED"}));
  auto show = Aml({"run", "show", id});
  EXPECT_NE(show.out.find("slurm:" + job), std::string::npos) << show.out;

  auto dl = Aml({"run", "download", id, "--prefix", "outputs/", "-o", (dir_ / "dl").string()});
  ASSERT_EQ(dl.exit_code, 0) << Describe(dl);
  EXPECT_EQ(ReadFile(dir_ / "dl/outputs/model.json"),
            absl::StrCat(R"({"run": ")", id, R"(", "job": ")", job, "\"}"));
  std::string weights;
  for (int i = 0; i < 800; ++i) {
    for (int b = 0; b < 256; ++b) weights.push_back(static_cast<char>(b));
  }
  EXPECT_EQ(ReadFile(dir_ / "dl/outputs/sub/weights.bin"), weights);
  auto files = Aml({"run", "files", id});
  EXPECT_NE(files.out.find("logs/train.log"), std::string::npos) << Describe(files);
  EXPECT_EQ(Aml({"run", "logs", id}).out,
            "epoch 1 loss 1.000\nepoch 2 loss 0.500\nepoch 3 loss 0.333\n");
  // What the executor did, readable like any log of the run.
  auto executor_log = Aml({"run", "logs", id, "--path", "system_logs/slurm-executor.log"});
  EXPECT_NE(executor_log.out.find("submitted as Slurm job " + job), std::string::npos)
      << Describe(executor_log);
  EXPECT_NE(executor_log.out.find("ended COMPLETED"), std::string::npos) << Describe(executor_log);
}

TEST_F(SlurmE2eTest, ExitCodeCancelAndTimeout) {
  StartDaemon({"--kill-grace-seconds", "2"});
  CreateTarget("cluster");
  WriteFile(project_ / "fail.py", "print('about to fail')\nraise SystemExit(3)\n");
  const fs::path pidfile = dir_ / "pids";
  WriteFile(project_ / "sleepy.py", R"(import os, subprocess, time
child = subprocess.Popen(["sleep", "300"])
with open(os.environ["PIDFILE"] + ".tmp", "w") as f:
    f.write(f"{os.getpid()} {child.pid}\n")
os.rename(os.environ["PIDFILE"] + ".tmp", os.environ["PIDFILE"])
print("sleeping", flush=True)
time.sleep(300)
)");
  WriteFile(project_ / "forever.py", "import time\nprint('start', flush=True)\ntime.sleep(300)\n");

  const std::string fail = Submit("cluster", "fail.py");
  const std::string sleepy = Submit("cluster", "sleepy.py", {"--env", "PIDFILE=" + pidfile.string()});
  const std::string forever = Submit("cluster", "forever.py", {"--max-duration", "2"});

  EXPECT_EQ(Aml({"run", "wait", fail}).exit_code, 1);
  json failed = Show(fail);
  EXPECT_EQ(failed["status"], "FAILED") << failed.dump();
  EXPECT_EQ(failed["exit_code"], 3) << failed.dump();
  EXPECT_NE(failed["error"].get<std::string>().find("exit code 3"), std::string::npos);
  EXPECT_EQ(Aml({"run", "logs", fail}).out, "about to fail\n");

  ASSERT_TRUE(Eventually([&] { return fs::exists(pidfile); })) << "the script never started";
  std::vector<pid_t> pids;
  for (absl::string_view p :
       absl::StrSplit(ReadFile(pidfile), absl::ByAnyChar(" \n"), absl::SkipEmpty())) {
    pids.push_back(std::stoi(std::string(p)));
  }
  ASSERT_EQ(pids.size(), 2u);
  EXPECT_EQ(Show(sleepy)["status"], "RUNNING");
  EXPECT_EQ(Aml({"run", "cancel", sleepy}).exit_code, 0);
  EXPECT_EQ(Aml({"run", "wait", sleepy}).exit_code, 1);
  json canceled = Show(sleepy);
  EXPECT_EQ(canceled["status"], "CANCELED") << canceled.dump();
  for (pid_t pid : pids) {
    EXPECT_TRUE(Eventually([pid] { return ProcessGone(pid); }))
        << "process " << pid << " of the canceled run is still alive";
  }

  EXPECT_EQ(Aml({"run", "wait", forever}).exit_code, 1);
  json timed_out = Show(forever);
  EXPECT_EQ(timed_out["status"], "CANCELED") << timed_out.dump();  // as azureml
  EXPECT_NE(timed_out["error"].get<std::string>().find("timed out after 2 s"), std::string::npos)
      << timed_out.dump();
}

TEST_F(SlurmE2eTest, LogsFollowWhileTheJobRuns) {
  StartDaemon();
  CreateTarget("cluster");
  const fs::path go = dir_ / "go";
  WriteFile(project_ / "chatty.py", R"(import os, time
print("first line", flush=True)
while not os.path.exists(os.environ["GO"]):
    time.sleep(0.05)
print("second line", flush=True)
)");
  const std::string id = Submit("cluster", "chatty.py", {"--env", "GO=" + go.string()});
  Subprocess follower(Argv({"run", "logs", "-f", id}), Options());
  ASSERT_TRUE(
      Eventually([&] { return follower.StdoutSoFar().find("first line\n") != std::string::npos; }))
      << follower.StdoutSoFar();
  EXPECT_EQ(Show(id)["status"], "RUNNING");
  WriteFile(go, "");
  auto r = follower.Wait();
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.out, "first line\nsecond line\n");
}

TEST_F(SlurmE2eTest, APendingJobShowsSlurmsReasonAndAnImpossibleOneIsRefusedAtSubmit) {
  StartDaemon();
  CreateTarget("held", {"--hold"});
  CreateTarget("huge", {"--cpus-per-task=128"});  // the partition has 2 nodes of 32
  WriteFile(project_ / "hello.py", "print('hello from slurm')\n");

  const std::string held = Submit("held", "hello.py");
  json run;
  ASSERT_TRUE(Eventually([&] {
    run = Show(held);
    return absl::StrContains(run.value("placement", ""), "PENDING (JobHeldUser)");
  })) << run.dump();
  EXPECT_EQ(run["status"], "STARTING") << run.dump();
  auto show = Aml({"run", "show", held});
  EXPECT_NE(show.out.find("PENDING (JobHeldUser)"), std::string::npos) << show.out;
  auto release = amld::testing::RunProcess({"/usr/bin/scontrol", "release", JobIdOf(run)});
  ASSERT_EQ(release.exit_code, 0) << Describe(release);
  EXPECT_EQ(Aml({"run", "wait", held}).exit_code, 0);
  EXPECT_EQ(Show(held)["status"], "COMPLETED");
  EXPECT_EQ(Aml({"run", "logs", held}).out, "hello from slurm\n");

  // A request the partition can never hold is refused at submit, with
  // Slurm's reason (sbatch --test-only), and leaves no run behind.
  auto huge = Aml({"run", "submit", "-q", "-s", project_.string(), "--interpreter", kPython, "-c",
                   "huge", "hello.py"});
  EXPECT_EQ(huge.exit_code, 1) << Describe(huge);
  EXPECT_TRUE(absl::StrContains(huge.err, "Slurm can never run this request") &&
              absl::StrContains(huge.err, "More processors requested than permitted"))
      << Describe(huge);
  EXPECT_EQ(huge.out, "");
}

// kill -9 of the daemon while one Slurm run runs and another is held: the
// running one finishes while the daemon is down; the restarted daemon
// re-adopts both, finishes the first from Slurm's record and exit.json, and
// follows the second once it is released. Nothing is submitted twice.
TEST_F(SlurmE2eTest, KillingTheDaemonLosesNoSlurmRun) {
  StartDaemon();
  CreateTarget("cluster");
  CreateTarget("held", {"--hold"});
  const fs::path go = dir_ / "go";
  WriteFile(project_ / "wait_go.py", R"(import os, time
print("waiting", flush=True)
while not os.path.exists(os.environ["GO"]):
    time.sleep(0.05)
os.makedirs("outputs", exist_ok=True)
with open("outputs/result.txt", "w") as f:
    f.write("done\n")
print("finished", flush=True)
raise SystemExit(4)
)");
  WriteFile(project_ / "hello.py", "print('hello')\n");
  const std::string running = Submit("cluster", "wait_go.py", {"--env", "GO=" + go.string()});
  const std::string held = Submit("held", "hello.py");
  ASSERT_TRUE(Eventually([&] { return Aml({"run", "logs", running}).out == "waiting\n"; }));
  json pending;
  ASSERT_TRUE(Eventually([&] {
    pending = Show(held);
    return absl::StrContains(pending.value("placement", ""), "JobHeldUser");
  })) << pending.dump();
  const std::string running_job = JobIdOf(Show(running));
  const std::string held_job = JobIdOf(pending);

  const pid_t pid = DaemonPid();
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  ASSERT_TRUE(Eventually([&] { return ProcessGone(pid); }));
  WriteFile(go, "");  // the job finishes while no daemon watches

  StartDaemon();
  EXPECT_EQ(Aml({"run", "wait", running}).exit_code, 1);
  json done = Show(running);
  EXPECT_EQ(done["status"], "FAILED") << done.dump();
  EXPECT_EQ(done["exit_code"], 4) << done.dump();
  EXPECT_EQ(JobIdOf(done), running_job);
  EXPECT_EQ(Aml({"run", "logs", running}).out, "waiting\nfinished\n");
  auto dl = Aml({"run", "download", running, "outputs/result.txt", "-o",
                 (dir_ / "result.txt").string()});
  EXPECT_EQ(dl.exit_code, 0) << Describe(dl);
  EXPECT_EQ(ReadFile(dir_ / "result.txt"), "done\n");

  json still = Show(held);
  EXPECT_EQ(still["status"], "STARTING") << still.dump();
  EXPECT_EQ(JobIdOf(still), held_job);
  auto release = amld::testing::RunProcess({"/usr/bin/scontrol", "release", held_job});
  ASSERT_EQ(release.exit_code, 0) << Describe(release);
  EXPECT_EQ(Aml({"run", "wait", held}).exit_code, 0);
  EXPECT_EQ(Show(held)["status"], "COMPLETED");
  // Each run was submitted to Slurm exactly once: one job-completion record
  // each.
  const std::string jobcomp =
      ReadFile(fs::path(std::getenv("AMLD_TEST_SLURM_STATE")) / "jobcomp.txt");
  for (const std::string& id : {running, held}) {
    int records = 0;
    for (size_t at = 0; (at = jobcomp.find(" Name=" + id + " ", at)) != std::string::npos; ++at) {
      ++records;
    }
    EXPECT_EQ(records, 1) << id << "\n" << jobcomp;
  }
}

// A sweep's children go to the sweep's compute target like any run: each
// child of a grid sweep with `compute: cluster` is its own Slurm job, and
// their metrics come back from the shared dir.
TEST_F(SlurmE2eTest, ASweepRunsItsChildrenOnTheSweepsSlurmTarget) {
  StartDaemon();
  CreateTarget("cluster");
  json children = RunLrGridSweep("cluster", "SLURM_JOB_ID");
  std::set<std::string> jobs;
  for (const json& child : children) {
    const std::string id = child["run_id"];
    const std::string job = JobIdOf(Show(id));
    ASSERT_FALSE(job.empty()) << Show(id).dump();
    jobs.insert(job);
    EXPECT_TRUE(absl::StartsWith(Aml({"run", "logs", id}).out, "SLURM_JOB_ID " + job + " lr "));
  }
  EXPECT_EQ(jobs.size(), 3u);  // one Slurm job per child
}

// A training script written for Azure ML runs unchanged as a Slurm job:
// amld copies its Python into the shared work dir once (.amld/python-
// <digest>), the job's PYTHONPATH starts with it, and what the script
// logged, tagged, uploaded (copied back before the line naming it) and
// registered is the daemon's.
TEST_F(SlurmE2eTest, AnAzuremlSamplesScriptRunsUnchangedAsASlurmJob) {
  StartDaemon();
  CreateTarget("cluster");
  const std::string first = RunSamplesStyleScript("cluster");
  ASSERT_FALSE(first.empty());
  EXPECT_FALSE(JobIdOf(Show(first)).empty()) << Show(first).dump();
  RunSamplesStyleScript("cluster");
  int copies = 0;
  for (const auto& e : fs::directory_iterator(shared_ / ".amld")) {
    if (absl::StartsWith(e.path().filename().string(), "python-")) ++copies;
  }
  EXPECT_EQ(copies, 1);  // installed once for both jobs
}

// A managed environment on a Slurm target is built in the shared workdir
// (<workdir>/envs/<digest>) by whichever job gets there first, under a lock
// on the shared filesystem: two jobs of a new spec build it once, and a
// later job uses it as it is.
TEST_F(SlurmE2eTest, AManagedEnvironmentIsBuiltOnceInTheSharedWorkdir) {
  const fs::path wheels = amld::testing::MakeTempDir("amld-wheels-");
  const fs::path job = WriteEnvironmentJob(wheels, "cluster", "alpha", {"amldtest-alpha"});
  StartDaemon();
  CreateTarget("cluster");
  json a = AmlJson({"run", "submit", "-f", job.string()});
  json b = AmlJson({"run", "submit", "-f", job.string()});
  std::vector<std::string> logs;
  for (const json& run : {a, b}) {
    Aml({"run", "wait", run["id"]});
    json done = Show(run["id"]);
    EXPECT_EQ(done["status"], "COMPLETED") << done.dump();
    logs.push_back(Aml({"run", "logs", run["id"]}).out);
    EXPECT_NE(logs.back().find("alpha sees beta 42\nprefix " + shared_.string() + "/envs/.build-"),
              std::string::npos)
        << logs.back();
  }
  const std::string digest = Show(a["id"])["config"]["environment"]["digest"];
  int built = 0;
  for (const std::string& log : logs) {
    if (log.find("Successfully installed amldtest-alpha-1.0 amldtest-beta-1.0") !=
        std::string::npos) {
      ++built;
      EXPECT_NE(log.find("amld: building environment " + digest.substr(0, 12)), std::string::npos)
          << log;
    } else {
      EXPECT_TRUE(log.find("is built (by another run); using it") != std::string::npos ||
                  log.find("(built before on this target)") != std::string::npos)
          << log;
    }
  }
  EXPECT_EQ(built, 1) << logs[0] << "\n---\n" << logs[1];
  EXPECT_TRUE(fs::exists(shared_ / "envs" / digest / "bin" / "python"));

  json c = AmlJson({"run", "submit", "-f", job.string(), "--wait"});
  EXPECT_EQ(c["status"], "COMPLETED") << c.dump();
  const std::string log = Aml({"run", "logs", c["id"]}).out;
  EXPECT_NE(log.find("amld: using environment " + digest.substr(0, 12) +
                     " (built before on this target)"),
            std::string::npos)
      << log;
  int folders = 0;
  for (const auto& e : fs::directory_iterator(shared_ / "envs")) {
    folders += e.path().filename().string().rfind(".build-", 0) == 0;
  }
  EXPECT_EQ(folders, 1);
  fs::remove_all(wheels);
}

}  // namespace
