// amld.yaml: what parses, and that every mistake names the file, the line
// and what is wrong.
#include "daemon/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tests/testing/build_paths.h"
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
  DaemonOptions options;
  absl::Status parsed = ParseDaemonConfig(text, "amld.yaml", &options);
  if (parsed.ok()) return "OK";
  EXPECT_EQ(parsed.code(), absl::StatusCode::kInvalidArgument);
  return std::string(parsed.message());
}

// The options after parsing `text` onto `options` (the defaults unless
// given); the test fails when it does not parse.
DaemonOptions Parsed(const std::string& text, DaemonOptions options = {}) {
  absl::Status parsed = ParseDaemonConfig(text, "amld.yaml", &options);
  EXPECT_TRUE(parsed.ok()) << parsed;
  return options;
}

TEST(DaemonConfigTest, AFullFileParses) {
  const DaemonOptions options = Parsed(R"(# the workstation
max_concurrent_runs: 2
cpus: 8
gpus: [0, 1, 3]
default_gpus: 1
kill_grace_seconds: 5
limits:
  default_run_duration_seconds: 3600
  max_run_duration_seconds: 86400
)");
  EXPECT_EQ(options.runs.max_concurrent_runs, 2);
  EXPECT_EQ(options.runs.cpus, 8);
  EXPECT_THAT(options.runs.gpus, ElementsAre(0, 1, 3));
  EXPECT_EQ(options.runs.default_gpus, 1);
  EXPECT_EQ(options.runs.kill_grace, absl::Seconds(5));
  EXPECT_EQ(options.runs.default_run_duration_seconds, 3600);
  EXPECT_EQ(options.runs.max_run_duration_seconds, 86400);
}

TEST(DaemonConfigTest, SharedWorkstationSettingsParse) {
  const DaemonOptions options = Parsed(R"(per_user:
  max_running_runs: 3
  max_gpus: 1
admin_group: amld-admin
users_manage_targets: true
)");
  EXPECT_EQ(options.runs.user_limits.max_running_runs, 3);
  EXPECT_EQ(options.runs.user_limits.max_gpus, 1);
  EXPECT_EQ(options.access.admin_group, "amld-admin");
  EXPECT_TRUE(options.access.users_manage_targets);
  EXPECT_EQ(ErrorOf("per_user:\n  max_runs: 3\n"),
            "amld.yaml:2:3: unknown key \"per_user.max_runs\"; known keys: per_user.max_gpus, "
            "per_user.max_running_runs");
  EXPECT_EQ(ErrorOf("per_user:\n  max_gpus: -1\n"),
            "amld.yaml:2:13: per_user.max_gpus must be 0 or more, got -1");
  EXPECT_EQ(ErrorOf("users_manage_targets: yes please\n"),
            "amld.yaml:1:23: users_manage_targets must be true or false");
}

TEST(DaemonConfigTest, LocalIngestAndAutomaticWatchesCanBeTurnedOff) {
  const DaemonOptions defaults = Parsed("cpus: 1\n");
  EXPECT_TRUE(defaults.watched_roots.local_ingest);
  EXPECT_EQ(defaults.watched_roots.max_auto_roots, 8);
  const DaemonOptions off = Parsed("local_ingest: false\nauto_watch_roots: 0\n");
  EXPECT_FALSE(off.watched_roots.local_ingest);
  EXPECT_EQ(off.watched_roots.max_auto_roots, 0);
  EXPECT_EQ(ErrorOf("local_ingest: no\n"), "amld.yaml:1:15: local_ingest must be true or false");
}

TEST(DaemonConfigTest, EmptyFileAndBlockListsWork) {
  DaemonOptions given;
  given.runs.cpus = 3;
  given.runs.gpus = {5};
  const DaemonOptions empty = Parsed("", given);  // nothing said: nothing changed
  EXPECT_EQ(empty.runs.cpus, 3);
  EXPECT_THAT(empty.runs.gpus, ElementsAre(5));
  EXPECT_EQ(Parsed("# nothing yet\n", given).runs.cpus, 3);
  EXPECT_THAT(Parsed("gpus:\n  - 2\n  - 0\nlimits:\n", given).runs.gpus, ElementsAre(2, 0));
  EXPECT_TRUE(Parsed("gpus: []\n", given).runs.gpus.empty());
}

TEST(DaemonConfigTest, SubmitterEnvironmentTakesAllowAndDenyPatterns) {
  const DaemonOptions o = Parsed(R"(submitter_environment:
  allow: ["PATH", "CONDA_*"]
  deny: ["*_PROXY"]
)");
  EXPECT_THAT(o.runs.submitter_env.allow, ElementsAre("PATH", "CONDA_*"));
  EXPECT_THAT(o.runs.submitter_env.deny, ElementsAre("*_PROXY"));
  EXPECT_THAT(ErrorOf("submitter_environment: [PATH]\n"), HasSubstr("allow: and deny:"));
  EXPECT_THAT(ErrorOf("submitter_environment:\n  keep: [PATH]\n"), HasSubstr("keep"));
}

TEST(DaemonConfigTest, TheSampleFileParsesAsShippedAndWithEverySettingOn) {
  const std::string sample = testing::ReadFile(testing::SourceDir() / "deploy/amld.yaml.example");
  ASSERT_FALSE(sample.empty());
  EXPECT_EQ(ErrorOf(sample), "OK");
  // Settings are "#key: value" and "#  key: value"; prose is "# text".
  std::string on;
  for (absl::string_view line : absl::StrSplit(sample, '\n')) {
    const bool setting = absl::StartsWith(line, "#") && line.size() > 1 &&
                         (line[1] != ' ' || absl::StartsWith(line, "#  "));
    absl::StrAppend(&on, setting ? line.substr(1) : line, "\n");
  }
  const DaemonOptions o = Parsed(on);
  EXPECT_EQ(o.runs.cpus, 8);
  EXPECT_THAT(o.runs.gpus, ElementsAre(0, 1));
  EXPECT_THAT(o.runs.submitter_env.deny, ElementsAre("SSH_*", "*_PROXY"));
  EXPECT_EQ(o.runs.max_run_duration_seconds, 604800);
  EXPECT_EQ(o.gc.interval, absl::Hours(1));
  EXPECT_EQ(o.gc.grace, absl::Hours(2));
}

TEST(DaemonConfigTest, UnknownKeysAreRefusedWithTheirLine) {
  EXPECT_EQ(ErrorOf("cpus: 4\ngpu: [0]\n"),
            "amld.yaml:2:1: unknown key \"gpu\"; known keys: admin_group, auto_watch_roots, cpus, "
            "default_gpus, environments, gc_grace_seconds, gc_interval_seconds, gpus, "
            "keep_finished_run_folders, kill_grace_seconds, limits, local_ingest, "
            "max_concurrent_runs, per_user, submitter_environment, users_manage_targets, web");
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
  DaemonOptions options;
  absl::Status bad = LoadDaemonConfigFile(path, &options);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.message()),
              ::testing::StartsWith(path.string() + ":2:1: unknown key \"cpu\""));
  absl::Status missing = LoadDaemonConfigFile(dir / "nope.yaml", &options);
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.message()), HasSubstr("nope.yaml does not exist"));
  WriteFile(path, "cpus: 4\n");
  ASSERT_TRUE(LoadDaemonConfigFile(path, &options).ok());
  EXPECT_EQ(options.runs.cpus, 4);
}

TEST(DaemonConfigTest, TheFileIsTheFlagOrTheOneInTheDataDir) {
  TempDir dir;
  EXPECT_EQ(ConfigFileToRead("", dir.path()), std::nullopt);
  EXPECT_EQ(ConfigFileToRead("/etc/x.yaml", dir.path()), fs::path("/etc/x.yaml"));
  WriteFile(dir / "amld.yaml", "cpus: 2\n");
  EXPECT_EQ(ConfigFileToRead("", dir.path()), dir / "amld.yaml");
}

// main.cc applies the flags after the file, into the same fields; what
// they set is checked like the file's values.
TEST(DaemonConfigTest, FlagsOverrideTheFile) {
  DaemonOptions options = Parsed("cpus: 4\ngpus: [0, 1]\nkill_grace_seconds: 7\n");
  options.runs.cpus = 2;  // --cpus 2
  options.runs.gpus = {};  // --gpus ""
  ASSERT_TRUE(CheckDaemonOptions(options).ok());
  EXPECT_EQ(options.runs.cpus, 2);
  EXPECT_TRUE(options.runs.gpus.empty());
  EXPECT_EQ(options.runs.kill_grace, absl::Seconds(7));  // from the file
  EXPECT_EQ(options.runs.max_concurrent_runs, 0);        // neither: the built-in default

  options.runs.default_run_duration_seconds = 100;
  options.runs.max_run_duration_seconds = 10;
  absl::Status s = CheckDaemonOptions(options);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("default run duration (100 s) is above"));
  options.runs.max_run_duration_seconds = 0;
  ASSERT_TRUE(CheckDaemonOptions(options).ok());

  options.runs.gpus = {1, 1};
  EXPECT_THAT(std::string(CheckDaemonOptions(options).message()), HasSubstr("listed twice"));

  // A default GPU request needs that many GPUs (here --gpus "" left none).
  options = Parsed("gpus: [0, 1]\ndefault_gpus: 2\n");
  ASSERT_TRUE(CheckDaemonOptions(options).ok());
  options.runs.gpus = {};
  EXPECT_THAT(std::string(CheckDaemonOptions(options).message()),
              HasSubstr("default_gpus (2) is more than the 0 GPUs listed in gpus"));
}

TEST(DaemonConfigTest, KeepFinishedRunFoldersTakesACountOrMinusOneForAll) {
  auto keep = [](const std::string& text) {
    return Parsed(text).runs.folders.keep_finished_run_folders;
  };
  EXPECT_EQ(keep("keep_finished_run_folders: 5\n"), 5);
  EXPECT_EQ(keep("keep_finished_run_folders: 0\n"), 0);
  EXPECT_EQ(keep("keep_finished_run_folders: -1\n"), -1);
  EXPECT_EQ(keep("cpus: 2\n"), 20);  // not said: the default

  EXPECT_EQ(ErrorOf("cpus: 2\nkeep_finished_run_folders: -2\n"),
            "amld.yaml:2:28: keep_finished_run_folders must be 0 or more, or -1 to keep all, "
            "got -2");
  EXPECT_EQ(ErrorOf("keep_finished_run_folders: all\n"),
            "amld.yaml:1:28: keep_finished_run_folders must be an integer, got \"all\"");
  EXPECT_EQ(ErrorOf("keep_finished_run_folders: 2000000\n"),
            "amld.yaml:1:28: keep_finished_run_folders must be at most 1000000, got 2000000");

  // The default, the file's value, a flag over it; a flag is checked alike.
  DaemonOptions options;
  EXPECT_EQ(options.runs.folders.keep_finished_run_folders, 20);
  options = Parsed("keep_finished_run_folders: 3\n", options);
  EXPECT_EQ(options.runs.folders.keep_finished_run_folders, 3);
  options.runs.folders.keep_finished_run_folders = -1;  // --keep-finished-run-folders -1
  ASSERT_TRUE(CheckDaemonOptions(options).ok());
  options.runs.folders.keep_finished_run_folders = -5;
  absl::Status s = CheckDaemonOptions(options);
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

namespace amld::daemon {
namespace {

TEST(DaemonConfigTest, EnvironmentsSayWherePackagesComeFrom) {
  const DaemonOptions options = Parsed(R"(environments:
  index_url: https://pypi.example/simple
  extra_index_urls: [https://a/simple, https://b/simple]
  find_links:
    - /srv/wheels
  no_index: true
  conda_path: /opt/micromamba/bin/micromamba
  build_timeout_seconds: 600
  cache_budget: 1.5GiB
)");
  const EnvironmentOptions& e = options.runs.environments;
  EXPECT_EQ(e.index_url, "https://pypi.example/simple");
  EXPECT_THAT(e.extra_index_urls, ElementsAre("https://a/simple", "https://b/simple"));
  EXPECT_THAT(e.find_links, ElementsAre("/srv/wheels"));
  EXPECT_TRUE(e.no_index);
  EXPECT_EQ(e.conda_path, "/opt/micromamba/bin/micromamba");
  EXPECT_EQ(e.build_timeout, absl::Seconds(600));
  EXPECT_EQ(e.cache_budget, int64_t{3} << 29);
  EXPECT_EQ(Parsed("environments:\n  cache_budget: 1048576\n").runs.environments.cache_budget,
            1048576);
  EXPECT_EQ(Parsed("environments:\n  cache_budget: 0\n").runs.environments.cache_budget, 0);
  EXPECT_EQ(Parsed("cpus: 1\n").runs.environments.cache_budget, int64_t{20} << 30);
  EXPECT_THAT(ErrorOf("environments:\n  cache_budget: 20GB\n"),
              HasSubstr("amld.yaml:2:17: environments.cache_budget must be a size"));
  EXPECT_THAT(ErrorOf("environments:\n  cache_budget: [1]\n"),
              HasSubstr("environments.cache_budget must be a size"));
  EXPECT_THAT(ErrorOf("environments:\n  index: x\n"),
              HasSubstr("amld.yaml:2:3: unknown key \"environments.index\""));
  EXPECT_THAT(ErrorOf("environments:\n  index: x\n"),
              HasSubstr("known keys: environments.build_timeout_seconds, "
                        "environments.build_user, environments.cache_budget, "
                        "environments.conda_path, "));
  // System mode's shared-cache builder: an account of the admin's choosing,
  // or none; never root.
  EXPECT_EQ(Parsed("cpus: 1\n").runs.environments.build_user, "amld-build");
  EXPECT_EQ(Parsed("environments:\n  build_user: builder\n").runs.environments.build_user,
            "builder");
  EXPECT_EQ(Parsed("environments:\n  build_user: \"\"\n").runs.environments.build_user, "");
  EXPECT_THAT(ErrorOf("environments:\n  build_user: root\n"),
              HasSubstr("environments.build_user must not be root"));
  EXPECT_THAT(ErrorOf("environments:\n  find_links: /srv\n"),
              HasSubstr("environments.find_links must be a list"));
  EXPECT_THAT(ErrorOf("environments:\n  no_index: 1\n"),
              HasSubstr("environments.no_index must be true or false"));
}

TEST(DaemonConfigTest, TheWebViewIsOffAndLocalUnlessTheFileSaysOtherwise) {
  const DaemonOptions defaults = Parsed("cpus: 2\n");
  EXPECT_FALSE(defaults.web.enabled);
  EXPECT_EQ(defaults.web.address, "127.0.0.1");
  EXPECT_EQ(defaults.web.port, 0);
  const DaemonOptions options = Parsed("web:\n  enabled: true\n  address: 0.0.0.0\n  port: 8265\n");
  EXPECT_TRUE(options.web.enabled);
  EXPECT_EQ(options.web.address, "0.0.0.0");
  EXPECT_EQ(options.web.port, 8265);
  EXPECT_THAT(ErrorOf("web:\n  port: 70000\n"), HasSubstr("amld.yaml:2:9: web.port must be at most 65535"));
  EXPECT_THAT(ErrorOf("web:\n  enabled: yes please\n"), HasSubstr("web.enabled must be true or false"));
  EXPECT_THAT(ErrorOf("web:\n  host: x\n"), HasSubstr("unknown key \"web.host\""));
}

}  // namespace
}  // namespace amld::daemon
