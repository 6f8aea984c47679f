#include "daemon/scheduler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace amld::daemon {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

TEST(SchedulerTest, StartsOldestFirstUpToTheSlotLimit) {
  Scheduler s(2);
  s.Enqueue("a");
  s.Enqueue("b");
  s.Enqueue("c");
  EXPECT_THAT(s.TakeStartable(), ElementsAre("a", "b"));
  EXPECT_THAT(s.TakeStartable(), IsEmpty());
  EXPECT_EQ(s.holding_slots(), 2);
  EXPECT_EQ(s.queued(), 1);
  EXPECT_TRUE(s.Release("b"));
  EXPECT_THAT(s.TakeStartable(), ElementsAre("c"));
  EXPECT_THAT(s.TakeStartable(), IsEmpty());
}

TEST(SchedulerTest, ACanceledQueuedRunNeverStarts) {
  Scheduler s(1);
  s.Enqueue("a");
  s.Enqueue("b");
  s.Enqueue("c");
  EXPECT_THAT(s.TakeStartable(), ElementsAre("a"));
  EXPECT_TRUE(s.RemoveQueued("b"));
  EXPECT_FALSE(s.RemoveQueued("b"));
  EXPECT_FALSE(s.RemoveQueued("a"));  // holds a slot, not queued
  s.Release("a");
  EXPECT_THAT(s.TakeStartable(), ElementsAre("c"));
}

TEST(SchedulerTest, AdoptedRunsHoldSlotsEvenBeyondTheLimit) {
  Scheduler s(1);
  s.Adopt("old1");
  s.Adopt("old2");
  s.Enqueue("new");
  EXPECT_THAT(s.TakeStartable(), IsEmpty());
  s.Release("old1");
  EXPECT_THAT(s.TakeStartable(), IsEmpty());  // still one holding, limit 1
  s.Release("old2");
  EXPECT_THAT(s.TakeStartable(), ElementsAre("new"));
}

TEST(SchedulerTest, EnqueueTwiceAndReleaseUnknownAreHarmless) {
  Scheduler s(0);  // treated as 1
  EXPECT_EQ(s.slots(), 1);
  s.Enqueue("a");
  s.Enqueue("a");
  EXPECT_EQ(s.queued(), 1);
  EXPECT_THAT(s.TakeStartable(), ElementsAre("a"));
  s.Enqueue("a");  // holds a slot already
  EXPECT_EQ(s.queued(), 0);
  EXPECT_FALSE(s.Release("zzz"));
}

}  // namespace
}  // namespace amld::daemon
