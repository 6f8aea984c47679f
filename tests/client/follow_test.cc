// FollowLogs/FollowRun against an in-process Runs service that drops its
// streams: the output is complete and never repeated, each status is
// reported once, and an Interrupt stops a follow that would block.
#include "client/follow.h"

#include <gtest/gtest.h>

#include <thread>

#include "tests/client/fake_services.h"

namespace amld::client {
namespace {

using amld::v1::RunStatus;
using testing::FakeRuns;
using testing::InProcessServer;

const char kLog[] = "epoch 1 loss 0.9\nepoch 2 loss 0.5\nepoch 3 loss 0.2\ndone\n";

class FollowTest : public ::testing::Test {
 protected:
  FollowTest() : runs_(kLog), server_({&runs_}) {
    conn_.socket_path = "/nonexistent/in-process.sock";
    conn_.channel = server_.channel();
  }
  FollowOptions Options() {
    FollowOptions o;
    o.initial_backoff = absl::Milliseconds(1);
    return o;
  }
  absl::StatusOr<std::string> Logs(bool follow, int64_t offset = 0) {
    std::string out;
    auto end = FollowLogs(
        conn_, "r1", "", offset, follow, [&out](std::string_view d) { out.append(d); }, Options());
    if (!end.ok()) return end.status();
    EXPECT_EQ(*end, offset + static_cast<int64_t>(out.size()));
    return out;
  }

  FakeRuns runs_;
  InProcessServer server_;
  Connection conn_;
};

TEST_F(FollowTest, ReadsAFinishedLog) {
  runs_.SetLogExists(true);
  runs_.SetStatus(RunStatus::COMPLETED);
  EXPECT_EQ(*Logs(false), kLog);
  EXPECT_EQ(*Logs(false, 8), std::string(kLog).substr(8));
}

TEST_F(FollowTest, DroppedStreamsResumeWithoutLossOrRepeats) {
  runs_.SetLogExists(true);
  runs_.SetStatus(RunStatus::COMPLETED);
  runs_.SetChunkBytes(5);
  runs_.DropLogStreamsAfter(/*messages=*/3, /*times=*/3);
  auto out = Logs(true);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, kLog);
  const auto offsets = runs_.log_request_offsets();
  ASSERT_GE(offsets.size(), 4u);
  EXPECT_EQ(offsets[0], 0);
  EXPECT_EQ(offsets[1], 15);
  EXPECT_EQ(offsets[2], 30);
  EXPECT_EQ(offsets[3], 45);
}

TEST_F(FollowTest, FollowWaitsForTheLogToAppearAndGrow) {
  std::string out;
  std::thread writer([this] {
    absl::SleepFor(absl::Milliseconds(50));
    runs_.SetStatus(RunStatus::RUNNING);
    runs_.SetLogExists(true);
    absl::SleepFor(absl::Milliseconds(50));
    runs_.AppendLog("late line\n");
    absl::SleepFor(absl::Milliseconds(50));
    runs_.SetStatus(RunStatus::COMPLETED);
  });
  auto end = FollowLogs(
      conn_, "r1", "", 0, true, [&out](std::string_view d) { out.append(d); }, Options());
  writer.join();
  ASSERT_TRUE(end.ok()) << end.status();
  EXPECT_EQ(out, std::string(kLog) + "late line\n");
}

TEST_F(FollowTest, ARunThatNeverWroteALogEndsEmpty) {
  runs_.SetStatus(RunStatus::FAILED);
  auto out = Logs(true);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, "");
}

TEST_F(FollowTest, UnknownRunIsNotFound) {
  auto end = FollowLogs(
      conn_, "nope", "", 0, true, [](std::string_view) {}, Options());
  ASSERT_FALSE(end.ok());
  EXPECT_TRUE(absl::IsNotFound(end.status())) << end.status();
  auto run = FollowRun(conn_, "nope", nullptr, Options());
  EXPECT_TRUE(absl::IsNotFound(run.status())) << run.status();
}

TEST_F(FollowTest, FollowRunReportsEachStatusOnceAcrossDrops) {
  runs_.SetStatus(RunStatus::QUEUED);
  runs_.DropWaitStreamsAfter(/*messages=*/1, /*times=*/2);
  std::vector<RunStatus::Value> seen;
  std::thread driver([this] {
    for (auto s :
         {RunStatus::PREPARING, RunStatus::RUNNING, RunStatus::FINALIZING, RunStatus::COMPLETED}) {
      absl::SleepFor(absl::Milliseconds(30));
      runs_.SetStatus(s);
    }
  });
  auto run = FollowRun(
      conn_, "r1", [&seen](const amld::v1::Run& r) { seen.push_back(r.status()); }, Options());
  driver.join();
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->status(), RunStatus::COMPLETED);
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.back(), RunStatus::COMPLETED);
  for (size_t i = 1; i < seen.size(); ++i) EXPECT_NE(seen[i], seen[i - 1]);
  EXPECT_GE(runs_.wait_calls(), 3);
}

TEST_F(FollowTest, InterruptStopsABlockedFollow) {
  runs_.SetStatus(RunStatus::RUNNING);
  runs_.SetLogExists(true);
  Interrupt interrupt;
  FollowOptions o = Options();
  o.interrupt = &interrupt;
  std::thread stopper([&interrupt] {
    absl::SleepFor(absl::Milliseconds(100));
    interrupt.Trigger();
  });
  std::string out;
  auto end = FollowLogs(
      conn_, "r1", "", 0, true, [&out](std::string_view d) { out.append(d); }, o);
  auto run = FollowRun(conn_, "r1", nullptr, o);
  stopper.join();
  EXPECT_TRUE(absl::IsCancelled(end.status())) << end.status();
  EXPECT_EQ(out, kLog);  // everything written so far was shown
  EXPECT_TRUE(absl::IsCancelled(run.status())) << run.status();
}

TEST_F(FollowTest, GivesUpWhenTheDaemonStaysAway) {
  Connection gone;
  gone.socket_path = "/nonexistent/amld.sock";
  gone.channel = MakeChannel(gone.socket_path);
  FollowOptions o = Options();
  o.reconnect_timeout = absl::Milliseconds(200);
  auto run = FollowRun(gone, "r1", nullptr, o);
  ASSERT_FALSE(run.ok());
  EXPECT_TRUE(absl::IsUnavailable(run.status())) << run.status();
  EXPECT_NE(run.status().message().find("lost connection to amld at /nonexistent/amld.sock"),
            std::string::npos)
      << run.status();
}

}  // namespace
}  // namespace amld::client
