#include "base/user_names.h"

#include <gtest/gtest.h>
#include <pwd.h>
#include <unistd.h>

namespace amld::base {
namespace {

TEST(LoginNameTest, NamesTheUidsPasswdNames) {
  EXPECT_EQ(LoginName(0), "root");
  const passwd* me = ::getpwuid(::getuid());
  ASSERT_NE(me, nullptr);
  EXPECT_EQ(LoginName(::getuid()), std::string(me->pw_name));
}

TEST(LoginNameTest, IsEmptyForAUidNobodyHas) {
  uid_t unused = 3999999000;
  while (::getpwuid(unused) != nullptr) ++unused;
  EXPECT_EQ(LoginName(unused), std::nullopt);
  EXPECT_EQ(DescribeUser(unused), "uid " + std::to_string(unused));
  EXPECT_EQ(NameOrUid(unused), std::to_string(unused));
}

TEST(DescribeUserTest, GivesTheNameAndTheUid) {
  EXPECT_EQ(DescribeUser(0), "root (uid 0)");
  EXPECT_EQ(NameOrUid(0), "root");
}

}  // namespace
}  // namespace amld::base
