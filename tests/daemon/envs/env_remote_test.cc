// The remote build script (env_remote.h), run here with /bin/sh as a target
// would run it: a spec without packages, so the build is a real `python3.X
// -m venv` and nothing is fetched.
#include "daemon/envs/env_remote.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/test_util.h"

namespace amld::daemon {
namespace {

namespace fs = std::filesystem;
using amld::testing::ProcessOptions;
using amld::testing::ProcessResult;
using amld::testing::RunProcess;
using amld::testing::TempDir;
using ::testing::HasSubstr;
using ::testing::Not;

class EnvRemoteTest : public ::testing::Test {
 protected:
  // The script for `spec` wrapping `argv`, run with AMLD_ENV_CACHE=<dir>/envs.
  ProcessResult Run(const EnvironmentSpec& spec, bool is_script, std::vector<std::string> argv) {
    ProcessOptions o;
    o.env = {{std::string(kRemoteEnvCacheVar), (dir_.path() / "envs").string()},
             {"PYTHONHOME", "/nowhere"}};
    o.cwd = dir_.path();
    return RunProcess(RemoteEnvironmentArgv(spec, EnvironmentOptions{}, is_script, argv), o);
  }
  std::vector<std::string> BuildFolders() {
    std::vector<std::string> found;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir_.path() / "envs", ec)) {
      if (e.path().filename().string().rfind(".build-", 0) == 0) {
        found.push_back(e.path().filename().string());
      }
    }
    return found;
  }
  TempDir dir_;
};

std::string ThisPython() {
  ProcessResult r = RunProcess(
      {"python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2], end='')"});
  return r.out;
}

TEST_F(EnvRemoteTest, BuildsOncePublishesByDigestAndRunsInIt) {
  EnvironmentSpec spec;
  spec.python_version = ThisPython();
  const std::string digest = SpecDigest(spec);
  const std::string shorter = ShortDigest(digest);
  ProcessResult first = Run(spec, true, {"python3", "-c", "import sys, os; print('in', sys.prefix, os.environ.get('AMLD_ENV_CACHE'))"});
  ASSERT_EQ(first.exit_code, 0) << first.out << first.err;
  const fs::path link = dir_.path() / "envs" / digest;
  ASSERT_TRUE(fs::is_symlink(link));
  const fs::path prefix = fs::canonical(link);
  EXPECT_THAT(first.out, HasSubstr("amld: building environment " + shorter + " in "));
  EXPECT_THAT(first.out, HasSubstr(" -m venv "));
  EXPECT_THAT(first.out, HasSubstr("amld: environment " + shorter + " built in "));
  // The script ran with the environment's python; the cache variable is
  // the script's own, not the run's.
  EXPECT_THAT(first.out, HasSubstr("in " + prefix.string() + " None\n"));
  EXPECT_EQ(BuildFolders(), std::vector<std::string>{prefix.filename().string()});
  EXPECT_EQ(amld::testing::ReadFile(prefix / "amld-environment.txt"), CanonicalText(spec));

  // The next run finds it; a command finds the environment's bin first.
  ProcessResult second = Run(spec, false, {"sh", "-c", "command -v python; echo $VIRTUAL_ENV"});
  ASSERT_EQ(second.exit_code, 0) << second.out << second.err;
  EXPECT_THAT(second.out, HasSubstr("amld: using environment " + shorter +
                                    " (built before on this target)\n"));
  EXPECT_THAT(second.out, Not(HasSubstr("building")));
  EXPECT_THAT(second.out, HasSubstr(prefix.string() + "/bin/python\n" + prefix.string() + "\n"));
}

TEST_F(EnvRemoteTest, AFailedBuildLeavesNothingAndWhatAKilledOneLeftGoes) {
  EnvironmentSpec spec;
  spec.python_version = "2.1";  // no python2.1 here
  const std::string shorter = ShortDigest(SpecDigest(spec));
  fs::create_directories(dir_.path() / "envs" / (".build-" + shorter + "-killed"));
  ProcessResult r = Run(spec, true, {"python3", "-c", "print('never')"});
  EXPECT_EQ(r.exit_code, kRemoteBuildFailedExit) << r.out << r.err;
  EXPECT_THAT(r.err, HasSubstr("amld: environment " + shorter + " could not be built on "));
  EXPECT_THAT(r.err, HasSubstr("python -m venv failed"));
  EXPECT_THAT(r.out, Not(HasSubstr("never")));
  EXPECT_TRUE(BuildFolders().empty());
  EXPECT_FALSE(fs::exists(dir_.path() / "envs" / SpecDigest(spec)));
}

}  // namespace
}  // namespace amld::daemon
