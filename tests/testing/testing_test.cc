// The shared helpers themselves: Eventually waits for the condition (not for
// a time) and says what failed, TempDir cleans up, FakeClock only moves when
// stepped, FakeExecutor reports what the test tells it to.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "tests/testing/fake_clock.h"
#include "tests/testing/fake_executor.h"
#include "tests/testing/test_util.h"

namespace amld::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(EventuallyTest, ReturnsOnceAnotherThreadMadeTheConditionTrue) {
  std::atomic<bool> done = false;
  std::thread other([&] { done = true; });
  EXPECT_TRUE(Eventually([&] { return done.load(); }));
  other.join();
}

TEST(EventuallyTest, FailsAfterTheTimeoutSayingHowLongItWaited) {
  int calls = 0;
  ::testing::AssertionResult r = Eventually(
      [&] {
        ++calls;
        return false;
      },
      absl::Milliseconds(30));
  EXPECT_FALSE(r);
  EXPECT_THAT(r.message(), HasSubstr("still false after waiting 30ms"));
  EXPECT_GT(calls, 1);
}

TEST(TempDirTest, IsAFreshFolderRemovedWithItsContents) {
  fs::path kept;
  {
    TempDir dir("amld-testing-test-");
    kept = dir.path();
    EXPECT_TRUE(fs::is_directory(kept));
    EXPECT_EQ(kept.parent_path(), "/tmp");
    WriteFile(dir / "a/b.txt", "hello", 0600);
    EXPECT_EQ(ReadFile(dir / "a/b.txt"), "hello");
    EXPECT_EQ(fs::status(dir / "a/b.txt").permissions(),
              fs::perms::owner_read | fs::perms::owner_write);
    EXPECT_EQ(ReadFile(dir / "missing"), "");
  }
  EXPECT_FALSE(fs::exists(kept));
}

TEST(FakeClockTest, MovesOnlyWhenStepped) {
  FakeClock clock;
  const absl::Time start = clock.Now();
  EXPECT_EQ(start, absl::FromUnixSeconds(FakeClock::kStartUnixSeconds));
  EXPECT_EQ(clock.Now(), start);
  clock.Advance(absl::Seconds(5));
  EXPECT_EQ(clock.Now(), start + absl::Seconds(5));
}

TEST(FakeExecutorTest, RecordsCallsAndReportsTheEndsTheTestDecides) {
  FakeExecutor executor("ssh-a");
  std::vector<std::string> ended;
  executor.SetExitCallback([&](const std::string& id, absl::StatusOr<daemon::ExitStatus> e) {
    ended.push_back(id + (e.ok() ? " exit " + std::to_string(e->exit_code) : " lost"));
  });
  daemon::LaunchSpec spec;
  spec.run_id = "r1";
  absl::StatusOr<std::string> handle = executor.Launch(spec);
  ASSERT_TRUE(handle.ok());
  EXPECT_EQ(*handle, "handle:r1");
  EXPECT_EQ(executor.Placement("r1", *handle), "ssh-a:handle:r1");
  EXPECT_EQ(FakeExecutor().Placement("r1", *handle), "local");
  ASSERT_TRUE(executor.Reattach("r2", "/nowhere", "h2").ok());
  ASSERT_TRUE(executor.Cancel("r1").ok());
  executor.ExitCode("r1", 3);
  executor.Exit("r2", absl::InternalError("supervisor lost"));
  EXPECT_THAT(executor.launched, ElementsAre("r1"));
  EXPECT_THAT(executor.reattached, ElementsAre("r2 h2"));
  EXPECT_THAT(executor.canceled, ElementsAre("r1"));
  EXPECT_THAT(ended, ElementsAre("r1 exit 3", "r2 lost"));
}

}  // namespace
}  // namespace amld::testing
