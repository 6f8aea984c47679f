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
