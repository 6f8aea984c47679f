// How `aml` reports a daemon it cannot use (client/grpc_status.h).
#include "client/grpc_status.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "tests/testing/test_util.h"

namespace amld::client {
namespace {

using ::testing::HasSubstr;

TEST(DaemonNotRunningErrorTest, NoSocketIsNotRunning) {
  testing::TempDir dir;
  absl::Status s = DaemonNotRunningError(dir / "amld.sock");
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("not running"));
}

// Issue 19: a daemon of another user refuses the connection (SO_PEERCRED),
// which `aml` reported as "amld is not running".
TEST(DaemonNotRunningErrorTest, AnotherUsersDaemonIsSaidSo) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to make a socket another user's";
  testing::TempDir dir;
  const std::filesystem::path path = dir / "amld.sock";
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::chown(path.c_str(), 65534, 65534), 0);
  absl::Status s = DaemonNotRunningError(path);
  ::close(fd);
  EXPECT_TRUE(absl::IsPermissionDenied(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("belongs to uid 65534"));
  EXPECT_THAT(s.message(), ::testing::Not(HasSubstr("not running")));
}

}  // namespace
}  // namespace amld::client
