#include "client/commands/run_compare.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

namespace amld::client::commands {
namespace {

using ::testing::ElementsAre;

amld::v1::Run MakeRun(const std::string& id, std::vector<std::string> args,
                      std::map<std::string, std::string> tags) {
  amld::v1::Run r;
  r.set_id(id);
  r.set_status(amld::v1::RunStatus::COMPLETED);
  auto* c = r.mutable_config();
  c->set_experiment_name("exp");
  c->set_script("train.py");
  for (auto& a : args) c->add_arguments(a);
  c->mutable_snapshot_root()->set_hash(std::string(64, 'a'));
  for (const auto& [k, v] : tags) (*r.mutable_tags())[k] = v;
  return r;
}

const CompareRow* Find(const std::vector<CompareRow>& rows, const std::string& label) {
  for (const CompareRow& r : rows) {
    if (r.label == label) return &r;
  }
  return nullptr;
}

TEST(RunCompareTest, ConfigRowsSayWhichFieldsDiffer) {
  auto a = MakeRun("a", {"--lr", "0.1"}, {{"lr", "0.1"}, {"opt", "sgd"}});
  auto b = MakeRun("b", {"--lr", "it's"}, {{"opt", "sgd"}});
  b.mutable_config()->set_compute_target("gpu-box");
  b.mutable_config()->mutable_distributed()->mutable_pytorch()->set_process_count(4);
  b.mutable_config()->mutable_distributed()->mutable_pytorch()->set_node_count(2);
  std::vector<CompareRow> rows = ConfigRows({a, b});

  const CompareRow* args = Find(rows, "arguments");
  ASSERT_NE(args, nullptr);
  EXPECT_TRUE(args->differs);
  EXPECT_THAT(args->values, ElementsAre("--lr 0.1", "--lr 'it'\\''s'"));
  EXPECT_FALSE(Find(rows, "script")->differs);
  EXPECT_FALSE(Find(rows, "snapshot")->differs);
  EXPECT_THAT(Find(rows, "snapshot")->values, ElementsAre("aaaaaaaaaaaa", "aaaaaaaaaaaa"));
  EXPECT_THAT(Find(rows, "compute")->values, ElementsAre("local", "gpu-box"));
  EXPECT_THAT(Find(rows, "distribution")->values,
              ElementsAre("one process", "pytorch (nccl), 4 processes on 2 nodes"));
  // A tag one run lacks differs; one they share does not.
  EXPECT_THAT(Find(rows, "tag lr")->values, ElementsAre("0.1", "-"));
  EXPECT_TRUE(Find(rows, "tag lr")->differs);
  EXPECT_FALSE(Find(rows, "tag opt")->differs);
  // Fields neither run has are left out.
  EXPECT_EQ(Find(rows, "command"), nullptr);
  EXPECT_EQ(Find(rows, "name"), nullptr);
}

TEST(RunCompareTest, OutcomeRowsGiveTheExitOfARunThatFailed) {
  auto a = MakeRun("a", {}, {});
  auto b = MakeRun("b", {}, {});
  b.set_status(amld::v1::RunStatus::FAILED);
  b.set_exit_code(3);
  b.add_history()->set_status(amld::v1::RunStatus::FINALIZING);
  std::vector<CompareRow> rows = OutcomeRows({a, b});
  EXPECT_THAT(Find(rows, "status")->values, ElementsAre("COMPLETED", "FAILED (exit code 3)"));
  EXPECT_THAT(Find(rows, "run time")->values, ElementsAre("-", "-"));
}

amld::v1::Metric* Add(amld::v1::GetMetricsResponse* resp, const std::string& name, double v,
                      int64_t step) {
  auto* m = resp->add_metrics();
  m->set_name(name);
  m->set_number(v);
  m->set_step(step);
  return m;
}

TEST(RunCompareTest, MetricRowsHaveLastMinAndMaxOfEachRun) {
  amld::v1::GetMetricsResponse a, b;
  Add(&a, "loss", 3, 0);
  Add(&a, "loss", NAN, 1);
  Add(&a, "loss", 1, 2);
  Add(&b, "acc", 0.5, 0);
  Add(&b, "loss", 0.75, 0);
  Add(&b, "loss", 2, 1);
  auto* text = b.add_metrics();
  text->set_name("phase");
  text->set_text("warmup");
  std::vector<std::vector<MetricSummary>> per_run = {SummarizeMetrics(a), SummarizeMetrics(b)};
  std::vector<CompareRow> rows = MetricRows(per_run);
  std::vector<std::string> labels;
  for (const CompareRow& r : rows) labels.push_back(r.label);
  EXPECT_THAT(labels, ElementsAre("acc last", "acc min", "acc max", "loss last", "loss min",
                                  "loss max", "phase last"));
  EXPECT_THAT(Find(rows, "acc last")->values, ElementsAre("-", "0.5 (step 0)"));
  EXPECT_THAT(Find(rows, "loss last")->values, ElementsAre("1 (step 2)", "2 (step 1)"));
  // NaN takes no part in min and max.
  EXPECT_THAT(Find(rows, "loss min")->values, ElementsAre("1", "0.75"));
  EXPECT_THAT(Find(rows, "loss max")->values, ElementsAre("3", "2"));
  EXPECT_THAT(Find(rows, "phase last")->values, ElementsAre("-", "warmup (step 0)"));
}

}  // namespace
}  // namespace amld::client::commands
