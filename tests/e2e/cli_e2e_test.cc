// The CLI for daily use (issue 18), end to end: the real `aml` against a
// real `amld` per test. Downloads that never write through links or devices,
// ids people can type, failures that explain themselves, output that fits.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

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
