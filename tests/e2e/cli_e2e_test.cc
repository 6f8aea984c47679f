// The CLI for daily use (issue 18), end to end: the real `aml` against a
// real `amld` per test. Downloads that never write through links or devices,
// ids people can type, failures that explain themselves, output that fits.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "tests/e2e/aml_e2e_fixture.h"
#include "tests/testing/subprocess.h"

namespace {

using namespace amld::e2e;  // NOLINT: the shared e2e fixture and helpers
using amld::testing::WriteFile;

class CliE2eTest : public AmlDaemonTest {
 protected:
  void SetUp() override { SetUpWorkspace("amld-cli-e2e-"); }

  // Submits `script` and waits for it; returns the run id.
  std::string SubmitAndWait(const std::string& script, std::vector<std::string> flags = {}) {
    const std::string id = Submit(script, std::move(flags));
    auto r = Aml({"run", "wait", id});
    last_wait_ = r;
    return id;
  }

  ProcessResult last_wait_;
};

// A 255-byte file name (NAME_MAX): its download's temp name must fit too.
const std::string kLongName = std::string(251, 'n') + ".bin";

TEST_F(CliE2eTest, DownloadsReplaceOnlyRegularFilesAndStreamToStdout) {
  StartDaemon();
  WriteFile(project_ / "train.py", absl::StrCat(R"(import os
os.makedirs("outputs", exist_ok=True)
with open("outputs/model.json", "w") as f:
    f.write('{"w": [1, 2]}')
with open("outputs/)",
                                                kLongName, R"(", "w") as f:
    f.write("long")
print("trained")
)"));
  const std::string id = SubmitAndWait("train.py");
  ASSERT_EQ(last_wait_.exit_code, 0) << Describe(last_wait_);

  // -o - streams the bytes to stdout, and writes no file named "-".
  auto r = Aml({"run", "download", id, "outputs/model.json", "-o", "-"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.out, R"({"w": [1, 2]})");
  EXPECT_FALSE(fs::exists(dir_ / "-"));

  // -o /dev/stdout (as root, where /dev is writable) leaves the link alone.
  struct stat before;
  ASSERT_EQ(::lstat("/dev/stdout", &before), 0);
  ASSERT_TRUE(S_ISLNK(before.st_mode)) << "this test expects /dev/stdout to be a symlink";
  r = Aml({"run", "download", id, "outputs/model.json", "-o", "/dev/stdout"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_NE(r.err.find("symbolic link"), std::string::npos) << Describe(r);
  EXPECT_NE(r.err.find("-o -"), std::string::npos) << Describe(r);
  struct stat after;
  ASSERT_EQ(::lstat("/dev/stdout", &after), 0);
  EXPECT_TRUE(S_ISLNK(after.st_mode)) << "/dev/stdout was replaced";
  EXPECT_EQ(after.st_ino, before.st_ino);

  // A link of the user's: refused, then replaced itself (not its target) with --force.
  WriteFile(dir_ / "target.json", "keep");
  fs::create_symlink(dir_ / "target.json", dir_ / "link.json");
  r = Aml({"run", "download", id, "outputs/model.json", "-o", (dir_ / "link.json").string()});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_TRUE(fs::is_symlink(dir_ / "link.json"));
  r = Aml({"run", "download", id, "outputs/model.json", "-o", (dir_ / "link.json").string(),
           "--force"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_FALSE(fs::is_symlink(dir_ / "link.json"));
  EXPECT_EQ(ReadFile(dir_ / "link.json"), R"({"w": [1, 2]})");
  EXPECT_EQ(ReadFile(dir_ / "target.json"), "keep");

  // An existing regular file is replaced.
  WriteFile(dir_ / "model.json", "old");
  r = Aml({"run", "download", id, "outputs/model.json", "-o", (dir_ / "model.json").string()});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(ReadFile(dir_ / "model.json"), R"({"w": [1, 2]})");

  // --all: every stored file of the run, the 255-byte name included, and no
  // temp file left behind.
  r = Aml({"run", "download", id, "--all", "-o", (dir_ / "all").string()});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(ReadFile(dir_ / "all" / "outputs" / "model.json"), R"({"w": [1, 2]})");
  EXPECT_EQ(ReadFile(dir_ / "all" / "outputs" / kLongName), "long");
  EXPECT_EQ(ReadFile(dir_ / "all" / "user_logs" / "std_log.txt"), "trained\n");
  for (const auto& e : fs::recursive_directory_iterator(dir_ / "all")) {
    EXPECT_NE(e.path().filename().string().front(), '.') << "temp file left: " << e.path();
  }
  r = Aml({"run", "download", id, "outputs/" + kLongName, "-o", (dir_ / "one").string() + "/"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(ReadFile(dir_ / "one" / kLongName), "long");

  r = Aml({"run", "download", id, "--all", "-o", "-"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
}

}  // namespace

namespace {

TEST_F(CliE2eTest, IdsPeopleCanType) {
  StartDaemon();
  WriteFile(project_ / "hello.py", "print('hello')\n");
  const std::string a1 = SubmitAndWait("hello.py", {"-e", "alpha"});
  const std::string a2 = SubmitAndWait("hello.py", {"-e", "alpha"});
  const std::string b1 = SubmitAndWait("hello.py", {"-e", "beta"});

  // A unique suffix (the 8 hex digits) and a unique prefix.
  EXPECT_EQ(Show(a1.substr(a1.size() - 8))["id"], a1);
  EXPECT_EQ(Show("beta")["id"], b1);
  // `last`: the caller's newest run; -e EXP last: of that experiment.
  EXPECT_EQ(Show("last")["id"], b1);
  EXPECT_EQ(AmlJson({"run", "show", "-e", "alpha", "last"})["id"], a2);
  auto r = Aml({"run", "logs", "last"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.out, "hello\n");
  r = Aml({"run", "download", a2.substr(a2.size() - 6), "user_logs/std_log.txt", "-o", "-"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.out, "hello\n");
  r = Aml({"run", "wait", "-e", "beta", "last"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.err.find(b1), std::string::npos) << "the full id is reported: " << Describe(r);

  // An ambiguous prefix lists the candidates, newest first.
  r = Aml({"run", "show", "alpha_"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_NE(r.err.find("matches more than one run: " + a2 + ", " + a1), std::string::npos)
      << Describe(r);
  json err = AmlJson({"run", "show", "alpha_"}, 1);
  EXPECT_EQ(err["error"]["code"], "INVALID_ARGUMENT");
  // Too short to be a part of an id, and no match at all.
  r = Aml({"run", "show", "al"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_NE(r.err.find("at least 3 characters"), std::string::npos) << Describe(r);
  EXPECT_EQ(AmlJson({"run", "show", "al"}, 1)["error"]["code"], "NOT_FOUND");
  err = AmlJson({"run", "show", "gamma_nothing"}, 1);
  EXPECT_EQ(err["error"]["code"], "NOT_FOUND");
  r = Aml({"run", "show", "-e", "gamma", "last"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_NE(r.err.find("no runs in experiment gamma"), std::string::npos) << Describe(r);
}

}  // namespace

namespace {

TEST_F(CliE2eTest, FailuresExplainThemselves) {
  StartDaemon();
  std::string script = "import sys\n";
  for (int i = 1; i <= 15; ++i) script += absl::StrCat("print('epoch ", i, "')\n");
  script += "sys.stdout.flush()\nraise SystemExit('diverged: loss is nan')\n";
  WriteFile(project_ / "fail.py", script);
  const std::string id = SubmitAndWait("fail.py", {"-e", "failing"});

  // wait: exit 1 with the final status line.
  EXPECT_EQ(last_wait_.exit_code, 1) << Describe(last_wait_);
  EXPECT_NE(last_wait_.err.find("run " + id + " FAILED"), std::string::npos)
      << Describe(last_wait_);
  // logs -f: the log, then the final status line, exit 1.
  auto r = Aml({"run", "logs", "-f", id});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_NE(r.out.find("epoch 15\ndiverged: loss is nan\n"), std::string::npos) << Describe(r);
  EXPECT_NE(r.err.find("run " + id + " FAILED"), std::string::npos) << Describe(r);
  // Without -f it printed what was asked: exit 0.
  EXPECT_EQ(Aml({"run", "logs", id}).exit_code, 0);

  // --tail N: the last N lines.
  r = Aml({"run", "logs", id, "--tail", "3"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.out, "epoch 14\nepoch 15\ndiverged: loss is nan\n");
  r = Aml({"run", "logs", id, "-n", "2", "-f"});
  EXPECT_EQ(r.out, "epoch 15\ndiverged: loss is nan\n") << Describe(r);
  EXPECT_EQ(r.exit_code, 1) << Describe(r);

  // show: the last lines of the log and where the rest is.
  r = Aml({"run", "show", id});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.out.find("last lines of user_logs/std_log.txt:\n  epoch 7\n"), std::string::npos)
      << Describe(r);
  EXPECT_NE(r.out.find("  diverged: loss is nan\n"), std::string::npos) << Describe(r);
  EXPECT_EQ(r.out.find("  epoch 6\n"), std::string::npos) << "10 lines only: " << r.out;
  EXPECT_NE(r.out.find("aml run logs " + id), std::string::npos) << Describe(r);

  // files --all: system_logs/ too, with the supervisor's log in human time.
  r = Aml({"run", "files", id});
  EXPECT_EQ(r.out.find("system_logs/"), std::string::npos) << Describe(r);
  r = Aml({"run", "files", id, "--all"});
  EXPECT_NE(r.out.find("system_logs/amld-shim.log"), std::string::npos) << Describe(r);
  r = Aml({"run", "download", id, "system_logs/amld-shim.log", "-o", "-"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  // "2026-12-03 13:40:01.123 +0000 amld-shim[42]: process 43 ended: exit_code=1 ..."
  EXPECT_TRUE(std::isdigit(r.out[0]) && r.out[4] == '-' && r.out[10] == ' ' && r.out[13] == ':')
      << r.out;
  EXPECT_NE(r.out.find("exit_code=1"), std::string::npos) << r.out;
}

}  // namespace

namespace {

TEST_F(CliE2eTest, OutputThatFits) {
  StartDaemon();
  WriteFile(project_ / "hello.py", "print('hello')\n");
  WriteFile(project_ / "sleep.py", "import time\nprint('up', flush=True)\ntime.sleep(300)\n");

  // Durations in every form, as numbers in JSON.
  const std::string id = Submit("sleep.py", {"--max-duration", "1h30m"});
  json run = Show(id);
  EXPECT_EQ(run["config"]["max_run_duration_seconds"], 5400) << run.dump();
  EXPECT_EQ(run["config"]["compute_target"], "local");
  // No exit code before the run ends.
  EXPECT_TRUE(run["exit_code"].is_null()) << run.dump();
  Aml({"run", "cancel", id});
  EXPECT_EQ(Aml({"run", "wait", id}).exit_code, 1);
  EXPECT_EQ(Show(Submit("hello.py", {"--max-duration", "1:30:00"}))["config"]
                ["max_run_duration_seconds"],
            5400);

  // Bad values say what is accepted, without a 300-digit range.
  auto r = Aml({"run", "submit", "--max-duration", "1h30", "hello.py"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_NE(r.err.find("1h30m"), std::string::npos) << Describe(r);
  EXPECT_LT(r.err.size(), 300u) << Describe(r);
  r = Aml({"run", "list", "--limit", "0"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_NE(r.err.find("must be at least 1"), std::string::npos) << Describe(r);
  EXPECT_LT(r.err.size(), 200u) << Describe(r);

  // Typos get the nearest command or flag; a script's flag gets `--`.
  r = Aml({"run", "lst"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_NE(r.err.find("did you mean `aml run list`?"), std::string::npos) << Describe(r);
  r = Aml({"run", "list", "--limt", "3"});
  EXPECT_NE(r.err.find("did you mean --limit?"), std::string::npos) << Describe(r);
  r = Aml({"run", "submit", "train.py", "--lr", "0.1"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_NE(r.err.find("after --: aml run submit [options] SCRIPT -- --lr 0.1"), std::string::npos)
      << Describe(r);

  // An empty result says so, with the filter.
  r = Aml({"run", "list", "-e", "nothing", "--status", "failed"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.err.find("no runs match experiment nothing, status FAILED"), std::string::npos)
      << Describe(r);
}

}  // namespace

namespace {

TEST_F(CliE2eTest, CancelManyRunsByIdOrFilter) {
  StartDaemon();
  WriteFile(project_ / "sleep.py", "import time\ntime.sleep(300)\n");
  const std::string a = Submit("sleep.py", {"-e", "many"});
  const std::string b = Submit("sleep.py", {"-e", "many"});
  const std::string c = Submit("sleep.py", {"-e", "other"});
  const std::string d = Submit("sleep.py", {"-e", "other"});
  // A typo among the ids cancels nothing.
  auto r = Aml({"run", "cancel", a, "no_such_run_at_all"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_NE(Show(a)["status"], "CANCELED");
  // By id (a suffix among them), then by experiment.
  r = Aml({"run", "cancel", c.substr(c.size() - 8), d});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  r = Aml({"run", "cancel", "-e", "many"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  for (const auto& id : {a, b, c, d}) {
    EXPECT_EQ(Aml({"run", "wait", id}).exit_code, 1);
    EXPECT_EQ(Show(id)["status"], "CANCELED") << id;
  }
  EXPECT_EQ(Aml({"run", "cancel"}).exit_code, 2);
}

}  // namespace

namespace {

// Paths of `aml run files RUN` (JSON).
std::vector<std::string> FilePaths(const json& listing) {
  std::vector<std::string> paths;
  for (const auto& f : listing["files"]) paths.push_back(f["path"].get<std::string>());
  return paths;
}

TEST_F(CliE2eTest, ASourceFoldersOutputsFromALocalTryDoNotShip) {
  StartDaemon();
  WriteFile(project_ / "train.py", R"(import os
print("saw stale:", os.path.exists("outputs/model.json"), os.path.exists("logs/old.txt"))
os.makedirs("outputs", exist_ok=True)
open("outputs/new.json", "w").write("{}")
)");
  WriteFile(project_ / "outputs" / "model.json", "stale model");
  WriteFile(project_ / "logs" / "old.txt", "stale log");
  auto r = Aml({"run", "submit", "-q", "-s", project_.string(), "--interpreter", kPython,
                "train.py"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.err.find("outputs/ left out by default"), std::string::npos) << Describe(r);
  EXPECT_NE(r.err.find("logs/ left out by default"), std::string::npos) << Describe(r);
  std::string id = r.out.substr(0, r.out.find('\n'));
  ASSERT_EQ(Aml({"run", "wait", id}).exit_code, 0);
  EXPECT_EQ(Aml({"run", "logs", id}).out, "saw stale: False False\n");
  EXPECT_EQ(FilePaths(AmlJson({"run", "files", id})),
            (std::vector<std::string>{"outputs/new.json", "user_logs/std_log.txt"}));

  // explain says so, and which line brings it back.
  r = Aml({"snapshot", "explain", project_.string()});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.out.find("/outputs/  (by default; \"!/outputs/\" in .amlignore keeps it)"),
            std::string::npos)
      << Describe(r);
  json explained = AmlJson({"snapshot", "explain", project_.string()});
  ASSERT_EQ(explained["ignored"].size(), 2u) << explained.dump(2);
  EXPECT_EQ(explained["ignored"][1]["path"], "outputs");
  EXPECT_EQ(explained["ignored"][1]["source"], "(default)");

  // A watched folder leaves them out the same way.
  ASSERT_EQ(Aml({"snapshot", "watch", project_.string()}).exit_code, 0);
  id = Submit("train.py");
  ASSERT_EQ(Aml({"run", "wait", id}).exit_code, 0);
  EXPECT_EQ(Aml({"run", "logs", id}).out, "saw stale: False False\n");

  // The setting: a "!" rule in the root's .amlignore sends outputs/.
  WriteFile(project_ / ".amlignore", "!/outputs/\n");
  r = Aml({"run", "submit", "-q", "-s", project_.string(), "--interpreter", kPython,
           "train.py"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.err.find("outputs/ left out"), std::string::npos) << Describe(r);
  id = r.out.substr(0, r.out.find('\n'));
  ASSERT_EQ(Aml({"run", "wait", id}).exit_code, 0);
  EXPECT_EQ(Aml({"run", "logs", id}).out, "saw stale: True False\n");
}

TEST_F(CliE2eTest, RunsSeeTheSubmittersEnvironmentAndPython) {
  StartDaemon();
  const fs::path venv = dir_ / "venv";
  auto made = amld::testing::RunProcess({kPython, "-m", "venv", "--without-pip", venv.string()},
                                        Options());
  ASSERT_EQ(made.exit_code, 0) << Describe(made);
  WriteFile(project_ / "env.py", R"(import os, sys
print("prefix", sys.prefix)
print("VIRTUAL_ENV", os.environ.get("VIRTUAL_ENV"))
print("SETTING", os.environ.get("MY_SETTING"))
print("TOKEN", os.environ.get("MY_API_TOKEN"))
)");
  // As from a shell where the venv is activated.
  ProcessOptions activated = Options();
  activated.env.push_back({"VIRTUAL_ENV", venv.string()});
  activated.env.push_back(
      {"PATH", absl::StrCat((venv / "bin").string(), ":", std::getenv("PATH"))});
  activated.env.push_back({"MY_SETTING", "42"});
  activated.env.push_back({"MY_API_TOKEN", "hunter2"});
  auto submit = [&](std::vector<std::string> flags) {
    std::vector<std::string> args = {"run", "submit", "-q", "-s", project_.string()};
    args.insert(args.end(), flags.begin(), flags.end());
    args.push_back("env.py");
    auto r = amld::testing::RunProcess(Argv(args), activated);
    EXPECT_EQ(r.exit_code, 0) << Describe(r);
    const std::string id = r.out.substr(0, r.out.find('\n'));
    EXPECT_EQ(Aml({"run", "wait", id}).exit_code, 0);
    return id;
  };

  std::string id = submit({});
  EXPECT_EQ(Aml({"run", "logs", id}).out,
            absl::StrCat("prefix ", venv.string(), "\nVIRTUAL_ENV ", venv.string(),
                         "\nSETTING 42\nTOKEN None\n"));
  json run = Show(id);
  const json& sub = run["config"]["submitter_environment"];
  EXPECT_EQ(sub["python"], (venv / "bin" / "python3").string());
  EXPECT_NE(sub["left_out"].dump().find("MY_API_TOKEN"), std::string::npos) << sub.dump();
  EXPECT_FALSE(sub["variables"].contains("MY_API_TOKEN"));
  auto shown = Aml({"run", "show", id});
  EXPECT_NE(shown.out.find((venv / "bin" / "python3").string() +
                           " (python3 on the submitter's PATH)"),
            std::string::npos)
      << Describe(shown);
  EXPECT_NE(shown.out.find("left out: "), std::string::npos) << Describe(shown);

  // Asked for by name, the secret-looking variable is sent.
  id = submit({"--pass-env", "MY_API_TOKEN"});
  EXPECT_NE(Aml({"run", "logs", id}).out.find("TOKEN hunter2"), std::string::npos);

  // --daemon-env: the daemon's environment (no venv) and python3 on its PATH.
  id = submit({"--daemon-env"});
  EXPECT_EQ(Aml({"run", "logs", id}).out.find(venv.string()), std::string::npos)
      << Aml({"run", "logs", id}).out;
  EXPECT_NE(Aml({"run", "show", id}).out.find("python3 on the daemon's PATH"), std::string::npos);
}

}  // namespace

namespace {

// fit.py LR [diverge]: logs loss (3 - step) / LR for steps 0..2; with a
// second argument it fails after step 1.
constexpr const char* kFitScript = R"(import json, os, sys, time
lr = float(sys.argv[1])
with open(os.environ["AMLD_METRICS_FILE"], "a") as f:
    for step in range(3):
        f.write(json.dumps({"name": "loss", "value": (3 - step) / lr, "step": step,
                            "time": time.time()}) + "\n")
        f.flush()
        if len(sys.argv) > 2 and step == 1:
            sys.exit("diverged")
)";

TEST_F(CliE2eTest, ComparingRunsByTagsAndMetrics) {
  StartDaemon();
  // The loss it reaches is 1/lr: the best run has the largest lr.
  WriteFile(project_ / "fit.py", kFitScript);
  std::map<std::string, std::string> ids;
  for (const char* lr : {"1", "4", "2"}) {
    ids[lr] = Submit("fit.py", {"-e", "cmp", "--tag", absl::StrCat("lr=", lr), "--tag",
                                "opt=sgd"},
                     {lr});
    ASSERT_EQ(Aml({"run", "wait", ids[lr]}).exit_code, 0);
  }
  const std::string untagged = SubmitAndWait("fit.py", {"-e", "cmp"});  // no argument: FAILED

  // --sort metric:loss with the metric and tag columns; runs without the
  // metric go last.
  json list = AmlJson({"run", "list", "-e", "cmp", "--sort", "metric:loss", "--columns",
                       "+tag:lr"});
  ASSERT_EQ(list["runs"].size(), 4u) << list.dump(2);
  EXPECT_EQ(list["runs"][0]["id"], ids["4"]);
  EXPECT_EQ(list["runs"][1]["id"], ids["2"]);
  EXPECT_EQ(list["runs"][2]["id"], ids["1"]);
  EXPECT_EQ(list["runs"][3]["id"], untagged);
  EXPECT_EQ(list["runs"][0]["last_metrics"]["loss"], 0.25);
  auto r = Aml({"run", "list", "-e", "cmp", "--sort", "-metric:loss", "--columns",
                "id,tag:lr,metric:loss", "--tag", "opt=sgd"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.out.substr(0, r.out.find('\n')).find("RUN"), 0u) << r.out;
  EXPECT_NE(r.out.find("LR"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("LOSS"), std::string::npos) << r.out;
  EXPECT_LT(r.out.find(ids["1"]), r.out.find(ids["2"])) << r.out;
  EXPECT_LT(r.out.find(ids["2"]), r.out.find(ids["4"])) << r.out;
  EXPECT_EQ(r.out.find(untagged), std::string::npos) << "--tag opt=sgd leaves it out";
  // --tag KEY=VALUE filters; no match says which filter.
  EXPECT_EQ(AmlJson({"run", "list", "--tag", "lr=2"})["runs"].size(), 1u);
  r = Aml({"run", "list", "--tag", "lr=9"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.err.find("no runs match tag lr=9"), std::string::npos) << Describe(r);
  r = Aml({"run", "list", "--columns", "id,lsos"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_NE(r.err.find("unknown column"), std::string::npos) << Describe(r);

  // `aml run metrics` over several runs: the series side by side.
  r = Aml({"run", "metrics", ids["1"], ids["4"], "--name", "loss"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.out.find(ids["1"]), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("0.75"), std::string::npos) << r.out;  // 3/4 at step 0
  json both = AmlJson({"run", "metrics", ids["1"], ids["2"]});
  ASSERT_EQ(both["runs"].size(), 2u);
  EXPECT_EQ(both["runs"][1]["metrics"][0]["last"], 0.5);

  // restart: a new run of the same config and snapshot, whatever the folder
  // holds now.
  WriteFile(project_ / "fit.py", "raise SystemExit('edited since')\n");
  r = Aml({"run", "restart", "-q", ids["2"]});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  const std::string again = r.out.substr(0, r.out.find('\n'));
  EXPECT_NE(again, ids["2"]);
  EXPECT_EQ(Aml({"run", "wait", again}).exit_code, 0);
  json restarted = Show(again);
  json original = Show(ids["2"]);
  EXPECT_EQ(restarted["config"]["arguments"], original["config"]["arguments"]);
  EXPECT_EQ(restarted["config"]["snapshot_root"], original["config"]["snapshot_root"]);
  EXPECT_EQ(restarted["config"]["tags"], original["config"]["tags"]);
  EXPECT_EQ(AmlJson({"run", "metrics", again})["metrics"][0]["last"], 0.5);
  EXPECT_EQ(Aml({"run", "restart", "no_such_run_anywhere"}).exit_code, 1);

  // delete: the records and folders go; a typo among the ids deletes nothing.
  r = Aml({"run", "delete", again, "no_such_run_anywhere"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_EQ(Show(again)["id"], again);
  ASSERT_TRUE(fs::exists(data_ / "runs" / again));
  r = Aml({"run", "delete", again, untagged});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.out.find("deleted run " + again), std::string::npos) << Describe(r);
  EXPECT_EQ(AmlJson({"run", "show", again}, 1)["error"]["code"], "NOT_FOUND");
  EXPECT_FALSE(fs::exists(data_ / "runs" / again));
  EXPECT_EQ(AmlJson({"run", "list", "-e", "cmp"})["runs"].size(), 3u);
  // A run that has not ended is refused.
  WriteFile(project_ / "sleep.py", "import time\ntime.sleep(300)\n");
  const std::string sleeping = Submit("sleep.py", {"-e", "cmp"});
  r = Aml({"run", "delete", sleeping});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_NE(r.err.find("cancel it first"), std::string::npos) << Describe(r);
  ASSERT_EQ(Aml({"run", "cancel", sleeping}).exit_code, 0);
  EXPECT_EQ(Aml({"run", "wait", sleeping}).exit_code, 1);
  EXPECT_EQ(Aml({"run", "delete", sleeping}).exit_code, 0);
}

}  // namespace

namespace {

TEST_F(CliE2eTest, DaemonStartTakesTheGpusToHandOut) {
  StartDaemon({"--gpus", "0,1"});
  WriteFile(project_ / "gpus.py", "import os\nprint(os.environ['CUDA_VISIBLE_DEVICES'])\n");
  const std::string id = SubmitAndWait("gpus.py", {"--gpus", "2"});
  ASSERT_EQ(last_wait_.exit_code, 0) << Describe(last_wait_);
  EXPECT_EQ(Aml({"run", "logs", id}).out, "0,1\n");
  auto r = Aml({"run", "submit", "-s", project_.string(), "--gpus", "3", "gpus.py"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
}

}  // namespace

namespace {

TEST_F(CliE2eTest, LogsAsJsonAndCompletionOfRunIds) {
  StartDaemon();
  WriteFile(project_ / "hello.py", "print('hello')\nprint('caf\\xe9')\n");
  const std::string id = SubmitAndWait("hello.py", {"-e", "completion"});
  ASSERT_EQ(last_wait_.exit_code, 0) << Describe(last_wait_);
  json logs = AmlJson({"run", "logs", id});
  EXPECT_EQ(logs["run_id"], id);
  EXPECT_EQ(logs["text"], "hello\ncafé\n");
  EXPECT_EQ(logs["start_offset"], 0);
  EXPECT_EQ(logs["end_offset"], 12);
  logs = AmlJson({"run", "logs", id, "--tail", "1"});
  EXPECT_EQ(logs["text"], "café\n");
  EXPECT_EQ(logs["start_offset"], 6);
  // -f: a JSON line per piece, then the run.
  auto r = Aml({"--output", "json", "run", "logs", "-f", id});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  const std::string last_line = r.out.substr(r.out.rfind('\n', r.out.size() - 2) + 1);
  EXPECT_EQ(json::parse(last_line)["run"]["status"], "COMPLETED") << r.out;

  // The bash completion script, loaded by bash, completes commands and a
  // run id from the daemon.
  auto script = Aml({"completion", "bash"});
  ASSERT_EQ(script.exit_code, 0) << Describe(script);
  WriteFile(dir_ / "aml.bash", script.out);
  auto complete = [&](const std::string& words, int cword) {
    ProcessOptions o = Options();
    o.env.push_back({"PATH", absl::StrCat(kBin, ":", std::getenv("PATH"))});
    o.env.push_back({"AMLD_SOCKET", socket_.string()});
    o.unset_env.erase(std::remove(o.unset_env.begin(), o.unset_env.end(), "AMLD_SOCKET"),
                      o.unset_env.end());
    auto done = amld::testing::RunProcess(
        {"/bin/bash", "-c",
         absl::StrCat("source ", (dir_ / "aml.bash").string(), "; COMP_WORDS=(", words,
                      "); COMP_CWORD=", cword, "; _aml; printf '%s\\n' \"${COMPREPLY[@]}\"")},
        o);
    EXPECT_EQ(done.exit_code, 0) << Describe(done);
    return done.out;
  };
  EXPECT_EQ(complete("aml ru", 1), "run\n");
  EXPECT_EQ(complete("aml run sh", 2), "show\n");
  EXPECT_EQ(complete("aml run show " + id.substr(0, 12), 3), id + "\n");
  EXPECT_EQ(complete("aml run list --sta", 3), "--status\n");
  EXPECT_EQ(complete("aml run list --status COMP", 4), "COMPLETED\n");
  EXPECT_EQ(complete("aml run submit -e compl", 4), "completion\n");
  // The man page comes from the same definitions.
  r = Aml({"man"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.out.find(".SS aml run restart"), std::string::npos);
  EXPECT_NE(r.out.find("\\-\\-daemon\\-env"), std::string::npos);
}

}  // namespace

namespace {

TEST_F(CliE2eTest, CompareRunsSideBySide) {
  StartDaemon();
  // loss falls to 1/lr by step 2; lr 4 "diverges" after step 1.
  WriteFile(project_ / "fit.py", kFitScript);
  const std::string one = Submit("fit.py", {"-e", "cmp", "--tag", "lr=1"}, {"1"});
  ASSERT_EQ(Aml({"run", "wait", one}).exit_code, 0);
  const std::string four = Submit("fit.py", {"-e", "cmp", "--tag", "lr=4"}, {"4", "diverge"});
  ASSERT_EQ(Aml({"run", "wait", four}).exit_code, 1);

  // By suffix and `last`; only the fields that differ, then the metrics.
  auto r = Aml({"run", "compare", one.substr(one.size() - 8), "last"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.out.substr(0, r.out.find('\n')).find("RUN"), 0u) << r.out;
  EXPECT_NE(r.out.find(one), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(four), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("FAILED (exit code 1)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\narguments "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\ntag lr "), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("\nscript "), std::string::npos) << "the same in both: " << r.out;
  EXPECT_NE(r.err.find("the same in every run: experiment, script"), std::string::npos)
      << Describe(r);
  EXPECT_NE(r.out.find("\nloss last "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("1 (step 2)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("0.5 (step 1)"), std::string::npos) << r.out;
  // --all: every field.
  r = Aml({"run", "compare", one, four, "--all"});
  EXPECT_NE(r.out.find("\nscript "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\ninterpreter "), std::string::npos) << r.out;

  json j = AmlJson({"run", "compare", one, four});
  EXPECT_EQ(j["runs"], json::array({one, four})) << j.dump(2);
  bool saw_arguments = false;
  for (const json& f : j["fields"]) {
    if (f["field"] == "arguments") {
      saw_arguments = true;
      EXPECT_EQ(f["values"], json::array({"1", "4 diverge"}));
      EXPECT_TRUE(f["differs"].get<bool>());
    }
    if (f["field"] == "script") EXPECT_FALSE(f["differs"].get<bool>());
  }
  EXPECT_TRUE(saw_arguments) << j.dump(2);
  ASSERT_EQ(j["metrics"].size(), 1u) << j.dump(2);
  EXPECT_EQ(j["metrics"][0]["name"], "loss");
  EXPECT_EQ(j["metrics"][0]["runs"][0]["last"], 1.0);
  EXPECT_EQ(j["metrics"][0]["runs"][0]["max"], 3.0);
  EXPECT_EQ(j["metrics"][0]["runs"][1]["last"], 0.5);
  EXPECT_EQ(j["metrics"][0]["runs"][1]["last_step"], 1);
  EXPECT_EQ(j["metrics"][0]["runs"][1]["min"], 0.5);

  // One run (twice) is not a comparison; a typo is an error.
  r = Aml({"run", "compare", four, "last"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_NE(r.err.find("two or more different runs"), std::string::npos) << Describe(r);
  EXPECT_EQ(Aml({"run", "compare", one, "no_such_run_anywhere"}).exit_code, 1);
}

}  // namespace

namespace {

TEST_F(CliE2eTest, ADeletedRunsObjectsAreCollectedByTheDaemonAndSharedOnesStay) {
  // The daemon's own collector, every second, for objects older than 5 s
  // (longer than a submit's upload takes).
  WriteFile(dir_ / "amld.yaml", "gc_interval_seconds: 1\ngc_grace_seconds: 5\n");
  StartDaemon({"--config", (dir_ / "amld.yaml").string()});
  WriteFile(project_ / "train.py", R"(import os, sys
os.makedirs("outputs", exist_ok=True)
open("outputs/model.txt", "w").write("weights of " + sys.argv[1])
open("outputs/shared.txt", "w").write("the same in every run")
)");
  // The run to delete has a source folder of its own, with a file no other
  // snapshot holds.
  const fs::path own = dir_ / "own";
  WriteFile(own / "train.py", ReadFile(project_ / "train.py"));
  WriteFile(own / "data.txt", "only the deleted run's source");
  auto r = Aml({"run", "submit", "-q", "-s", own.string(), "--interpreter", kPython, "train.py",
                "--", "gone"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  const std::string gone = r.out.substr(0, r.out.find('\n'));
  const std::string kept = Submit("train.py", {}, {"kept"});
  ASSERT_EQ(Aml({"run", "wait", gone}).exit_code, 0);
  ASSERT_EQ(Aml({"run", "wait", kept}).exit_code, 0);

  auto object = [&](const std::string& hash) {
    return data_ / "cas" / "objects" / hash.substr(0, 2) / hash.substr(2);
  };
  auto stored = [&](const std::string& id, const std::string& path) -> fs::path {
    const json listing = AmlJson({"run", "files", id});
    for (const json& f : listing["files"]) {
      if (f["path"] == path) return object(f["digest"]["hash"].get<std::string>());
    }
    ADD_FAILURE() << id << " has no " << path;
    return {};
  };
  const fs::path gone_model = stored(gone, "outputs/model.txt");
  const fs::path kept_model = stored(kept, "outputs/model.txt");
  const fs::path shared = stored(gone, "outputs/shared.txt");
  EXPECT_EQ(shared, stored(kept, "outputs/shared.txt"));
  auto sha = amld::testing::RunProcess(
      {kPython, "-c",
       "import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], 'rb').read()).hexdigest())",
       (own / "data.txt").string()},
      Options());
  ASSERT_EQ(sha.exit_code, 0) << Describe(sha);
  const fs::path gone_source = object(sha.out.substr(0, 64));
  for (const fs::path& p : {gone_model, kept_model, shared, gone_source}) {
    ASSERT_TRUE(fs::exists(p)) << p;
  }

  r = Aml({"run", "delete", gone});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.err.find("next garbage collection (every 1.0s, once older than 5.0s)"),
            std::string::npos)
      << Describe(r);
  // A collection past the grace period removes what only the deleted run
  // referred to; by then what the other run refers to was as old, and stays.
  EXPECT_TRUE(Eventually([&] { return !fs::exists(gone_model) && !fs::exists(gone_source); }));
  EXPECT_TRUE(fs::exists(kept_model));
  EXPECT_TRUE(fs::exists(shared));
  r = Aml({"run", "download", kept, "outputs/shared.txt", "-o", "-"});
  EXPECT_EQ(r.out, "the same in every run") << Describe(r);
  // The kept run's snapshot is whole: it runs again.
  r = Aml({"run", "restart", "-q", kept});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Aml({"run", "wait", r.out.substr(0, r.out.find('\n'))}).exit_code, 0);
}

}  // namespace

namespace {

TEST_F(CliE2eTest, RelativeFoldersInPathListsMeanTheSubmittersWorkingFolder) {
  StartDaemon();
  // A module outside the source folder, on a relative PYTHONPATH, as from a
  // shell in dir_ (PYTHONPATH=pylib).
  WriteFile(dir_ / "pylib" / "helper.py", "WHO = 'the helper'\n");
  WriteFile(project_ / "use.py", "import os, helper\nprint(helper.WHO, os.environ['PYTHONPATH'])\n");
  ProcessOptions o = Options(dir_);
  o.env.push_back({"PYTHONPATH", "pylib"});
  auto r = amld::testing::RunProcess(
      Argv({"run", "submit", "-q", "-s", project_.string(), "--interpreter", kPython, "use.py"}),
      o);
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  const std::string id = r.out.substr(0, r.out.find('\n'));
  r = Aml({"run", "wait", id});
  EXPECT_EQ(r.exit_code, 0) << Describe(r) << Aml({"run", "logs", id}).out;
  // (after the daemon's azureml alias folder)
  const std::string out = Aml({"run", "logs", id}).out;
  EXPECT_EQ(out.substr(0, 11), "the helper ") << out;
  EXPECT_TRUE(out.ends_with(":" + (dir_ / "pylib").string() + "\n")) << out;
}

}  // namespace

namespace {

TEST_F(CliE2eTest, LogsFollowStartedWhileTheDaemonIsDownWaitsForIt) {
  StartDaemon();
  WriteFile(project_ / "hello.py", "print('hello')\n");
  const std::string id = Submit("hello.py");
  ASSERT_EQ(Aml({"run", "wait", id}).exit_code, 0);
  auto r = Aml({"daemon", "stop"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  // Its stderr into the stdout the test can read while it runs.
  std::string command;
  for (const std::string& a : Argv({"run", "logs", "-f", id})) command += "'" + a + "' ";
  amld::testing::Subprocess follower({"/bin/bash", "-c", command + "2>&1"}, Options());
  // `aml run wait` likewise.
  command.clear();
  for (const std::string& a : Argv({"run", "wait", id, "--show-output"})) command += "'" + a + "' ";
  amld::testing::Subprocess waiter({"/bin/bash", "-c", command + "2>&1"}, Options());
  ASSERT_TRUE(Eventually([&] {
    return follower.StdoutSoFar().find("waiting for amld") != std::string::npos &&
           waiter.StdoutSoFar().find("waiting for amld") != std::string::npos;
  }));
  r = Aml({"daemon", "start", "--data-dir", data_.string()});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  for (amld::testing::Subprocess* p : {&follower, &waiter}) {
    ProcessResult done = p->Wait();
    EXPECT_EQ(done.exit_code, 0) << Describe(done);
    EXPECT_NE(done.out.find("hello\n"), std::string::npos) << Describe(done);
    EXPECT_NE(done.out.find("run " + id + " COMPLETED"), std::string::npos) << Describe(done);
  }
  // Without -f nothing waits: the daemon being down is an error at once.
  ASSERT_EQ(Aml({"daemon", "stop"}).exit_code, 0);
  r = Aml({"run", "logs", id});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  ASSERT_EQ(Aml({"daemon", "start", "--data-dir", data_.string()}).exit_code, 0);
}

}  // namespace
