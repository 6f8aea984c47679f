// The metrics line format and the tail that reads AMLD_METRICS_FILE: parsing
// every value kind, steps and times filled in, partial and malformed lines,
// and resuming after a restart without storing anything twice. Real files on
// a temp dir.
#include "daemon/ingest/metrics_tail.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <fstream>

#include "base/file_util.h"
#include "tests/testing/test_util.h"

namespace amld::daemon {
namespace {

using amld::v1::Metric;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using testing::TempDir;

const absl::Time kNow = absl::FromUnixSeconds(1750000000) + absl::Milliseconds(250);

Metric Parse(absl::string_view line, const absl::flat_hash_map<std::string, int64_t>& counts = {}) {
  absl::StatusOr<Metric> m = ParseMetricLine(line, kNow, counts);
  EXPECT_TRUE(m.ok()) << line << ": " << m.status();
  return m.ok() ? *m : Metric();
}

std::string ParseError(absl::string_view line) {
  absl::StatusOr<Metric> m = ParseMetricLine(line, kNow, {});
  EXPECT_FALSE(m.ok()) << line;
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument) << line;
  return std::string(m.status().message());
}

TEST(ParseMetricLineTest, NumbersTextsStepsAndTimes) {
  Metric loss = Parse(R"({"name": "loss", "value": 0.25, "step": 3, "time": 1700000000.5})");
  EXPECT_EQ(loss.name(), "loss");
  EXPECT_EQ(loss.number(), 0.25);
  EXPECT_EQ(loss.step(), 3);
  EXPECT_EQ(loss.time().seconds(), 1700000000);
  EXPECT_EQ(loss.time().nanos(), 500000000);

  EXPECT_EQ(loss.value_type(), Metric::VALUE_FLOAT_OR_TEXT);

  Metric integer = Parse(R"({"name": "epochs", "value": 12})");
  EXPECT_EQ(integer.value_case(), Metric::kNumber);
  EXPECT_EQ(integer.number(), 12.0);
  EXPECT_EQ(integer.value_type(), Metric::VALUE_INTEGER);

  Metric text = Parse(R"({"name": "phase", "value": "warm-up \u00e9", "description": "ignored"})");
  EXPECT_EQ(text.value_case(), Metric::kText);
  EXPECT_EQ(text.text(), "warm-up \xc3\xa9");
}

// azureml gives booleans and None back as logged: they keep their type
// beside a number every other reader understands (1, 0, NaN).
TEST(ParseMetricLineTest, BooleansAndNullKeepTheirType) {
  Metric yes = Parse(R"({"name": "converged", "value": true})");
  EXPECT_EQ(yes.number(), 1.0);
  EXPECT_EQ(yes.value_type(), Metric::VALUE_BOOLEAN);
  EXPECT_EQ(Parse(R"({"name": "converged", "value": false})").number(), 0.0);
  Metric none = Parse(R"({"name": "best", "value": null})");
  EXPECT_TRUE(std::isnan(none.number()));
  EXPECT_EQ(none.value_type(), Metric::VALUE_NONE);
}

TEST(ParseMetricLineTest, ATableColumnValueNamesItsTable) {
  Metric cell = Parse(R"({"name": "Y over X/x", "table": "Y over X", "value": 1, "step": 4})");
  EXPECT_EQ(cell.table(), "Y over X");
  EXPECT_EQ(cell.step(), 4);
  EXPECT_EQ(Parse(R"({"name": "a/b", "value": 1})").table(), "");
  EXPECT_THAT(ParseError(R"({"name": "a/b", "table": "c", "value": 1})"),
              HasSubstr("\"name\" \"<table>/<column>\""));
  EXPECT_THAT(ParseError(R"({"name": "a/", "table": "a", "value": 1})"), HasSubstr("\"table\""));
  EXPECT_THAT(ParseError(R"({"name": "a/b", "table": 3, "value": 1})"), HasSubstr("\"table\""));
}

TEST(ParseMetricLineTest, AMissingStepCountsEarlierValuesAndAMissingTimeIsNow) {
  Metric first = Parse(R"({"name": "acc", "value": 0.5})");
  EXPECT_EQ(first.step(), 0);
  EXPECT_EQ(first.time().seconds(), 1750000000);
  EXPECT_EQ(first.time().nanos(), 250000000);
  Metric fourth = Parse(R"({"name": "acc", "value": 0.7, "step": null})", {{"acc", 3}, {"x", 9}});
  EXPECT_EQ(fourth.step(), 3);
}

TEST(ParseMetricLineTest, NonFiniteNumbersAsPythonWritesThem) {
  EXPECT_TRUE(std::isnan(Parse(R"({"name": "loss", "value": NaN})").number()));
  EXPECT_EQ(Parse(R"({"name": "loss", "value": Infinity})").number(), INFINITY);
  EXPECT_EQ(Parse(R"({"name": "loss", "value":-Infinity})").number(), -INFINITY);
  // Inside strings they stay text.
  Metric text = Parse(R"({"name": "NaN", "value": "Infinity and NaN"})");
  EXPECT_EQ(text.name(), "NaN");
  EXPECT_EQ(text.text(), "Infinity and NaN");
  // A text that spells \u0000 is kept as written, never taken for a number.
  Metric nul = Parse(R"({"name": "t", "value": "\u0000NaN"})");
  EXPECT_EQ(nul.value_case(), Metric::kText);
  EXPECT_EQ(nul.text(), std::string("\0NaN", 4));
  EXPECT_THAT(ParseError(R"({"name": "t", "value": NaN, "x": "\u0000"})"), HasSubstr("not JSON"));
}

TEST(ParseMetricLineTest, MalformedLinesSayWhatIsWrong) {
  EXPECT_THAT(ParseError(R"({"name": "loss", "value": 0.5)"), HasSubstr("not JSON"));
  EXPECT_THAT(ParseError(R"([1, 2])"), HasSubstr("not a JSON object"));
  EXPECT_THAT(ParseError(R"({"value": 1})"), HasSubstr("\"name\" must be a non-empty string"));
  EXPECT_THAT(ParseError(R"({"name": "", "value": 1})"), HasSubstr("\"name\""));
  EXPECT_THAT(ParseError(R"({"name": 3, "value": 1})"), HasSubstr("\"name\""));
  EXPECT_THAT(ParseError(R"({"name": "a"})"), HasSubstr("\"value\" is missing"));
  EXPECT_THAT(ParseError(R"({"name": "a", "value": {"x": 1}})"),
              HasSubstr("\"value\" must be a number, a string, true, false or null, not object"));
  EXPECT_THAT(ParseError(R"({"name": "a", "value": [1, 2]})"), HasSubstr("not array"));
  EXPECT_THAT(ParseError(R"({"name": "a", "value": 1, "step": 1.5})"),
              HasSubstr("\"step\" must be an integer"));
  EXPECT_THAT(ParseError(R"({"name": "a", "value": 1, "step": "3"})"), HasSubstr("\"step\""));
  EXPECT_THAT(ParseError(R"({"name": "a", "value": 1, "step": 18446744073709551615})"),
              HasSubstr("too large"));
  EXPECT_THAT(ParseError(R"({"name": "a", "value": 1, "time": "now"})"), HasSubstr("\"time\""));
  EXPECT_THAT(ParseError(R"({"name": "a", "value": 1, "time": Infinity})"), HasSubstr("\"time\""));
}

class MetricsTailTest : public ::testing::Test {
 protected:
  void Append(absl::string_view data) {
    std::ofstream out(path_, std::ios::binary | std::ios::app);
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
  }
  MetricsTail::Batch Read(MetricsTail& tail, bool at_end = false) {
    amld::base::ScopedFd fd(::open(path_.c_str(), O_RDONLY | O_CLOEXEC));
    EXPECT_TRUE(fd.valid());
    absl::StatusOr<MetricsTail::Batch> batch = tail.Read(fd.get(), kNow, at_end);
    EXPECT_TRUE(batch.ok()) << batch.status();
    return batch.ok() ? *batch : MetricsTail::Batch();
  }
  static std::vector<std::string> Names(const MetricsTail::Batch& b) {
    std::vector<std::string> out;
    for (const Metric& m : b.metrics) out.push_back(absl::StrCat(m.name(), "@", m.step()));
    return out;
  }

  TempDir dir_;
  std::filesystem::path path_ = dir_ / "metrics.jsonl";
};

TEST_F(MetricsTailTest, OnlyCompleteLinesAreTakenUntilTheEnd) {
  MetricsTail tail;
  const std::string line1 = "{\"name\": \"loss\", \"value\": 1}\n";
  Append(line1 + "{\"name\": \"lo");
  MetricsTail::Batch first = Read(tail);
  EXPECT_THAT(Names(first), ElementsAre("loss@0"));
  EXPECT_EQ(tail.offset(), static_cast<int64_t>(line1.size()));
  EXPECT_THAT(Read(tail).metrics, IsEmpty());  // still partial
  Append("ss\", \"value\": 2}\r\n\n{\"name\": \"acc\", \"value\": 3}");
  EXPECT_THAT(Names(Read(tail)), ElementsAre("loss@1"));
  // The run has ended: its last line counts without a newline.
  MetricsTail::Batch last = Read(tail, /*at_end=*/true);
  EXPECT_THAT(Names(last), ElementsAre("acc@0"));
  EXPECT_EQ(tail.offset(), static_cast<int64_t>(std::filesystem::file_size(path_)));
  EXPECT_THAT(Read(tail, true).metrics, IsEmpty());
}

TEST_F(MetricsTailTest, MalformedLinesAreSkippedWithTheirLineNumberAndTheRestIsKept) {
  MetricsTail tail;
  Append(
      "{\"name\": \"loss\", \"value\": 1}\n"
      "not json at all\n"
      "{\"name\": \"loss\", \"value\": [1]}\n"
      "{\"name\": \"loss\", \"value\": 2}\n");
  MetricsTail::Batch batch = Read(tail);
  EXPECT_THAT(Names(batch), ElementsAre("loss@0", "loss@1"));
  EXPECT_EQ(batch.lines_skipped, 2);
  ASSERT_EQ(batch.warnings.size(), 2u);
  EXPECT_THAT(batch.warnings[0], HasSubstr("metrics.jsonl line 2: skipped: not JSON"));
  EXPECT_THAT(batch.warnings[0], HasSubstr("not json at all"));
  EXPECT_THAT(batch.warnings[1], HasSubstr("line 3: skipped: \"value\" must be a number"));
}

TEST_F(MetricsTailTest, AnOverlongLineIsSkippedWithoutHoldingIt) {
  MetricsTail tail;
  Append("{\"name\": \"a\", \"value\": 1}\n");
  Append(std::string(kMaxMetricLineBytes + 10, 'x'));
  MetricsTail::Batch batch = Read(tail);
  EXPECT_THAT(Names(batch), ElementsAre("a@0"));
  ASSERT_EQ(batch.warnings.size(), 1u);
  EXPECT_THAT(batch.warnings[0], HasSubstr("line 2: skipped: longer than"));
  Append(std::string(5000, 'y') + "\n{\"name\": \"a\", \"value\": 2}\n");
  batch = Read(tail);
  EXPECT_THAT(Names(batch), ElementsAre("a@1"));
  EXPECT_THAT(batch.warnings, IsEmpty());  // the rest of the long line is not a new line
}

TEST_F(MetricsTailTest, ARewrittenFileIsReadAgainFromTheTop) {
  MetricsTail tail;
  Append("{\"name\": \"a\", \"value\": 1}\n{\"name\": \"a\", \"value\": 2}\n");
  EXPECT_EQ(Read(tail).metrics.size(), 2u);
  std::filesystem::resize_file(path_, 0);
  Append("{\"name\": \"b\", \"value\": 3}\n");
  MetricsTail::Batch batch = Read(tail);
  EXPECT_THAT(Names(batch), ElementsAre("b@0"));
  ASSERT_EQ(batch.warnings.size(), 1u);
  EXPECT_THAT(batch.warnings[0], HasSubstr("shrank"));
}

TEST_F(MetricsTailTest, AfterARestartTheValuesAlreadyStoredAreSkippedAndStepsContinue) {
  Append(
      "{\"name\": \"loss\", \"value\": 1}\n"
      "garbage\n"
      "{\"name\": \"acc\", \"value\": 0.5}\n"
      "{\"name\": \"loss\", \"value\": 2}\n"
      "{\"name\": \"loss\", \"value\": 3}\n");
  MetricsTail restarted(/*values_already_stored=*/3);
  MetricsTail::Batch batch = Read(restarted);
  // Lines 1, 3 and 4 were stored by the last daemon; its warning too.
  EXPECT_THAT(Names(batch), ElementsAre("loss@2"));
  EXPECT_EQ(batch.metrics[0].number(), 3);
  EXPECT_THAT(batch.warnings, IsEmpty());
  Append("{\"name\": \"acc\", \"value\": 0.6}\n");
  EXPECT_THAT(Names(Read(restarted)), ElementsAre("acc@1"));
}

TEST_F(MetricsTailTest, AMissingFileIsAnErrorOnlyForTheCaller) {
  MetricsTail tail;
  EXPECT_FALSE(tail.Read(-1, kNow, false).ok());
  EXPECT_EQ(tail.offset(), 0);
}

TEST_F(MetricsTailTest, KindLinesChangeTheRecordAndAreNotValues) {
  Append(
      "{\"name\": \"loss\", \"value\": 1}\n"
      "{\"kind\": \"tags\", \"set\": {\"a\": \"1\"}, \"remove\": [\"b\"]}\n"
      "{\"kind\": \"properties\", \"add\": {\"p\": \"x\"}}\n"
      "{\"kind\": \"fail\", \"error\": \"bad data\"}\n"
      "{\"kind\": \"upload\", \"name\": \"notes/n.txt\"}\n"
      "{\"kind\": \"register_model\", \"name\": \"m\", \"path\": \"outputs/m.pkl\", "
      "\"tags\": {\"t\": \"v\"}}\n"
      "{\"kind\": \"tags\", \"set\": {\"a\": 1}}\n"
      "{\"kind\": \"teleport\"}\n"
      "{\"name\": \"kind\", \"value\": 2}\n");
  MetricsTail tail;
  MetricsTail::Batch batch = Read(tail);
  EXPECT_THAT(Names(batch), ElementsAre("loss@0", "kind@0"));
  ASSERT_EQ(batch.records.size(), 5u);
  EXPECT_EQ(batch.records[0].labels.set_tags.at(0).first, "a");
  EXPECT_THAT(batch.records[0].labels.remove_tags, ElementsAre("b"));
  EXPECT_EQ(batch.records[1].labels.add_properties.at(0).second, "x");
  EXPECT_EQ(batch.records[2].labels.failure, "bad data");
  EXPECT_EQ(batch.records[3].kind, RunRecordLine::Kind::kUpload);
  EXPECT_EQ(batch.records[3].upload_name, "notes/n.txt");
  EXPECT_EQ(batch.records[4].kind, RunRecordLine::Kind::kRegisterModel);
  EXPECT_EQ(batch.records[4].model.source_path(), "outputs/m.pkl");
  EXPECT_EQ(batch.records[4].model.tags().at("t"), "v");
  EXPECT_EQ(batch.records[4].line, 6);
  ASSERT_EQ(batch.warnings.size(), 2u);
  EXPECT_THAT(batch.warnings[0], HasSubstr("line 7: skipped: \"set\": the value of \"a\" must be a string"));
  EXPECT_THAT(batch.warnings[1], HasSubstr("line 8: skipped: unknown \"kind\" \"teleport\""));
  // After a restart the values stored are skipped, but record lines come
  // again (each is idempotent).
  MetricsTail restarted(/*values_already_stored=*/2);
  MetricsTail::Batch again = Read(restarted);
  EXPECT_THAT(again.metrics, IsEmpty());
  EXPECT_EQ(again.records.size(), 5u);
  EXPECT_THAT(again.warnings, IsEmpty());
}

}  // namespace
}  // namespace amld::daemon
