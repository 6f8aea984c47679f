// The data dir is private (issue 19): an existing one made under umask 022
// is tightened at start, what the daemon creates is 0600/0700 whatever the
// caller's umask, and what cannot be tightened is refused with the fix.
#include "daemon/data_dir.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/testing/in_process_daemon.h"
#include "tests/testing/test_util.h"

namespace amld::daemon {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing::TempDir;
using testing::WriteFile;

mode_t ModeOf(const fs::path& p) {
  struct stat st;
  EXPECT_EQ(::lstat(p.c_str(), &st), 0) << p;
  return st.st_mode & 07777;
}

// What `mkdir -p` and a first daemon under umask 022 left: readable by all.
void MakeLooseDataDir(const fs::path& data) {
  fs::create_directories(data / "cas/objects/ab");
  fs::create_directories(data / "runs/r1");
  WriteFile(data / "amld.db", "");
  WriteFile(data / "amld.db-wal", "API_TOKEN=secret");
  WriteFile(data / "amld.log", "log");
  WriteFile(data / "cas/objects/ab/cdef", "object");
  WriteFile(data / "runs/r1/out.txt", "output");
  for (const char* d : {"", "cas", "cas/objects", "cas/objects/ab", "runs/r1"})
    ::chmod((data / d).c_str(), 0755);
  for (const char* f : {"amld.db", "amld.db-wal", "amld.log", "runs/r1/out.txt"})
    ::chmod((data / f).c_str(), 0644);
  ::chmod((data / "cas/objects/ab/cdef").c_str(), 0444);
  ::chmod((data / "runs").c_str(), 0700);
}

TEST(DataDirTest, MissingDirIsCreatedPrivate) {
  TempDir dir;
  ASSERT_TRUE(PrepareDataDir(dir / "a/data").ok());
  EXPECT_EQ(ModeOf(dir / "a/data"), 0700u);
}

TEST(DataDirTest, SystemModeLeavesTheEnvironmentCachesOpenToTheirUsers) {
  TempDir dir;
  const fs::path data = dir / "data";
  MakeLooseDataDir(data);
  // The shared cache's sealed environments (0755/0644) and users/ (0711),
  // as the builder keeps them (daemon/envs/env_builder.h).
  fs::create_directories(data / "envs/users/1001");
  fs::create_directories(data / "envs/.build-abc/bin");
  WriteFile(data / "envs/.build-abc/bin/python", "", 0755);
  for (const char* d : {"envs", "envs/users"}) ::chmod((data / d).c_str(), 0711);
  ::chmod((data / "envs/.build-abc").c_str(), 0755);
  ASSERT_TRUE(PrepareDataDir(data, /*system_mode=*/true).ok());
  EXPECT_EQ(ModeOf(data), 0711u);
  EXPECT_EQ(ModeOf(data / "amld.db"), 0600u);  // the rest is tightened as ever
  EXPECT_EQ(ModeOf(data / "envs"), 0711u);
  EXPECT_EQ(ModeOf(data / "envs/users"), 0711u);
  EXPECT_EQ(ModeOf(data / "envs/.build-abc"), 0755u);
  EXPECT_EQ(ModeOf(data / "envs/.build-abc/bin/python"), 0755u);
}

TEST(DataDirTest, LooseDirAndContentsAreTightened) {
  TempDir dir;
  const fs::path data = dir / "data";
  MakeLooseDataDir(data);
  ASSERT_TRUE(PrepareDataDir(data).ok());
  EXPECT_EQ(ModeOf(data), 0700u);
  EXPECT_EQ(ModeOf(data / "amld.db"), 0600u);
  EXPECT_EQ(ModeOf(data / "amld.db-wal"), 0600u);
  EXPECT_EQ(ModeOf(data / "amld.log"), 0600u);
  EXPECT_EQ(ModeOf(data / "cas"), 0700u);
  EXPECT_EQ(ModeOf(data / "cas/objects/ab"), 0700u);
  EXPECT_EQ(ModeOf(data / "cas/objects/ab/cdef"), 0400u);
  // runs/ was private already: what is below it is out of others' reach and
  // left as the run made it.
  EXPECT_EQ(ModeOf(data / "runs"), 0700u);
  EXPECT_EQ(ModeOf(data / "runs/r1"), 0755u);
}

TEST(DataDirTest, ForeignOwnedEntryIsRefusedWithTheFix) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to make a file another user's";
  TempDir dir;
  const fs::path data = dir / "data";
  MakeLooseDataDir(data);
  ASSERT_EQ(::chown((data / "amld.log").c_str(), 65534, 65534), 0);
  absl::Status s = PrepareDataDir(data);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_THAT(s.message(), HasSubstr("amld.log"));
  EXPECT_THAT(s.message(), HasSubstr("chmod -R go-rwx"));
  EXPECT_THAT(s.message(), HasSubstr("uid 65534"));
}

// The whole daemon started by a caller with umask 022 on a loose data dir.
class DataDirDaemonTest : public testing::InProcessDaemonTest {
 protected:
  void SetUp() override {
    saved_umask_ = ::umask(022);
    MakeLooseDataDir(dir_ / "data");
    // Not fake database files: SQLite makes its own (0600 under the daemon).
    fs::remove(dir_ / "data/amld.db");
    fs::remove(dir_ / "data/amld.db-wal");
    InProcessDaemonTest::SetUp();
  }
  void TearDown() override { ::umask(saved_umask_); }
  mode_t saved_umask_ = 022;
};

TEST_F(DataDirDaemonTest, EverythingInTheDataDirIsPrivate) {
  const fs::path data = dir_ / "data";
  fs::create_directory(dir_ / "x");  // the test's own folder: the umask is the daemon's now
  EXPECT_EQ(ModeOf(dir_ / "x"), 0700u);
  int checked = 0;
  for (auto it = fs::recursive_directory_iterator(data); it != fs::recursive_directory_iterator();
       ++it) {
    if (it->is_symlink()) continue;
    if (it->path().parent_path() == data / "runs") {  // old runs' folders: see above
      it.disable_recursion_pending();
      continue;
    }
    EXPECT_EQ(ModeOf(it->path()) & 077, 0u) << it->path();
    ++checked;
  }
  EXPECT_GE(checked, 10);
  EXPECT_EQ(ModeOf(data), 0700u);
  EXPECT_EQ(ModeOf(data / "amld.db"), 0600u);
  EXPECT_EQ(ModeOf(data / "amld.lock"), 0600u);
}

}  // namespace
}  // namespace amld::daemon
