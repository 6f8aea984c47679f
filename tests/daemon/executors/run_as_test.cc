#include "daemon/executors/run_as.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "tests/testing/test_util.h"

namespace amld::daemon {
namespace {

namespace fs = std::filesystem;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Pair;

TEST(RunAsTest, LooksUpTheAccountOfAUid) {
  absl::StatusOr<RunAs> root = LookupAccount(0);
  ASSERT_TRUE(root.ok()) << root.status();
  EXPECT_EQ(root->uid, 0u);
  EXPECT_EQ(root->gid, 0u);
  EXPECT_EQ(root->user, "root");
  EXPECT_FALSE(root->home.empty());
  EXPECT_TRUE(InGroup(*root, 0));
  EXPECT_FALSE(InGroup(*root, 4242424));
}

TEST(RunAsTest, AUidWithoutAnAccountIsRefused) {
  absl::StatusOr<RunAs> nobody = LookupAccount(4242424);
  ASSERT_FALSE(nobody.ok());
  EXPECT_EQ(nobody.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(nobody.status().message()), HasSubstr("uid 4242424 has no account"));
}

TEST(RunAsTest, TheRunsEnvironmentNamesTheAccountNotTheDaemon) {
  RunAs account;
  account.user = "alice";
  account.home = "/home/alice";
  account.shell = "/bin/bash";
  std::vector<std::pair<std::string, std::string>> env = {
      {"HOME", "/root"}, {"PATH", "/usr/bin"}, {"USER", "root"}, {"XDG_RUNTIME_DIR", "/run/user/0"}};
  SetAccountEnvironment(account, &env);
  EXPECT_THAT(env, Contains(Pair("HOME", "/home/alice")));
  EXPECT_THAT(env, Contains(Pair("USER", "alice")));
  EXPECT_THAT(env, Contains(Pair("LOGNAME", "alice")));
  EXPECT_THAT(env, Contains(Pair("SHELL", "/bin/bash")));
  EXPECT_THAT(env, Contains(Pair("PATH", "/usr/bin")));
  EXPECT_EQ(std::count_if(env.begin(), env.end(), [](const auto& e) { return e.first == "HOME"; }),
            1);
  EXPECT_FALSE(std::any_of(env.begin(), env.end(),
                           [](const auto& e) { return e.first == "XDG_RUNTIME_DIR"; }));
}

TEST(RunAsTest, GiveTreeToChangesEveryEntryButNoLinkTarget) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to chown";
  amld::testing::TempDir dir;
  const fs::path outside = dir / "outside.txt";
  amld::testing::WriteFile(outside, "not the run's");
  const fs::path run = dir / "run";
  amld::testing::WriteFile(run / "wd" / "a" / "b.txt", "x");
  fs::create_symlink(outside, run / "wd" / "link");
  ASSERT_TRUE(GiveTreeTo(run, 65534, 65534).ok());
  for (const fs::path& p : {run, run / "wd", run / "wd" / "a", run / "wd" / "a" / "b.txt",
                            run / "wd" / "link"}) {
    struct stat st;
    ASSERT_EQ(::lstat(p.c_str(), &st), 0) << p;
    EXPECT_EQ(st.st_uid, 65534u) << p;
    EXPECT_EQ(st.st_gid, 65534u) << p;
  }
  struct stat st;
  ASSERT_EQ(::stat(run.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  ASSERT_EQ(::stat(outside.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 0u);  // the link was not followed
}

}  // namespace
}  // namespace amld::daemon
