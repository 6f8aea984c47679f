// FollowLogs/FollowRun against an in-process Runs service that drops its
// streams: the output is complete and never repeated, each status is
// reported once, and an Interrupt stops a follow that would block.
#include "client/follow.h"

#include <gtest/gtest.h>

#include <thread>

#include "absl/synchronization/mutex.h"
#include "tests/client/fake_services.h"
#include "tests/testing/test_util.h"

namespace amld::client {
namespace {

using amld::testing::Eventually;
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
  absl::Mutex mu;
  std::string out;
  auto shown = [&] {
    absl::MutexLock lock(&mu);
    return out;
  };
  // Each step waits until the follower has seen the one before.
  std::thread writer([&] {
    EXPECT_TRUE(Eventually([&] { return !runs_.log_request_offsets().empty(); }))
        << "the follower never asked for the missing log";
    runs_.SetStatus(RunStatus::RUNNING);
    runs_.SetLogExists(true);
    EXPECT_TRUE(Eventually([&] { return shown() == kLog; }));
    runs_.AppendLog("late line\n");
    EXPECT_TRUE(Eventually([&] { return shown() == std::string(kLog) + "late line\n"; }));
    runs_.SetStatus(RunStatus::COMPLETED);
  });
  auto end = FollowLogs(
      conn_, "r1", "", 0, true,
      [&](std::string_view d) {
        absl::MutexLock lock(&mu);
        out.append(d);
      },
      Options());
  writer.join();
  ASSERT_TRUE(end.ok()) << end.status();
  EXPECT_EQ(shown(), std::string(kLog) + "late line\n");
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
  absl::Mutex mu;
  std::vector<RunStatus::Value> seen;
  // Each status changes only once the follower has reported the one before,
  // so every change meets a stream (the first two of which drop).
  std::thread driver([&] {
    RunStatus::Value now = RunStatus::QUEUED;
    for (auto s :
         {RunStatus::PREPARING, RunStatus::RUNNING, RunStatus::FINALIZING, RunStatus::COMPLETED}) {
      EXPECT_TRUE(Eventually([&] {
        absl::MutexLock lock(&mu);
        return !seen.empty() && seen.back() == now;
      })) << RunStatus::Value_Name(now)
          << " was never reported";
      runs_.SetStatus(now = s);
    }
  });
  auto run = FollowRun(
      conn_, "r1",
      [&](const amld::v1::Run& r) {
        absl::MutexLock lock(&mu);
        seen.push_back(r.status());
      },
      Options());
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
  absl::Mutex mu;
  std::string out;
  // Once the whole log is shown, the follow blocks waiting for more.
  std::thread stopper([&] {
    EXPECT_TRUE(Eventually([&] {
      absl::MutexLock lock(&mu);
      return out == kLog;
    }));
    interrupt.Trigger();
  });
  auto end = FollowLogs(
      conn_, "r1", "", 0, true,
      [&](std::string_view d) {
        absl::MutexLock lock(&mu);
        out.append(d);
      },
      o);
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

TEST_F(FollowTest, ConnectWhenUpWaitsForTheTimeoutAndSaysSoOnce) {
  FollowOptions o = Options();
  o.reconnect_timeout = absl::Milliseconds(200);
  int told = 0;
  const absl::Time start = absl::Now();
  auto conn = ConnectWhenUp("/nonexistent/amld.sock", o, [&told](const absl::Status& s) {
    EXPECT_TRUE(absl::IsUnavailable(s)) << s;
    ++told;
  });
  ASSERT_FALSE(conn.ok());
  EXPECT_TRUE(absl::IsUnavailable(conn.status())) << conn.status();
  EXPECT_EQ(told, 1);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(200)) << "it tried until the timeout";
}

}  // namespace
}  // namespace amld::client
