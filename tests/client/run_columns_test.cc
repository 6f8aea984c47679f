#include "client/commands/run_columns.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

namespace amld::client::commands {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Kind = RunColumn::Kind;

RunRow Row(const std::string& id, std::map<std::string, std::string> tags,
           std::map<std::string, double> metrics) {
  RunRow row;
  row.run.set_id(id);
  for (const auto& [k, v] : tags) (*row.run.mutable_config()->mutable_tags())[k] = v;
  row.metrics = std::move(metrics);
  return row;
}

std::vector<std::string> Ids(const std::vector<RunRow>& rows) {
  std::vector<std::string> ids;
  for (const RunRow& r : rows) ids.push_back(r.run.id());
  return ids;
}

TEST(RunColumnsTest, ColumnsReplaceOrAddBeforeTheScript) {
  auto c = ParseRunColumns("id,metric:loss,tag:lr");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(*c, ElementsAre(RunColumn{Kind::kBuiltin, "id"}, RunColumn{Kind::kMetric, "loss"},
                              RunColumn{Kind::kTag, "lr"}));
  c = ParseRunColumns("+metric:loss, +tag:lr");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->size(), 8u);
  EXPECT_EQ((*c)[5], (RunColumn{Kind::kMetric, "loss"}));
  EXPECT_EQ((*c)[6], (RunColumn{Kind::kTag, "lr"}));
  EXPECT_EQ(c->back(), (RunColumn{Kind::kBuiltin, "script"}));
  EXPECT_THAT(ParseRunColumns("id,lsos").status().message(), HasSubstr("unknown column \"lsos\""));
  EXPECT_THAT(ParseRunColumns("metric:").status().message(), HasSubstr("metric:NAME"));
  EXPECT_FALSE(ParseRunColumns(",").ok());
  EXPECT_EQ(ParseRunColumn("RUN")->name, "id");
}

TEST(RunColumnsTest, SortByAMetricPutsRunsWithoutOneLast) {
  std::vector<RunRow> rows = {Row("a", {}, {{"loss", 0.5}}), Row("b", {}, {}),
                              Row("c", {}, {{"loss", 0.1}}), Row("d", {}, {{"loss", NAN}}),
                              Row("e", {}, {{"loss", 0.9}})};
  auto sort = ParseRunSort("metric:loss");
  ASSERT_TRUE(sort.ok());
  SortRunRows(*sort, &rows);
  EXPECT_THAT(Ids(rows), ElementsAre("c", "a", "e", "b", "d"));
  sort = ParseRunSort("-metric:loss");
  ASSERT_TRUE(sort.ok());
  EXPECT_TRUE(sort->descending);
  SortRunRows(*sort, &rows);
  EXPECT_THAT(Ids(rows), ElementsAre("e", "a", "c", "b", "d"));
}

TEST(RunColumnsTest, TagsSortAsNumbersWhenTheyAreAndFilter) {
  std::vector<RunRow> rows = {Row("a", {{"lr", "0.1"}}, {}), Row("b", {{"lr", "0.01"}}, {}),
                              Row("c", {{"lr", "1e-3"}, {"opt", "adam"}}, {}), Row("d", {}, {})};
  SortRunRows(*ParseRunSort("tag:lr"), &rows);
  EXPECT_THAT(Ids(rows), ElementsAre("c", "b", "a", "d"));
  EXPECT_EQ(CellText({Kind::kTag, "lr"}, rows[0]), "1e-3");
  EXPECT_EQ(CellText({Kind::kTag, "lr"}, rows[3]), "-");
  EXPECT_EQ(CellText({Kind::kMetric, "loss"}, rows[3]), "-");

  auto has_opt = ParseTagFilter("opt");
  auto lr = ParseTagFilter("lr=0.1");
  ASSERT_TRUE(has_opt.ok() && lr.ok());
  EXPECT_FALSE(has_opt->value.has_value());
  EXPECT_TRUE(MatchesTags(rows[0].run, {*has_opt}));
  EXPECT_FALSE(MatchesTags(rows[1].run, {*has_opt}));
  EXPECT_FALSE(MatchesTags(rows[0].run, {*has_opt, *lr}));
  EXPECT_TRUE(MatchesTags(rows[2].run, {}));
  EXPECT_FALSE(ParseTagFilter("=x").ok());
}

TEST(RunColumnsTest, LastMetricValuesTakeTheLastNumber) {
  amld::v1::GetMetricsResponse resp;
  auto add = [&](const std::string& name, double v) {
    auto* m = resp.add_metrics();
    m->set_name(name);
    m->set_number(v);
  };
  add("acc", 0.5);
  add("acc", 0.7);
  add("loss", 2);
  auto* text = resp.add_metrics();
  text->set_name("note");
  text->set_text("warm");
  auto last = LastMetricValues(resp);
  EXPECT_EQ(last.size(), 2u);
  EXPECT_EQ(last["acc"], 0.7);
  EXPECT_EQ(CellText({Kind::kMetric, "acc"}, RunRow{{}, last}), "0.7");
}

}  // namespace
}  // namespace amld::client::commands
