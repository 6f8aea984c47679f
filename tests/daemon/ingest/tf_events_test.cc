// TensorBoard event files written here byte by byte, from the public field
// numbers and the TFRecord framing, independent of the reader's decoder
// (which uses protobuf's CodedInputStream): known scalars, CRCs, torn and
// damaged records.
#include "daemon/ingest/tf_events.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_util.h"
#include "tests/testing/tf_events_writer.h"

namespace amld::daemon {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;
using namespace amld::testing::tf_events;  // NOLINT: the writer's small vocabulary

class TfEventsTest : public ::testing::Test {
 protected:
  void Append(const std::string& bytes) {
    const int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
    ::close(fd);
  }
  TfEventsTail::Batch Read(bool at_end = false) {
    const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    EXPECT_GE(fd, 0);
    absl::StatusOr<TfEventsTail::Batch> batch = tail_.Read(fd, at_end);
    ::close(fd);
    EXPECT_TRUE(batch.ok()) << batch.status();
    return batch.ok() ? *std::move(batch) : TfEventsTail::Batch{};
  }
  static std::vector<std::string> Describe(const TfEventsTail::Batch& b) {
    std::vector<std::string> out;
    for (const auto& m : b.metrics) {
      out.push_back(absl::StrCat(m.name(), "@", m.step(), "=", m.number(), " t=",
                                 m.time().seconds(), ".", m.time().nanos() / 1000000));
    }
    return out;
  }

  amld::testing::TempDir tmp_{"tf_events_test."};
  const std::string path_ = (tmp_.path() / "events.out.tfevents.1700000000.host.1.0").string();
  TfEventsTail tail_;
};

TEST(TfEventsCrcTest, Crc32cKnownValues) {
  // The check value of CRC-32C (RFC 3720, B.4).
  EXPECT_EQ(Crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(Crc32c(""), 0u);
  EXPECT_EQ(Crc32c(std::string(32, '\0')), 0x8A9136AAu);
  // masked(c) = rotate right by 15, plus 0xa282ead8.
  const uint32_t c = Crc32c("123456789");
  EXPECT_EQ(MaskedCrc32c("123456789"), ((c >> 15) | (c << 17)) + 0xa282ead8u);
}

TEST(TfEventsNameTest, OnlyEventsFilesAnywhere) {
  EXPECT_TRUE(IsTfEventsFile("logs/events.out.tfevents.1700000000.host.1.0"));
  EXPECT_TRUE(IsTfEventsFile("logs/tb/train/events.out.tfevents.1.h"));
  EXPECT_FALSE(IsTfEventsFile("logs/tb/events.txt"));
  EXPECT_FALSE(IsTfEventsFile("logs/x.events.out.tfevents.1"));
}

TEST_F(TfEventsTest, SimpleValuesAndScalarTensorsBecomeMetrics) {
  // The first record of every file: file_version, no summary.
  Append(Record(Double(1, 1700000000.0) + Bytes(3, "brain.Event:2")));
  Append(Record(Event(1700000001.25, 0, {SimpleValue("Loss/train", 0.5f)})));
  Append(Record(Event(1700000002.5, 1,
                      {SimpleValue("Loss/train", 0.25f), TensorFloatVal("acc", 0.75f),
                       TensorContentDouble("lr", 0.001)})));
  TfEventsTail::Batch b = Read();
  EXPECT_THAT(Describe(b), ElementsAre("Loss/train@0=0.5 t=1700000001.250",
                                       "Loss/train@1=0.25 t=1700000002.500",
                                       "acc@1=0.75 t=1700000002.500",
                                       "lr@1=0.001 t=1700000002.500"));
  EXPECT_THAT(b.warnings, IsEmpty());
  // Each value carries its record's end: the last three share one record.
  ASSERT_THAT(b.record_ends, SizeIs(4));
  EXPECT_LT(b.record_ends[0], b.record_ends[1]);
  EXPECT_EQ(b.record_ends[1], b.record_ends[3]);
  EXPECT_EQ(b.record_ends[3], tail_.offset());
  EXPECT_THAT(Read().metrics, IsEmpty());  // nothing new
}

TEST_F(TfEventsTest, NonScalarValuesAreIgnored) {
  // An image (Value.image = 4), a histogram tensor (rank 1) and a text
  // plugin tensor give no metric; the scalar beside them does.
  const std::string image = Bytes(1, "img") + Bytes(4, Bytes(4, "PNG..."));
  const std::string histo_tensor =
      Key(1, 0) + Varint(2) + Bytes(2, Bytes(2, Key(1, 0) + Varint(3))) + Bytes(6, Le(0, 8));
  const std::string histo = Bytes(1, "w") + Bytes(8, histo_tensor);
  const std::string text = Bytes(1, "note") + Bytes(8, Key(1, 0) + Varint(7)) +
                           Bytes(9, Bytes(1, Bytes(1, "text")));
  Append(Record(Event(1700000000, 3, {image, histo, text, SimpleValue("loss", 2.0f)})));
  EXPECT_THAT(Describe(Read()), ElementsAre("loss@3=2 t=1700000000.0"));
}

TEST_F(TfEventsTest, ATornLastRecordIsWaitedForThenTaken) {
  const std::string first = Record(Event(1700000000, 0, {SimpleValue("loss", 1.0f)}));
  const std::string second = Record(Event(1700000001, 1, {SimpleValue("loss", 0.5f)}));
  Append(first + second.substr(0, 7));  // not even a whole header
  EXPECT_THAT(Describe(Read()), ElementsAre("loss@0=1 t=1700000000.0"));
  EXPECT_EQ(tail_.offset(), static_cast<int64_t>(first.size()));
  Append(second.substr(7, 10));  // the header and part of the data
  TfEventsTail::Batch b = Read();
  EXPECT_THAT(b.metrics, IsEmpty());
  EXPECT_THAT(b.warnings, IsEmpty());  // still being written: no complaint
  Append(second.substr(17));
  EXPECT_THAT(Describe(Read()), ElementsAre("loss@1=0.5 t=1700000001.0"));
}

TEST_F(TfEventsTest, ATornLastRecordAtTheEndIsReportedOnceAndIgnored) {
  const std::string first = Record(Event(1700000000, 0, {SimpleValue("loss", 1.0f)}));
  const std::string second = Record(Event(1700000001, 1, {SimpleValue("loss", 0.5f)}));
  Append(first + second.substr(0, second.size() - 3));
  TfEventsTail::Batch b = Read(/*at_end=*/true);
  EXPECT_THAT(Describe(b), ElementsAre("loss@0=1 t=1700000000.0"));
  ASSERT_THAT(b.warnings, SizeIs(1));
  EXPECT_THAT(b.warnings[0], HasSubstr("the last record is incomplete"));
  EXPECT_THAT(Read(/*at_end=*/true).warnings, IsEmpty());
}

TEST_F(TfEventsTest, ADataCrcMismatchIsReportedAndOnlyThatRecordSkipped) {
  std::string bad = Record(Event(1700000001, 1, {SimpleValue("loss", 0.5f)}));
  bad[bad.size() - 6] ^= 0x40;  // a bit of the data flips; its CRC no longer matches
  Append(Record(Event(1700000000, 0, {SimpleValue("loss", 1.0f)})) + bad +
         Record(Event(1700000002, 2, {SimpleValue("loss", 0.25f)})));
  TfEventsTail::Batch b = Read();
  EXPECT_THAT(Describe(b), ElementsAre("loss@0=1 t=1700000000.0", "loss@2=0.25 t=1700000002.0"));
  ASSERT_THAT(b.warnings, SizeIs(1));
  EXPECT_THAT(b.warnings[0], HasSubstr("data does not match its CRC"));
}

TEST_F(TfEventsTest, ALengthCrcMismatchSkipsToTheNextWholeRecord) {
  const std::string first = Record(Event(1700000000, 0, {SimpleValue("loss", 1.0f)}));
  std::string bad = Record(Event(1700000001, 1, {SimpleValue("loss", 0.5f)}));
  bad[0] = static_cast<char>(bad[0] + 1);  // the length is off by one: its CRC fails
  Append(first + bad + Record(Event(1700000002, 2, {SimpleValue("loss", 0.25f)})));
  TfEventsTail::Batch b = Read();
  EXPECT_THAT(Describe(b), ElementsAre("loss@0=1 t=1700000000.0", "loss@2=0.25 t=1700000002.0"));
  ASSERT_THAT(b.warnings, SizeIs(1));
  EXPECT_THAT(b.warnings[0], HasSubstr(absl::StrCat("byte ", first.size(), ": a record's length")));
  EXPECT_THAT(b.warnings[0], HasSubstr(absl::StrCat("skipped ", bad.size(), " bytes")));
}

TEST_F(TfEventsTest, MalformedEventBytesAreReportedNotFatal) {
  Append(Record("\x0a\xff\xff") + Record(Event(1700000000, 5, {SimpleValue("loss", 3.0f)})));
  TfEventsTail::Batch b = Read();
  EXPECT_THAT(Describe(b), ElementsAre("loss@5=3 t=1700000000.0"));
  ASSERT_THAT(b.warnings, SizeIs(1));
  EXPECT_THAT(b.warnings[0], HasSubstr("not a well-formed Event"));
}

TEST_F(TfEventsTest, AResumedTailReadsOnlyWhatFollowsItsOffset) {
  const std::string first = Record(Event(1700000000, 0, {SimpleValue("loss", 1.0f)}));
  Append(first + Record(Event(1700000001, 1, {SimpleValue("loss", 0.5f)})));
  tail_ = TfEventsTail(static_cast<int64_t>(first.size()));
  EXPECT_THAT(Describe(Read()), ElementsAre("loss@1=0.5 t=1700000001.0"));
  // A file shorter than the offset was rewritten: read again from the top.
  tail_ = TfEventsTail(1 << 20);
  TfEventsTail::Batch b = Read();
  EXPECT_THAT(b.metrics, SizeIs(2));
  ASSERT_THAT(b.warnings, SizeIs(1));
  EXPECT_THAT(b.warnings[0], HasSubstr("rewritten"));
}

}  // namespace
}  // namespace amld::daemon
