// ReadGitInfo on real repositories made with `git` in a temp folder.
#include "client/git_info.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

namespace amld::client {
namespace {

namespace fs = std::filesystem;

class GitInfoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ("gitinfo_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  void Git(const std::string& args) {
    const std::string cmd = "cd '" + dir_.string() +
                            "' && git -c user.name=t -c user.email=t@example.com "
                            "-c init.defaultBranch=main " +
                            args + " >/dev/null 2>&1";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  void Write(const std::string& rel, const std::string& data) {
    fs::create_directories((dir_ / rel).parent_path());
    std::ofstream(dir_ / rel) << data;
  }
  std::string Head() {
    const std::string cmd = "git -C '" + dir_.string() + "' rev-parse HEAD";
    FILE* p = ::popen(cmd.c_str(), "r");
    char buf[128] = {};
    size_t n = fread(buf, 1, sizeof(buf) - 1, p);
    ::pclose(p);
    std::string s(buf, n);
    while (!s.empty() && s.back() == '\n') s.pop_back();
    return s;
  }
  amld::v1::GitInfo Read(const fs::path& where) {
    auto info = ReadGitInfo(where);
    EXPECT_TRUE(info.ok()) << info.status();
    EXPECT_TRUE(info.ok() && info->has_value());
    return info.ok() && info->has_value() ? **info : amld::v1::GitInfo();
  }

  fs::path dir_;
};

TEST_F(GitInfoTest, NotARepositoryGivesNothing) {
  auto info = ReadGitInfo(dir_);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_FALSE(info->has_value());
}

TEST_F(GitInfoTest, CleanCheckoutWithOrigin) {
  Git("init");
  Git("remote add origin https://example.com/team/project.git");
  Write("train.py", "print(1)\n");
  Git("add train.py");
  Git("commit -m first");
  auto info = Read(dir_);
  EXPECT_EQ(info.repository_uri(), "https://example.com/team/project.git");
  EXPECT_EQ(info.branch(), "main");
  EXPECT_EQ(info.commit(), Head());
  EXPECT_EQ(info.commit().size(), 40u);
  EXPECT_FALSE(info.dirty());
}

TEST_F(GitInfoTest, ModifiedOrUntrackedFilesMakeItDirtyButIgnoredOnesDoNot) {
  Git("init");
  Write("train.py", "print(1)\n");
  Write(".gitignore", "*.log\n");
  Git("add .");
  Git("commit -m first");
  Write("run.log", "noise\n");
  EXPECT_FALSE(Read(dir_).dirty());
  Write("new.py", "x = 1\n");
  EXPECT_TRUE(Read(dir_).dirty());
  fs::remove(dir_ / "new.py");
  EXPECT_FALSE(Read(dir_).dirty());
  Write("train.py", "print(2)\n");
  auto info = Read(dir_);
  EXPECT_TRUE(info.dirty());
  EXPECT_EQ(info.repository_uri(), "");  // no origin
}

TEST_F(GitInfoTest, SubfolderSeesTheRepositoryAndOnlyItsOwnChanges) {
  Git("init");
  Write("proj/train.py", "print(1)\n");
  Write("other/x.py", "x\n");
  Git("add .");
  Git("commit -m first");
  Write("other/untracked.py", "y\n");
  auto info = Read(dir_ / "proj");
  EXPECT_EQ(info.commit(), Head());
  EXPECT_FALSE(info.dirty());
  EXPECT_TRUE(Read(dir_).dirty());
  Write("proj/untracked.py", "z\n");
  EXPECT_TRUE(Read(dir_ / "proj").dirty());
}

TEST_F(GitInfoTest, DetachedHeadHasACommitButNoBranch) {
  Git("init");
  Write("a.py", "1\n");
  Git("add .");
  Git("commit -m one");
  Git("checkout --detach HEAD");
  auto info = Read(dir_);
  EXPECT_EQ(info.branch(), "");
  EXPECT_EQ(info.commit(), Head());
}

TEST_F(GitInfoTest, RepositoryWithoutCommitsHasItsBranchName) {
  Git("init");
  Write("a.py", "1\n");
  auto info = Read(dir_);
  EXPECT_EQ(info.branch(), "main");
  EXPECT_EQ(info.commit(), "");
  EXPECT_TRUE(info.dirty());
}

}  // namespace
}  // namespace amld::client
