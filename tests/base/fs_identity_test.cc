// ScopedFsIdentity: a thread that takes another user's filesystem identity
// reads only what that user may read, while the process's other threads keep
// root's rights (the raw calls are per thread; glibc's setgroups is not).
// Needs root (ctest runs as root here); skipped otherwise.
#include "base/fs_identity.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

namespace amld::base {
namespace {

constexpr uid_t kNobody = 65534;
constexpr gid_t kNogroup = 65534;

std::vector<gid_t> ThreadGroups() {
  std::vector<gid_t> g(256);
  long n = ::syscall(SYS_getgroups, g.size(), g.data());
  g.resize(n < 0 ? 0 : static_cast<size_t>(n));
  return g;
}

// errno of opening `path` to read, 0 when it opened.
int OpenErrno(const std::filesystem::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  ::close(fd);
  return 0;
}

class FsIdentityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root";
    dir_ = std::filesystem::temp_directory_path() /
           ("fs_identity_test." + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    ::chmod(dir_.c_str(), 0755);
    secret_ = dir_ / "secret";
    std::ofstream(secret_) << "root only";
    ::chmod(secret_.c_str(), 0600);
    open_ = dir_ / "public";
    std::ofstream(open_) << "everyone";
    ::chmod(open_.c_str(), 0644);
  }
  void TearDown() override {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  std::filesystem::path dir_, secret_, open_;
};

TEST_F(FsIdentityTest, AThreadAsNobodyCannotReadRootsFileWhileOtherThreadsStillCan) {
  const FsIdentity nobody{kNobody, kNogroup, {kNogroup}};
  const std::vector<gid_t> main_groups = ThreadGroups();
  std::promise<void> taken, checked;
  std::shared_future<void> checked_f = checked.get_future().share();
  auto worker = std::async(std::launch::async, [&]() -> std::vector<int> {
    std::vector<int> seen;
    {
      auto scope = ScopedFsIdentity::Take(&nobody);
      EXPECT_TRUE(scope.ok()) << scope.status();
      seen.push_back(static_cast<int>(CurrentFsUid()));
      seen.push_back(OpenErrno(secret_));
      seen.push_back(OpenErrno(open_));
      seen.push_back(static_cast<int>(ThreadGroups().size()));
      taken.set_value();
      checked_f.wait();  // the main thread looks while this one is nobody
    }
    seen.push_back(static_cast<int>(CurrentFsUid()));
    seen.push_back(OpenErrno(secret_));
    return seen;
  });
  taken.get_future().wait();
  // This thread is untouched: root's fsuid, groups and rights.
  EXPECT_EQ(CurrentFsUid(), 0u);
  EXPECT_EQ(ThreadGroups(), main_groups);
  EXPECT_EQ(OpenErrno(secret_), 0);
  checked.set_value();
  std::vector<int> seen = worker.get();
  ASSERT_EQ(seen.size(), 6u);
  EXPECT_EQ(seen[0], static_cast<int>(kNobody));
  EXPECT_EQ(seen[1], EACCES) << "nobody read a 0600 file of root's";
  EXPECT_EQ(seen[2], 0) << "nobody could not read a 0644 file";
  EXPECT_EQ(seen[3], 1) << "the thread did not get nobody's groups";
  EXPECT_EQ(seen[4], 0) << "the fsuid was not restored";
  EXPECT_EQ(seen[5], 0) << "root's rights did not come back";
}

TEST_F(FsIdentityTest, NullTakesNothingAndRootNeedsNoChange) {
  auto scope = ScopedFsIdentity::Take(nullptr);
  ASSERT_TRUE(scope.ok());
  EXPECT_EQ(OpenErrno(secret_), 0);
  EXPECT_FALSE(NeedsFsIdentity(0));
  EXPECT_TRUE(NeedsFsIdentity(kNobody));
}

TEST_F(FsIdentityTest, ForUserListsTheGroupDatabasesGroups) {
  FsIdentity root = FsIdentity::ForUser(0, 0);
  EXPECT_EQ(root.uid, 0u);
  ASSERT_FALSE(root.groups.empty());
  EXPECT_EQ(root.groups.front(), 0u);
}

}  // namespace
}  // namespace amld::base
