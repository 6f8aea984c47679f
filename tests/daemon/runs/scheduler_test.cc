#include "daemon/runs/scheduler.h"

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

QueueRequest Req(int priority, uint32_t user, int cpus = 1, int gpus = 0) {
  return QueueRequest{priority, user, RunResources{cpus, gpus}};
}

TEST(SchedulerTest, HigherPriorityStartsFirstAndFifoWithinAPriority) {
  Scheduler s(1);
  s.Enqueue("low", Req(-5, 1));
  s.Enqueue("mid1", Req(0, 1));
  s.Enqueue("high", Req(10, 1));
  s.Enqueue("mid2", Req(0, 1));
  std::vector<std::string> order;
  for (int i = 0; i < 4; ++i) {
    std::vector<std::string> started = s.TakeStartable();
    ASSERT_EQ(started.size(), 1u);
    order.push_back(started[0]);
    EXPECT_THAT(s.TakeStartable(), IsEmpty());  // one slot
    s.Release(started[0]);
  }
  EXPECT_THAT(order, ElementsAre("high", "mid1", "mid2", "low"));
}

TEST(SchedulerTest, UsersTakeTurnsAmongRunsOfEqualPriority) {
  Scheduler s(1);
  for (const char* id : {"a1", "a2", "a3"}) s.Enqueue(id, Req(0, 1000));
  for (const char* id : {"b1", "b2"}) s.Enqueue(id, Req(0, 2000));
  s.Enqueue("c1", Req(0, 3000));
  std::vector<std::string> order;
  while (s.queued() > 0) {
    std::vector<std::string> started = s.TakeStartable();
    ASSERT_EQ(started.size(), 1u);
    order.push_back(started[0]);
    s.Release(started[0]);
    if (started[0] == "a2") s.Enqueue("d1", Req(0, 4000));  // a newcomer goes next
  }
  EXPECT_THAT(order, ElementsAre("a1", "b1", "c1", "a2", "d1", "b2", "a3"));
}

TEST(SchedulerTest, PriorityWinsOverTurns) {
  Scheduler s(1);
  s.Enqueue("a1", Req(0, 1));
  s.Enqueue("a2", Req(1, 1));
  s.Enqueue("b1", Req(0, 2));
  EXPECT_THAT(s.TakeStartable(), ElementsAre("a2"));
  s.Release("a2");
  EXPECT_THAT(s.TakeStartable(), ElementsAre("b1"));  // a was served last
  s.Release("b1");
  EXPECT_THAT(s.TakeStartable(), ElementsAre("a1"));
}

TEST(SchedulerTest, GpusAreNeverSharedAndGoLowestFirst) {
  Scheduler s(TargetCapacity{3, 8, {0, 1, 2}});
  s.Enqueue("one", Req(0, 1, 1, 1));
  s.Enqueue("two", Req(0, 1, 1, 2));
  s.Enqueue("again", Req(0, 1, 1, 1));
  EXPECT_THAT(s.TakeStartable(), ElementsAre("one", "two"));
  EXPECT_THAT(s.GpusOf("one"), ElementsAre(0));
  EXPECT_THAT(s.GpusOf("two"), ElementsAre(1, 2));
  EXPECT_THAT(s.free_gpus(), IsEmpty());
  EXPECT_THAT(s.TakeStartable(), IsEmpty());  // a slot is free, no GPU is
  s.Release("two");
  EXPECT_THAT(s.free_gpus(), ElementsAre(1, 2));
  EXPECT_THAT(s.TakeStartable(), ElementsAre("again"));
  EXPECT_THAT(s.GpusOf("again"), ElementsAre(1));
  EXPECT_THAT(s.GpusOf("two"), IsEmpty());
  EXPECT_THAT(s.free_gpus(), ElementsAre(2));
}

TEST(SchedulerTest, GpusFollowTheConfiguredOrder) {
  Scheduler s(TargetCapacity{4, 4, {3, 1}});
  s.Enqueue("a", Req(0, 1, 1, 1));
  EXPECT_THAT(s.TakeStartable(), ElementsAre("a"));
  EXPECT_THAT(s.GpusOf("a"), ElementsAre(3));
}

TEST(SchedulerTest, CpuSlotsAddUp) {
  Scheduler s(TargetCapacity{10, 4, {}});
  s.Enqueue("three", Req(0, 1, 3));
  s.Enqueue("two", Req(0, 1, 2));
  s.Enqueue("one", Req(0, 1, 1));
  EXPECT_THAT(s.TakeStartable(), ElementsAre("three"));
  EXPECT_EQ(s.free_cpus(), 1);
  s.Release("three");
  EXPECT_THAT(s.TakeStartable(), ElementsAre("two", "one"));
  EXPECT_EQ(s.free_cpus(), 1);
}

TEST(SchedulerTest, TheHeadOfTheQueueBlocksSmallerRunsBehindIt) {
  Scheduler s(TargetCapacity{4, 4, {0, 1}});
  s.Enqueue("small", Req(0, 1, 1, 1));
  s.Enqueue("big", Req(0, 1, 1, 2));
  s.Enqueue("cpu-only", Req(0, 1, 1, 0));
  EXPECT_THAT(s.TakeStartable(), ElementsAre("small"));
  // "big" needs both GPUs; "cpu-only" would fit but waits behind it.
  EXPECT_THAT(s.TakeStartable(), IsEmpty());
  EXPECT_TRUE(s.IsQueued("cpu-only"));
  s.Release("small");
  EXPECT_THAT(s.TakeStartable(), ElementsAre("big", "cpu-only"));
}

TEST(SchedulerTest, RequestsLargerThanTheTargetAreRefusedNotQueued) {
  Scheduler s(TargetCapacity{2, 4, {0, 1}});
  EXPECT_TRUE(s.CheckFits({4, 2}).ok());
  absl::Status cpus = s.CheckFits({5, 0});
  EXPECT_EQ(cpus.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(cpus.message()), ::testing::HasSubstr("asks for 5 CPU slots"));
  EXPECT_THAT(std::string(cpus.message()), ::testing::HasSubstr("has 4"));
  absl::Status gpus = s.CheckFits({1, 3});
  EXPECT_EQ(gpus.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(gpus.message()), ::testing::HasSubstr("has 2 (ids 0,1)"));
  EXPECT_EQ(s.CheckFits({1, -1}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.CheckFits(NormalizeResources(-2, 0)).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(NormalizeResources(0, 0).cpus, 1);
  EXPECT_FALSE(s.Enqueue("huge", Req(0, 1, 1, 3)));
  EXPECT_EQ(s.queued(), 0);
  EXPECT_EQ(Scheduler(TargetCapacity{1, 1, {}}).CheckFits({1, 1}).message(),
            "the run asks for 1 GPUs but the local target has 0; ask for at most 0 (the "
            "daemon's amld.yaml lists them under `gpus`)");
}

TEST(SchedulerTest, AdoptedRunsKeepTheirGpus) {
  Scheduler s(TargetCapacity{4, 4, {0, 1, 2}});
  s.Adopt("old", RunResources{1, 2}, {2, 0});
  EXPECT_THAT(s.GpusOf("old"), ElementsAre(2, 0));
  EXPECT_THAT(s.free_gpus(), ElementsAre(1));
  s.Enqueue("new1", Req(0, 1, 1, 1));
  s.Enqueue("new2", Req(0, 1, 1, 1));
  EXPECT_THAT(s.TakeStartable(), ElementsAre("new1"));
  EXPECT_THAT(s.GpusOf("new1"), ElementsAre(1));
  s.Release("old");
  EXPECT_THAT(s.TakeStartable(), ElementsAre("new2"));
  EXPECT_THAT(s.GpusOf("new2"), ElementsAre(0));
}

TEST(SchedulerTest, AdoptedRunsMayExceedTheCpusAndHoldGpusNoLongerConfigured) {
  Scheduler s(TargetCapacity{4, 2, {0}});
  s.Adopt("a", RunResources{2, 1}, {7});  // GPU 7 was configured before
  s.Adopt("b", RunResources{2, 0}, {});
  EXPECT_EQ(s.free_cpus(), 0);
  EXPECT_THAT(s.free_gpus(), ElementsAre(0));
  s.Enqueue("new", Req(0, 1, 1, 1));
  EXPECT_THAT(s.TakeStartable(), IsEmpty());
  s.Release("a");
  EXPECT_THAT(s.TakeStartable(), IsEmpty());  // b still holds both CPU slots
  s.Release("b");
  EXPECT_THAT(s.TakeStartable(), ElementsAre("new"));
  EXPECT_THAT(s.GpusOf("new"), ElementsAre(0));
}


TEST(SchedulerTest, AUserAtTheRunCapIsPassedOverNotBlockingOthers) {
  UserLimits limits;
  limits.max_running_runs = 2;
  Scheduler s(TargetCapacity{4, 4, {}}, limits);
  for (const char* id : {"a1", "a2", "a3", "a4"}) s.Enqueue(id, Req(0, 1000));
  s.Enqueue("b1", Req(0, 2000));
  // a1, then b1 (turns), then a2; a3 waits: its user holds 2.
  EXPECT_THAT(s.TakeStartable(), ElementsAre("a1", "b1", "a2"));
  EXPECT_THAT(s.TakeStartable(), IsEmpty());
  EXPECT_EQ(s.holding_slots(), 3);  // a slot is free, a's cap keeps it so
  s.Enqueue("b2", Req(0, 2000));
  EXPECT_THAT(s.TakeStartable(), ElementsAre("b2"));  // b goes past a3
  s.Release("a1");
  EXPECT_THAT(s.TakeStartable(), ElementsAre("a3"));
  std::vector<UserUsage> usage = s.Usage();
  ASSERT_EQ(usage.size(), 2u);
  EXPECT_EQ(usage[0].user, 1000u);
  EXPECT_EQ(usage[0].running, 2);
  EXPECT_EQ(usage[0].queued, 1);
  EXPECT_EQ(usage[1].user, 2000u);
  EXPECT_EQ(usage[1].running, 2);
  EXPECT_EQ(usage[1].queued, 0);
}

TEST(SchedulerTest, AUserAtTheGpuCapIsPassedOverAndLargerRequestsAreRefused) {
  UserLimits limits;
  limits.max_gpus = 2;
  Scheduler s(TargetCapacity{4, 4, {0, 1, 2, 3}}, limits);
  EXPECT_FALSE(s.CheckFits(RunResources{1, 3}).ok());
  EXPECT_THAT(std::string(s.CheckFits(RunResources{1, 3}).message()),
              ::testing::HasSubstr("per_user.max_gpus"));
  EXPECT_FALSE(s.Enqueue("too-big", Req(0, 1000, 1, 3)));
  s.Enqueue("a1", Req(0, 1000, 1, 2));
  s.Enqueue("a2", Req(0, 1000, 1, 1));
  s.Enqueue("b1", Req(0, 2000, 1, 1));
  EXPECT_THAT(s.TakeStartable(), ElementsAre("a1", "b1"));
  EXPECT_THAT(s.free_gpus(), ElementsAre(3));
  s.Release("a1");
  EXPECT_THAT(s.TakeStartable(), ElementsAre("a2"));
}

TEST(SchedulerTest, AdoptedRunsCountTowardsTheirUsersCap) {
  UserLimits limits;
  limits.max_running_runs = 1;
  Scheduler s(TargetCapacity{4, 4, {}}, limits);
  s.Adopt("old", RunResources{1, 0}, {}, 1000);
  s.Enqueue("a1", Req(0, 1000));
  EXPECT_THAT(s.TakeStartable(), IsEmpty());
  s.Release("old");
  EXPECT_THAT(s.TakeStartable(), ElementsAre("a1"));
}

}  // namespace
}  // namespace amld::daemon
