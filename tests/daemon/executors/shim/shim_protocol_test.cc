#include "daemon/executors/shim/shim_protocol.h"

#include <unistd.h>

#include <string>

#include "gtest/gtest.h"

namespace amld::daemon::shim {
namespace {

TEST(ExitRecordTest, RoundTrips) {
  ExitRecord r;
  r.exit_code = 3;
  r.signal = 9;
  r.timed_out = true;
  r.canceled = true;
  r.start_time_ns = 1700000000123456789;
  r.end_time_ns = 1700000001123456789;
  r.launch_error = "exec \"py\\thon\": No such file or directory";
  r.user_cpu_ns = 12;
  r.system_cpu_ns = 34;
  r.max_rss_kb = 56;
  std::string text = FormatExitRecord(r);
  EXPECT_EQ(text.back(), '\n');
  std::string error;
  std::optional<ExitRecord> back = ParseExitRecord(text, &error);
  ASSERT_TRUE(back.has_value()) << error;
  EXPECT_EQ(back->exit_code, 3);
  EXPECT_EQ(back->signal, 9);
  EXPECT_TRUE(back->timed_out);
  EXPECT_TRUE(back->canceled);
  EXPECT_EQ(back->start_time_ns, r.start_time_ns);
  EXPECT_EQ(back->end_time_ns, r.end_time_ns);
  EXPECT_EQ(back->launch_error, r.launch_error);
  EXPECT_EQ(back->user_cpu_ns, 12);
  EXPECT_EQ(back->system_cpu_ns, 34);
  EXPECT_EQ(back->max_rss_kb, 56);
}

TEST(ExitRecordTest, InvalidUtf8InLaunchErrorDoesNotBreakTheFile) {
  ExitRecord r;
  r.launch_error = "exec \xff\xfe: No such file or directory";
  std::string error;
  EXPECT_TRUE(ParseExitRecord(FormatExitRecord(r), &error).has_value()) << error;
}

TEST(ExitRecordTest, RejectsGarbageAndWrongTypes) {
  std::string error;
  EXPECT_FALSE(ParseExitRecord("", &error).has_value());
  EXPECT_FALSE(ParseExitRecord("{\"version\":1,\"exit_code\":", &error).has_value());
  EXPECT_FALSE(ParseExitRecord("[1]", &error).has_value());
  EXPECT_FALSE(ParseExitRecord("{\"version\":2}", &error).has_value());
  EXPECT_NE(error.find("version"), std::string::npos);
  EXPECT_FALSE(ParseExitRecord("{\"version\":1,\"exit_code\":\"3\"}", &error).has_value());
  EXPECT_NE(error.find("exit_code"), std::string::npos);
}

TEST(ProcessStartTimeTest, SelfMatchesPidAndMissingProcessIsNullopt) {
  std::optional<uint64_t> self = ReadProcessStartTime(0);
  ASSERT_TRUE(self.has_value());
  EXPECT_GT(*self, 0u);
  EXPECT_EQ(ReadProcessStartTime(::getpid()), self);
  // Above pid_max (at most 2^22), so no such process can exist.
  EXPECT_FALSE(ReadProcessStartTime(1 << 23).has_value());
}

}  // namespace
}  // namespace amld::daemon::shim
