#include "client/submitter_env.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "tests/testing/test_util.h"

namespace amld::client {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;

TEST(SubmitterEnvTest, SecretLookingNamesAreRecognised) {
  for (const char* name : {"AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN", "WANDB_API_KEY", "db_password",
                           "PGPASSWD", "GOOGLE_APPLICATION_CREDENTIALS", "SSH_PRIVATE", "MY_KEY",
                           "SMTP_PASS"}) {
    EXPECT_TRUE(LooksLikeSecret(name)) << name;
  }
  for (const char* name : {"PATH", "VIRTUAL_ENV", "HOME", "KEYBOARD", "SSH_AUTH_SOCK", "LANG",
                           "CONDA_PREFIX", "PASSAGE"}) {
    EXPECT_FALSE(LooksLikeSecret(name)) << name;
  }
}

TEST(SubmitterEnvTest, EverythingButSecretsShellStateAndAmldVariablesIsSent) {
  amld::testing::TempDir dir;
  const fs::path bin = dir.path() / "venv" / "bin";
  amld::testing::WriteFile(bin / "python3", "#!/bin/sh\n", 0755);
  const std::string path = "relative/bin:" + bin.string() + ":/usr/bin";
  const std::string path_entry = "PATH=" + path;
  const char* envp[] = {path_entry.c_str(), "VIRTUAL_ENV=/v",   "GITHUB_TOKEN=t",
                        "PWD=/somewhere",   "SHLVL=2",          "_=/usr/bin/aml",
                        "AMLD_SOCKET=/s",   "EMPTY=",           "WANDB_API_KEY=k",
                        "=nameless",        "no-equals-sign",   nullptr};
  amld::v1::SubmitterEnvironment e =
      CaptureSubmitterEnvironment(envp, {"WANDB_API_KEY"}, "/home/u/proj");
  EXPECT_EQ(e.variables().at("PATH"), "/home/u/proj/relative/bin:" + bin.string() + ":/usr/bin");
  EXPECT_EQ(e.variables().at("VIRTUAL_ENV"), "/v");
  EXPECT_EQ(e.variables().at("EMPTY"), "");
  EXPECT_EQ(e.variables().at("WANDB_API_KEY"), "k") << "asked for by name";
  EXPECT_EQ(e.variables_size(), 4);
  EXPECT_THAT(e.left_out(), ElementsAre("AMLD_SOCKET", "GITHUB_TOKEN", "PWD", "SHLVL", "_"));
  // The venv's python3, as found (not resolved), before /usr/bin's.
  EXPECT_EQ(e.python(), (bin / "python3").string());
}

TEST(SubmitterEnvTest, RelativeFoldersOfPathListsMeanTheSubmittersWorkingFolder) {
  EXPECT_EQ(AbsolutePathList("build/python:/opt/lib::./tools/:../up/x/..:.", "/home/u/proj"),
            "/home/u/proj/build/python:/opt/lib::/home/u/proj/tools:/home/u/up:/home/u/proj");
  EXPECT_EQ(AbsolutePathList("build/python", ""), "build/python") << "no cwd: as it was";
  EXPECT_EQ(AbsolutePathList("", "/w"), "");
  // Only the path lists: other values that look relative are data.
  const char* envp[] = {"PYTHONPATH=build/python", "LD_LIBRARY_PATH=lib:/usr/lib",
                        "MODEL=models/best.pt", "PATH=bin:/usr/bin", nullptr};
  amld::v1::SubmitterEnvironment e = CaptureSubmitterEnvironment(envp, {}, "/w");
  EXPECT_EQ(e.variables().at("PYTHONPATH"), "/w/build/python");
  EXPECT_EQ(e.variables().at("LD_LIBRARY_PATH"), "/w/lib:/usr/lib");
  EXPECT_EQ(e.variables().at("MODEL"), "models/best.pt");
  EXPECT_EQ(e.variables().at("PATH"), "/w/bin:/usr/bin");
}

TEST(SubmitterEnvTest, FindInPathSkipsRelativeFoldersAndWhatCannotRun) {
  amld::testing::TempDir dir;
  amld::testing::WriteFile(dir.path() / "a" / "tool", "not executable", 0644);
  fs::create_directories(dir.path() / "b" / "tool");  // a folder
  amld::testing::WriteFile(dir.path() / "c" / "tool", "#!/bin/sh\n", 0755);
  const std::string path = absl::StrCat(":.:", (dir.path() / "a").string(), ":",
                                        (dir.path() / "b").string(), ":",
                                        (dir.path() / "c").string(), "/");
  EXPECT_EQ(FindInPath("tool", path), (dir.path() / "c" / "tool").string());
  EXPECT_EQ(FindInPath("missing", path), "");
  EXPECT_EQ(FindInPath("tool", ""), "");
}

}  // namespace
}  // namespace amld::client
