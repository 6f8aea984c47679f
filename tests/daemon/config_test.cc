// amld.yaml: what parses, and that every mistake names the file, the line
// and what is wrong.
#include "daemon/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/testing/test_util.h"

namespace amld::daemon {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::TempDir;
using testing::WriteFile;

// The error message of parsing `text`, or "OK".
std::string ErrorOf(const std::string& text) {
  absl::StatusOr<DaemonConfig> config = ParseDaemonConfig(text, "amld.yaml");
  if (config.ok()) return "OK";
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(config.status().message());
}

TEST(DaemonConfigTest, AFullFileParses) {
  absl::StatusOr<DaemonConfig> config = ParseDaemonConfig(R"(# the workstation
max_concurrent_runs: 2
cpus: 8
gpus: [0, 1, 3]
kill_grace_seconds: 5
limits:
  default_run_duration_seconds: 3600
  max_run_duration_seconds: 86400
)",
                                                          "amld.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->max_concurrent_runs, 2);
  EXPECT_EQ(config->cpus, 8);
  ASSERT_TRUE(config->gpus.has_value());
  EXPECT_THAT(*config->gpus, ElementsAre(0, 1, 3));
  EXPECT_EQ(config->kill_grace_seconds, 5);
  EXPECT_EQ(config->default_run_duration_seconds, 3600);
  EXPECT_EQ(config->max_run_duration_seconds, 86400);
}

TEST(DaemonConfigTest, EmptyFileAndBlockListsWork) {
  absl::StatusOr<DaemonConfig> empty = ParseDaemonConfig("", "amld.yaml");
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_FALSE(empty->cpus.has_value());
  EXPECT_FALSE(empty->gpus.has_value());
  absl::StatusOr<DaemonConfig> comments = ParseDaemonConfig("# nothing yet\n", "amld.yaml");
  ASSERT_TRUE(comments.ok()) << comments.status();
  absl::StatusOr<DaemonConfig> block =
      ParseDaemonConfig("gpus:\n  - 2\n  - 0\nlimits:\n", "amld.yaml");
  ASSERT_TRUE(block.ok()) << block.status();
  EXPECT_THAT(*block->gpus, ElementsAre(2, 0));
  absl::StatusOr<DaemonConfig> none = ParseDaemonConfig("gpus: []\n", "amld.yaml");
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_TRUE(none->gpus->empty());
}

TEST(DaemonConfigTest, UnknownKeysAreRefusedWithTheirLine) {
  EXPECT_EQ(ErrorOf("cpus: 4\ngpu: [0]\n"),
            "amld.yaml:2:1: unknown key \"gpu\"; known keys: cpus, gpus, "
            "keep_finished_run_folders, kill_grace_seconds, limits, max_concurrent_runs");
  EXPECT_EQ(ErrorOf("limits:\n  max_duration: 5\n"),
            "amld.yaml:2:3: unknown key \"limits.max_duration\"; known keys: "
            "limits.default_run_duration_seconds, limits.max_run_duration_seconds");
}

TEST(DaemonConfigTest, WrongTypesAreRefused) {
  EXPECT_EQ(ErrorOf("cpus: eight\n"), "amld.yaml:1:7: cpus must be an integer, got \"eight\"");
  EXPECT_EQ(ErrorOf("cpus: \"8\"\n"), "amld.yaml:1:7: cpus must be an integer, got \"8\"");
  EXPECT_EQ(ErrorOf("\nkill_grace_seconds: 1.5\n"),
            "amld.yaml:2:21: kill_grace_seconds must be an integer, got \"1.5\"");
  EXPECT_EQ(ErrorOf("max_concurrent_runs: [1]\n"),
            "amld.yaml:1:22: max_concurrent_runs must be an integer, got a list");
  EXPECT_EQ(ErrorOf("cpus:\n"), "amld.yaml:1:1: cpus has no value; give an integer");
  EXPECT_THAT(ErrorOf("gpus: 2\n"),
              HasSubstr("amld.yaml:1:7: gpus must be a list of GPU ids like [0, 1]"));
  EXPECT_EQ(ErrorOf("gpus: [0, one]\n"), "amld.yaml:1:11: GPU id must be an integer, got \"one\"");
  EXPECT_EQ(ErrorOf("limits: 5\n"), "amld.yaml:1:9: limits must be a mapping of limit: value");
  EXPECT_THAT(ErrorOf("- cpus: 4\n"), HasSubstr("amld.yaml:1:1: the file must be a mapping"));
  EXPECT_EQ(ErrorOf("cpus: 99999999999999999999\n"),
            "amld.yaml:1:7: cpus must be an integer, got \"99999999999999999999\"");
}

TEST(DaemonConfigTest, NumbersOutOfRangeAreRefused) {
  EXPECT_EQ(ErrorOf("max_concurrent_runs: -1\n"),
            "amld.yaml:1:22: max_concurrent_runs must be at least 1, got -1");
  EXPECT_EQ(ErrorOf("cpus: 0\n"), "amld.yaml:1:7: cpus must be at least 1, got 0");
  EXPECT_EQ(ErrorOf("kill_grace_seconds: -3\n"),
            "amld.yaml:1:21: kill_grace_seconds must be 0 or more, got -3");
  EXPECT_EQ(ErrorOf("gpus: [0, -1]\n"), "amld.yaml:1:11: GPU id must be 0 or more, got -1");
  EXPECT_EQ(ErrorOf("limits:\n  max_run_duration_seconds: -60\n"),
            "amld.yaml:2:29: limits.max_run_duration_seconds must be 0 or more, got -60");
  EXPECT_EQ(ErrorOf("cpus: 2000000\n"), "amld.yaml:1:7: cpus must be at most 1000000, got 2000000");
}

TEST(DaemonConfigTest, RepeatsAreRefused) {
  EXPECT_EQ(ErrorOf("gpus: [0, 1,\n       0]\n"),
            "amld.yaml:2:8: GPU id 0 is listed twice; each GPU once");
  EXPECT_EQ(ErrorOf("cpus: 4\nmax_concurrent_runs: 2\ncpus: 8\n"),
            "amld.yaml:3:1: \"cpus\" is set twice; keep one");
}

TEST(DaemonConfigTest, DefaultDurationAboveTheCapIsRefused) {
  EXPECT_EQ(
      ErrorOf("limits:\n  default_run_duration_seconds: 600\n  max_run_duration_seconds: 60\n"),
      "amld.yaml:2:33: limits.default_run_duration_seconds (600) is above "
      "limits.max_run_duration_seconds (60)");
  EXPECT_EQ(ErrorOf("limits:\n  default_run_duration_seconds: 600\n"), "OK");  // no cap
}

TEST(DaemonConfigTest, BrokenYamlSaysWhere) {
  EXPECT_THAT(ErrorOf("cpus: 4\ngpus: [0, 1\n"), HasSubstr("not valid YAML"));
  EXPECT_THAT(ErrorOf("cpus: 4\ngpus: [0, 1\n"), ::testing::StartsWith("amld.yaml:"));
  EXPECT_THAT(ErrorOf("cpus: 4\n  bad indent: 1\n"), ::testing::StartsWith("amld.yaml:2:"));
}

TEST(DaemonConfigTest, LoadingAFileNamesIt) {
  TempDir dir;
  const fs::path path = dir / "amld.yaml";
  WriteFile(path, "cpus: 4\ncpu: 2\n");
  absl::StatusOr<DaemonConfig> bad = LoadDaemonConfigFile(path);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()),
              ::testing::StartsWith(path.string() + ":2:1: unknown key \"cpu\""));
  absl::StatusOr<DaemonConfig> missing = LoadDaemonConfigFile(dir / "nope.yaml");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("nope.yaml does not exist"));
}

TEST(DaemonConfigTest, TheFileIsTheFlagOrTheOneInTheDataDir) {
  TempDir dir;
  EXPECT_EQ(ConfigFileToRead("", dir.path()), std::nullopt);
  EXPECT_EQ(ConfigFileToRead("/etc/x.yaml", dir.path()), fs::path("/etc/x.yaml"));
  WriteFile(dir / "amld.yaml", "cpus: 2\n");
  EXPECT_EQ(ConfigFileToRead("", dir.path()), dir / "amld.yaml");
}

TEST(DaemonConfigTest, FlagsOverrideTheFile) {
  DaemonConfig file = *ParseDaemonConfig("cpus: 4\ngpus: [0, 1]\nkill_grace_seconds: 7\n", "f");
  DaemonConfig flags;
  flags.cpus = 2;
  flags.gpus = std::vector<int>{};
  DaemonOptions options;
  ASSERT_TRUE(ApplyDaemonConfig(Overlay(file, flags), &options).ok());
  EXPECT_EQ(options.cpus, 2);
  EXPECT_TRUE(options.gpus.empty());
  EXPECT_EQ(options.kill_grace, absl::Seconds(7));  // from the file
  EXPECT_EQ(options.max_concurrent_runs, 0);        // neither: the built-in default

  flags.default_run_duration_seconds = 100;
  flags.max_run_duration_seconds = 10;
  absl::Status s = ApplyDaemonConfig(Overlay(file, flags), &options);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("default run duration (100 s) is above"));
  flags.max_run_duration_seconds = 0;
  ASSERT_TRUE(ApplyDaemonConfig(Overlay(file, flags), &options).ok());
  EXPECT_EQ(options.default_run_duration_seconds, 100);
  EXPECT_EQ(options.max_run_duration_seconds, 0);
}

TEST(DaemonConfigTest, KeepFinishedRunFoldersTakesACountOrMinusOneForAll) {
  EXPECT_EQ(ParseDaemonConfig("keep_finished_run_folders: 5\n", "f")->keep_finished_run_folders, 5);
  EXPECT_EQ(ParseDaemonConfig("keep_finished_run_folders: 0\n", "f")->keep_finished_run_folders, 0);
  EXPECT_EQ(ParseDaemonConfig("keep_finished_run_folders: -1\n", "f")->keep_finished_run_folders,
            -1);
  EXPECT_FALSE(ParseDaemonConfig("cpus: 2\n", "f")->keep_finished_run_folders.has_value());

  EXPECT_EQ(ErrorOf("cpus: 2\nkeep_finished_run_folders: -2\n"),
            "amld.yaml:2:28: keep_finished_run_folders must be 0 or more, or -1 to keep all, "
            "got -2");
  EXPECT_EQ(ErrorOf("keep_finished_run_folders: all\n"),
            "amld.yaml:1:28: keep_finished_run_folders must be an integer, got \"all\"");
  EXPECT_EQ(ErrorOf("keep_finished_run_folders: 2000000\n"),
            "amld.yaml:1:28: keep_finished_run_folders must be at most 1000000, got 2000000");

  // The default, the file's value, a flag over it; a flag is checked alike.
  DaemonOptions options;
  EXPECT_EQ(options.keep_finished_run_folders, 20);
  DaemonConfig file = *ParseDaemonConfig("keep_finished_run_folders: 3\n", "f");
  ASSERT_TRUE(ApplyDaemonConfig(Overlay(file, DaemonConfig{}), &options).ok());
  EXPECT_EQ(options.keep_finished_run_folders, 3);
  DaemonConfig flags;
  flags.keep_finished_run_folders = -1;
  ASSERT_TRUE(ApplyDaemonConfig(Overlay(file, flags), &options).ok());
  EXPECT_EQ(options.keep_finished_run_folders, -1);
  flags.keep_finished_run_folders = -5;
  absl::Status s = ApplyDaemonConfig(Overlay(file, flags), &options);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("keep_finished_run_folders must be between -1"));
}

TEST(DaemonConfigTest, GpuFlagLists) {
  EXPECT_THAT(*ParseGpuList("0,1"), ElementsAre(0, 1));
  EXPECT_THAT(*ParseGpuList(" 3 , 1 "), ElementsAre(3, 1));
  EXPECT_TRUE(ParseGpuList("")->empty());
  EXPECT_THAT(std::string(ParseGpuList("0,0").status().message()), HasSubstr("listed twice"));
  EXPECT_EQ(ParseGpuList("0,x").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseGpuList("-1").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace amld::daemon
