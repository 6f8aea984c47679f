// Every form a person writes a duration in, and the mistakes it refuses.
#include "base/parse_duration.h"

#include <gtest/gtest.h>

namespace amld::base {
namespace {

TEST(ParseDurationTest, AcceptsTheWrittenForms) {
  EXPECT_EQ(*ParseDurationSeconds("90"), 90);
  EXPECT_EQ(*ParseDurationSeconds("0"), 0);
  EXPECT_EQ(*ParseDurationSeconds("90s"), 90);
  EXPECT_EQ(*ParseDurationSeconds("15m"), 900);
  EXPECT_EQ(*ParseDurationSeconds("1h"), 3600);
  EXPECT_EQ(*ParseDurationSeconds("1h30m"), 5400);
  EXPECT_EQ(*ParseDurationSeconds("2d3h4m5s"), 2 * 86400 + 3 * 3600 + 4 * 60 + 5);
  EXPECT_EQ(*ParseDurationSeconds("1:30:00"), 5400);
  EXPECT_EQ(*ParseDurationSeconds("1:30"), 90);
  EXPECT_EQ(*ParseDurationSeconds("100:00:00"), 360000);
}

TEST(ParseDurationTest, RefusesWhatIsNotADuration) {
  for (const char* bad : {"", "-5", "1.5h", "1h30", "30m1h", "1h1h", "5x", "h", "1::00", "1:60",
                          "1:2:3:4", ":30", "1:30:", "99999999999999999999", "1 h"}) {
    auto got = ParseDurationSeconds(bad);
    EXPECT_FALSE(got.ok()) << bad << " -> " << *got;
    if (!got.ok()) {
      EXPECT_NE(got.status().message().find("1h30m"), std::string::npos) << got.status();
    }
  }
}

}  // namespace
}  // namespace amld::base
