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

TEST(RunAsTest, CheckAccountMayReadsEveryFolderAboveByTheAccountsBits) {
  amld::testing::TempDir dir;
  const fs::path tool = dir / "opt" / "bin" / "amld-launch";
  amld::testing::WriteFile(tool, "#!/bin/sh\n");
  fs::permissions(dir.path(), fs::perms(0755));
  fs::permissions(dir / "opt", fs::perms(0755));
  fs::permissions(dir / "opt" / "bin", fs::perms(0755));
  fs::permissions(tool, fs::perms(0755));
  RunAs someone;
  someone.uid = 4242;
  someone.gid = 4242;
  someone.groups = {4242};
  someone.user = "someone";
  EXPECT_TRUE(CheckAccountMay(someone, tool, X_OK).ok()) << CheckAccountMay(someone, tool, X_OK);
  // A folder on the way closed to others (a build under /root).
  fs::permissions(dir / "opt", fs::perms(0700));
  absl::Status closed = CheckAccountMay(someone, tool, X_OK);
  EXPECT_TRUE(absl::IsFailedPrecondition(closed)) << closed;
  EXPECT_THAT(std::string(closed.message()),
              HasSubstr("the folder " + (dir / "opt").string() + " is closed to them (mode 0700)"));
  // ... but open to its group, which they are in.
  fs::permissions(dir / "opt", fs::perms(0710));
  someone.groups.push_back(::getegid());
  EXPECT_TRUE(CheckAccountMay(someone, tool, X_OK).ok()) << CheckAccountMay(someone, tool, X_OK);
  // The file itself not executable by them.
  fs::permissions(tool, fs::perms(0744));
  absl::Status file = CheckAccountMay(someone, tool, X_OK);
  EXPECT_THAT(std::string(file.message()), HasSubstr("someone may not execute " + tool.string()));
  // Reading: a key file that only its owner may read.
  fs::permissions(tool, fs::perms(0600));
  absl::Status key = CheckAccountMay(someone, tool, R_OK);
  EXPECT_THAT(std::string(key.message()), HasSubstr("someone may not read " + tool.string()));
  someone.uid = ::geteuid();  // the owner
  EXPECT_TRUE(CheckAccountMay(someone, tool, R_OK).ok());
}

}  // namespace
}  // namespace amld::daemon
