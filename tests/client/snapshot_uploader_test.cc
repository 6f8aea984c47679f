// SnapshotUploader against an in-process Cas service that stores into a real
// ContentStore: only missing blobs are sent, batches respect the daemon's
// limit, large blobs stream in chunks and resume after a drop.
#include "client/snapshot_uploader.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <random>

#include "storage/snapshot/snapshot.h"
#include "tests/client/fake_services.h"

namespace amld::client {
namespace {

namespace fs = std::filesystem;
using amld::storage::ContentStore;
using testing::FakeCas;
using testing::InProcessServer;

constexpr int64_t kMaxBatch = 64 << 10;

void WriteFile(const fs::path& p, const std::string& data) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary | std::ios::trunc) << data;
}

std::string RandomBytes(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

class SnapshotUploaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(::testing::TempDir()) /
            ("uploader_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    src_ = root_ / "src";
    auto store = ContentStore::Open(root_ / "cas");
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    cas_ = std::make_unique<FakeCas>(store_.get(), kMaxBatch);
    server_ = std::make_unique<InProcessServer>(std::vector<grpc::Service*>{cas_.get()});
  }
  void TearDown() override {
    server_.reset();
    fs::remove_all(root_);
  }

  // 30 small files in nested folders, one 3.5 MiB file.
  void MakeProject() {
    for (int i = 0; i < 30; ++i) {
      WriteFile(src_ / ("pkg" + std::to_string(i % 3)) / ("f" + std::to_string(i) + ".py"),
                "print(" + std::to_string(i) + ")\n" + std::string(i * 100, 'x'));
    }
    WriteFile(src_ / "train.py", "print('train')\n");
    WriteFile(src_ / "data" / "big.bin", RandomBytes(3 * (1 << 20) + (1 << 19), 7));
  }

  absl::StatusOr<UploadStats> Upload(UploaderOptions options = {}) {
    auto snapshot = amld::storage::BuildSnapshot(src_);
    if (!snapshot.ok()) return snapshot.status();
    snapshot_ = *std::move(snapshot);
    options.max_batch_bytes = kMaxBatch;
    SnapshotUploader uploader(server_->channel(), options);
    return uploader.Upload(snapshot_);
  }

  fs::path root_, src_;
  std::unique_ptr<ContentStore> store_;
  std::unique_ptr<FakeCas> cas_;
  std::unique_ptr<InProcessServer> server_;
  amld::storage::Snapshot snapshot_;
};

TEST_F(SnapshotUploaderTest, FirstUploadSendsTheWholeTreeAndASecondSendsNothing) {
  MakeProject();
  auto first = Upload();
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->files_total, 32);
  EXPECT_EQ(first->files_uploaded, 32);
  EXPECT_EQ(first->directories_total, 5);  // root, pkg0..2, data
  EXPECT_EQ(first->directories_uploaded, 5);
  EXPECT_GE(first->bytes_uploaded, snapshot_.total_file_bytes);
  auto missing = amld::storage::FindMissingInTree(*store_, snapshot_.root);
  ASSERT_TRUE(missing.ok()) << missing.status();
  EXPECT_TRUE(missing->empty());

  auto second = Upload();
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->files_total, 32);
  EXPECT_EQ(second->files_uploaded, 0);
  EXPECT_EQ(second->directories_uploaded, 0);
  EXPECT_EQ(second->bytes_uploaded, 0);
}

TEST_F(SnapshotUploaderTest, ChangingOneFileUploadsOnlyItAndItsFolders) {
  MakeProject();
  ASSERT_TRUE(Upload().ok());
  WriteFile(src_ / "pkg1" / "f4.py", "print('changed')\n");
  auto stats = Upload();
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->files_uploaded, 1);
  EXPECT_EQ(stats->directories_uploaded, 2);  // pkg1 and the root
  auto missing = amld::storage::FindMissingInTree(*store_, snapshot_.root);
  ASSERT_TRUE(missing.ok());
  EXPECT_TRUE(missing->empty());
}

TEST_F(SnapshotUploaderTest, BatchesStayUnderTheDaemonsLimit) {
  for (int i = 0; i < 100; ++i) {
    WriteFile(src_ / ("f" + std::to_string(i)), RandomBytes(4000, i));
  }
  auto stats = Upload();
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->files_uploaded, 100);
  const auto record = cas_->record();
  ASSERT_GE(record.batch_request_bytes.size(), 7u);  // 400 KB in 64 KiB requests
  for (int64_t bytes : record.batch_request_bytes) EXPECT_LE(bytes, kMaxBatch);
  EXPECT_TRUE(record.write_start_offsets.empty());
}

TEST_F(SnapshotUploaderTest, LargeBlobsStreamInChunks) {
  WriteFile(src_ / "big.bin", RandomBytes(3 * (1 << 20) + 5, 1));
  auto stats = Upload();
  ASSERT_TRUE(stats.ok()) << stats.status();
  const auto record = cas_->record();
  EXPECT_EQ(record.write_start_offsets, std::vector<int64_t>{0});
  EXPECT_EQ(record.write_messages, 4);
  EXPECT_EQ(stats->bytes_uploaded, 3 * (1 << 20) + 5 + snapshot_.directories.begin()->first.size);
}

TEST_F(SnapshotUploaderTest, InterruptedStreamResumesWhereTheDaemonStopped) {
  const int64_t size = 3 * (1 << 20) + (1 << 19);
  WriteFile(src_ / "big.bin", RandomBytes(size, 2));
  cas_->FailWritesAfter(/*chunks=*/2, /*times=*/1);
  auto stats = Upload();
  ASSERT_TRUE(stats.ok()) << stats.status();
  const auto record = cas_->record();
  EXPECT_EQ(record.write_start_offsets, (std::vector<int64_t>{0, 2 << 20}));
  EXPECT_EQ(stats->files_uploaded, 1);
  auto missing = amld::storage::FindMissingInTree(*store_, snapshot_.root);
  ASSERT_TRUE(missing.ok());
  EXPECT_TRUE(missing->empty());
}

TEST_F(SnapshotUploaderTest, ResumesAPartialUploadLeftByAnEarlierClient) {
  const int64_t size = 2 * (1 << 20) + 17;
  const std::string data = RandomBytes(size, 3);
  WriteFile(src_ / "big.bin", data);
  {
    auto upload = store_->BeginUpload(amld::storage::DigestOf(data));
    ASSERT_TRUE(upload.ok());
    ASSERT_TRUE((*upload)->Append(0, std::string_view(data).substr(0, 1 << 20)).ok());
  }
  auto stats = Upload();
  ASSERT_TRUE(stats.ok()) << stats.status();
  const auto record = cas_->record();
  EXPECT_EQ(record.write_start_offsets, std::vector<int64_t>{1 << 20});
  EXPECT_TRUE(store_->Contains(amld::storage::DigestOf(data)));
}

TEST_F(SnapshotUploaderTest, GivesUpAfterRepeatedDrops) {
  WriteFile(src_ / "big.bin", RandomBytes(3 << 20, 4));
  cas_->FailWritesAfter(/*chunks=*/1, /*times=*/100);
  UploaderOptions options;
  options.write_attempts = 3;
  auto stats = Upload(options);
  ASSERT_FALSE(stats.ok());
  EXPECT_TRUE(absl::IsUnavailable(stats.status())) << stats.status();
  EXPECT_EQ(cas_->record().write_start_offsets, (std::vector<int64_t>{0, 1 << 20, 2 << 20}));
}

TEST_F(SnapshotUploaderTest, AFileChangedAfterHashingIsRefusedWithAClearError) {
  WriteFile(src_ / "a.py", "print('a')\n");
  auto snapshot = amld::storage::BuildSnapshot(src_);
  ASSERT_TRUE(snapshot.ok());
  WriteFile(src_ / "a.py", "print('b')\n");  // same size, other bytes
  UploaderOptions options;
  options.max_batch_bytes = kMaxBatch;
  SnapshotUploader uploader(server_->channel(), options);
  auto stats = uploader.Upload(*snapshot);
  ASSERT_FALSE(stats.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(stats.status())) << stats.status();
  EXPECT_NE(stats.status().message().find("a.py changed while it was being uploaded"),
            std::string::npos)
      << stats.status();
}

TEST_F(SnapshotUploaderTest, ReportsProgressUpToTheMissingBytes) {
  MakeProject();
  UploadProgress last;
  int calls = 0;
  UploaderOptions options;
  options.on_progress = [&](const UploadProgress& p) {
    ++calls;
    EXPECT_LE(p.bytes_done, p.bytes_to_send);
    last = p;
  };
  auto stats = Upload(options);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_GT(calls, 2);
  EXPECT_EQ(last.bytes_done, last.bytes_to_send);
  EXPECT_EQ(last.blobs_done, last.blobs_to_send);
  EXPECT_EQ(last.blobs_done, 37);
}

}  // namespace
}  // namespace amld::client
