#include "client/commands/output.h"

#include <google/protobuf/timestamp.pb.h>
#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>
#include <sstream>

namespace amld::client::commands {
namespace {

using amld::v1::RunStatus;

TEST(OutputTest, StatusNamesParseCaseInsensitively) {
  EXPECT_EQ(*ParseStatusName("running"), RunStatus::RUNNING);
  EXPECT_EQ(*ParseStatusName("Completed"), RunStatus::COMPLETED);
  auto bad = ParseStatusName("done");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("QUEUED, PREPARING"), std::string::npos);
  EXPECT_FALSE(ParseStatusName("unknown").ok());
}

TEST(OutputTest, HumanDurations) {
  EXPECT_EQ(HumanDuration(absl::Milliseconds(850)), "850ms");
  EXPECT_EQ(HumanDuration(absl::Milliseconds(12340)), "12.3s");
  EXPECT_EQ(HumanDuration(absl::Seconds(245)), "4m05s");
  EXPECT_EQ(HumanDuration(absl::Minutes(123)), "2h03m");
}

TEST(OutputTest, Bytes) {
  EXPECT_EQ(HumanBytes(512), "512 B");
  EXPECT_EQ(HumanBytes(1536), "1.5 KiB");
  EXPECT_EQ(HumanBytes(12 << 20), "12.0 MiB");
}

TEST(OutputTest, TablesFitTheWidthByCuttingTheLastColumnAndColourStatuses) {
  std::ostringstream out;
  TableStyle style;
  style.width = 24;
  style.colour = true;
  style.status_column = 1;
  PrintTable(out, {"RUN", "STATUS", "SCRIPT"},
             {{"r1", "FAILED", "train.py --lr 0.1 --batch 64"}, {"r2", "QUEUED", "a.py"}}, style);
  EXPECT_EQ(out.str(),
            "RUN  STATUS  SCRIPT\n"
            "r1   \033[31mFAILED\033[0m  train.py -\u2026\n"
            "r2   QUEUED  a.py\n");
  // Every line within the width, once the colour codes are left out.
  std::istringstream lines(out.str());
  for (std::string line; std::getline(lines, line);) {
    for (const char* code : {"\033[31m", "\033[0m"}) {
      for (size_t p; (p = line.find(code)) != std::string::npos;) line.erase(p, strlen(code));
    }
    size_t cells = 0;
    for (char c : line) cells += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
    EXPECT_LE(cells, 24u) << line;
  }
}

TEST(OutputTest, ShrinkWidestNarrowsEveryWideColumnSoEachStaysInView) {
  std::ostringstream out;
  TableStyle style;
  style.width = 40;
  style.shrink_widest = true;
  PrintTable(out, {"RUN", "run_a", "run_b"},
             {{"interpreter", "/home/u/venv/bin/python3 (subé)", "/usr/bin/python3"},
              {"lr", "0.1", "0.01"}},
             style);
  EXPECT_EQ(out.str(),
            "RUN          run_a         run_b\n"
            "interpreter  /home/u/ven\u2026  /usr/bin/pyt\u2026\n"
            "lr           0.1           0.01\n");
  // Narrow enough, nothing is cut.
  std::ostringstream wide;
  style.width = 200;
  PrintTable(wide, {"RUN", "a"}, {{"lr", "/home/u/venv/bin/python3"}}, style);
  EXPECT_EQ(wide.str(), "RUN  a\nlr   /home/u/venv/bin/python3\n");
}

TEST(OutputTest, JsonHasNumbersAsNumbersLocalAndNoExitCodeBeforeTheEnd) {
  amld::v1::Run run;
  run.set_id("r1");
  run.set_status(RunStatus::RUNNING);
  run.mutable_config()->set_max_run_duration_seconds(5400);
  run.mutable_config()->mutable_snapshot_root()->set_size_bytes(1234);
  auto j = nlohmann::json::parse(ProtoToJson(run));
  EXPECT_EQ(j["config"]["max_run_duration_seconds"], 5400);
  EXPECT_EQ(j["config"]["snapshot_root"]["size_bytes"], 1234);
  EXPECT_EQ(j["config"]["compute_target"], "local");
  EXPECT_TRUE(j["exit_code"].is_null()) << j.dump();
  run.set_status(RunStatus::FAILED);
  run.set_exit_code(3);
  j = nlohmann::json::parse(ProtoToJson(run));
  EXPECT_EQ(j["exit_code"], 3);
}

TEST(OutputTest, TableColumnsAlign) {
  std::ostringstream out;
  PrintTable(out, {"RUN", "STATUS"}, {{"a_1", "RUNNING"}, {"bb_22", "QUEUED"}});
  EXPECT_EQ(out.str(), "RUN    STATUS\na_1    RUNNING\nbb_22  QUEUED\n");
}

amld::v1::Run RunWithHistory() {
  amld::v1::Run run;
  run.set_id("exp_1_abcd");
  run.set_status(RunStatus::FAILED);
  run.set_error("exit code 3");
  run.set_exit_code(3);
  auto add = [&run](RunStatus::Value s, int64_t secs) {
    auto* t = run.add_history();
    t->set_status(s);
    t->mutable_time()->set_seconds(secs);
  };
  add(RunStatus::QUEUED, 100);
  add(RunStatus::RUNNING, 101);
  add(RunStatus::FINALIZING, 111);
  add(RunStatus::FAILED, 112);
  return run;
}

TEST(OutputTest, DurationRunsFromRunningToTheEnd) {
  auto run = RunWithHistory();
  EXPECT_EQ(RunDuration(run), absl::Seconds(10));
  EXPECT_EQ(StatusWithError(run), "FAILED (exit code 3)");
  ASSERT_NE(TransitionTime(run, RunStatus::RUNNING), nullptr);
  EXPECT_EQ(TransitionTime(run, RunStatus::CANCELED), nullptr);
}

TEST(OutputTest, QueueWaitAndExitStatus) {
  auto run = RunWithHistory();
  EXPECT_EQ(QueueWait(run), absl::Seconds(1));  // QUEUED at 100, the next status at 101
  EXPECT_EQ(ExitStatusText(run), "exit code 3");
  run.set_exit_signal(9);
  EXPECT_EQ(ExitStatusText(run), "signal 9 (SIGKILL)");

  amld::v1::Run canceled_in_queue;
  for (auto [s, secs] : {std::pair{RunStatus::QUEUED, 10}, {RunStatus::CANCELED, 15}}) {
    auto* t = canceled_in_queue.add_history();
    t->set_status(s);
    t->mutable_time()->set_seconds(secs);
  }
  EXPECT_EQ(QueueWait(canceled_in_queue), absl::Seconds(5));
  EXPECT_EQ(ExitStatusText(canceled_in_queue), "");  // it never ran

  // Issue 19: a run whose supervisor was lost has no exit code, not 0.
  run.set_exit_signal(0);
  run.clear_exit_code();
  EXPECT_EQ(ExitStatusText(run), "exit code lost");
}

TEST(OutputTest, JsonUsesProtoFieldNamesAndPrintsDefaults) {
  auto run = RunWithHistory();
  const std::string json = ProtoToJson(run);
  EXPECT_NE(json.find("\"exit_code\": 3"), std::string::npos) << json;
  EXPECT_NE(json.find("\"exit_signal\": 0"), std::string::npos) << json;
  EXPECT_NE(json.find("\"status\": \"FAILED\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"time\": \"1970-01-01T00:01:41Z\""), std::string::npos) << json;
}

}  // namespace
}  // namespace amld::client::commands
