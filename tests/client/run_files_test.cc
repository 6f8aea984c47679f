// DownloadRunFile against an in-process Runs service whose DownloadFile
// stream drops (UNAVAILABLE) after some chunks: a resumed download is
// checked end to end against the digest, so a file that changed between the
// two streams is refused and nothing is renamed into place; long names keep
// their temp name within NAME_MAX; only regular files are replaced.
#include "client/run_files.h"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "absl/synchronization/mutex.h"
#include "storage/digest.h"
#include "tests/client/fake_services.h"
#include "tests/testing/test_util.h"

namespace amld::client {
namespace {

namespace fs = std::filesystem;
using amld::testing::ReadFile;
using amld::testing::WriteFile;
using testing::InProcessServer;

// One run "r1" with one stored file; DownloadFile sends 4-byte chunks and
// can drop after some of them, and can serve other bytes after the drop.
class FakeFileRuns final : public amld::v1::Runs::Service {
 public:
  FakeFileRuns(std::string path, std::string content)
      : path_(std::move(path)), listed_(content), content_(std::move(content)) {}

  // The next stream ends with UNAVAILABLE after `chunks` chunks; the ones
  // after it serve `after` (when given).
  void DropOnceAfter(int chunks, std::optional<std::string> after = std::nullopt) {
    absl::MutexLock lock(&mu_);
    drop_after_ = chunks;
    after_drop_ = std::move(after);
  }
  std::vector<int64_t> offsets() const {
    absl::MutexLock lock(&mu_);
    return offsets_;
  }

  grpc::Status ListFiles(grpc::ServerContext*, const amld::v1::ListFilesRequest* req,
                         amld::v1::ListFilesResponse* resp) override {
    absl::MutexLock lock(&mu_);
    if (path_.rfind(req->prefix(), 0) == 0) {
      auto* f = resp->add_files();
      f->set_path(path_);
      amld::storage::ToProto(amld::storage::DigestOf(listed_), f->mutable_digest());
    }
    return grpc::Status::OK;
  }

  grpc::Status DownloadFile(grpc::ServerContext*, const amld::v1::DownloadFileRequest* req,
                            grpc::ServerWriter<amld::v1::FileChunk>* writer) override {
    std::string content;
    int drop_after;
    {
      absl::MutexLock lock(&mu_);
      if (req->path() != path_) return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such file");
      offsets_.push_back(req->offset());
      content = content_;
      drop_after = drop_after_;
      drop_after_ = -1;
      if (drop_after >= 0 && after_drop_) content_ = *after_drop_;
    }
    int sent = 0;
    for (int64_t off = req->offset(); off < static_cast<int64_t>(content.size()); off += 4) {
      if (sent == drop_after) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "injected drop");
      amld::v1::FileChunk chunk;
      chunk.set_offset(off);
      chunk.set_data(content.substr(off, 4));
      if (sent == 0) chunk.set_total_size(static_cast<int64_t>(content.size()));
      if (!writer->Write(chunk)) return grpc::Status::CANCELLED;
      ++sent;
    }
    return grpc::Status::OK;
  }

 private:
  mutable absl::Mutex mu_;
  const std::string path_;
  const std::string listed_;  // what ListFiles' digest describes
  std::string content_ ABSL_GUARDED_BY(mu_);
  int drop_after_ ABSL_GUARDED_BY(mu_) = -1;
  std::optional<std::string> after_drop_ ABSL_GUARDED_BY(mu_);
  std::vector<int64_t> offsets_ ABSL_GUARDED_BY(mu_);
};

const char kContent[] = "weights: 0.5 -1.25 3.0 and some more bytes\n";

class DownloadTest : public ::testing::Test {
 protected:
  explicit DownloadTest(std::string path = "outputs/model.txt")
      : runs_(path, kContent), server_({&runs_}), dir_(amld::testing::MakeTempDir("dl-")) {
    conn_.socket_path = "/nonexistent/in-process.sock";
    conn_.channel = server_.channel();
  }
  ~DownloadTest() override { fs::remove_all(dir_); }

  // The names in dir_, to see that no temp file was left.
  std::vector<std::string> Entries() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir_)) out.push_back(e.path().filename());
    return out;
  }

  FakeFileRuns runs_;
  InProcessServer server_;
  Connection conn_;
  fs::path dir_;
};

TEST_F(DownloadTest, ResumedDownloadIsCompleteAndVerified) {
  runs_.DropOnceAfter(3);
  auto n = DownloadRunFile(conn_, "r1", "outputs/model.txt", {dir_ / "model.txt"});
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(ReadFile(dir_ / "model.txt"), kContent);
  EXPECT_EQ(runs_.offsets(), (std::vector<int64_t>{0, 12}));
  EXPECT_EQ(Entries(), std::vector<std::string>{"model.txt"});
}

TEST_F(DownloadTest, FileChangedBetweenStreamsIsRefusedAndNothingRenamed) {
  std::string changed = kContent;
  changed[20] = 'X';  // after the resume offset: the tail comes from another version
  runs_.DropOnceAfter(3, changed);
  WriteFile(dir_ / "model.txt", "the previous download\n");
  auto n = DownloadRunFile(conn_, "r1", "outputs/model.txt", {dir_ / "model.txt"});
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.status().code(), absl::StatusCode::kDataLoss) << n.status();
  EXPECT_NE(n.status().message().find("download it again"), std::string::npos) << n.status();
  EXPECT_EQ(ReadFile(dir_ / "model.txt"), "the previous download\n");
  EXPECT_EQ(Entries(), std::vector<std::string>{"model.txt"});
}

TEST_F(DownloadTest, ToAnFdIsVerifiedToo) {
  std::string changed = kContent;
  changed[30] = 'X';
  runs_.DropOnceAfter(2, changed);
  const fs::path out = dir_ / "stream";
  int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  auto n = DownloadRunFile(conn_, "r1", "outputs/model.txt", {"stdout", fd});
  ::close(fd);
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.status().code(), absl::StatusCode::kDataLoss) << n.status();
  EXPECT_NE(n.status().message().find("already written"), std::string::npos) << n.status();
}

TEST_F(DownloadTest, ExpectedDigestFromTheListingIsUsed) {
  amld::v1::Digest other = amld::storage::ToProto(amld::storage::DigestOf("something else"));
  auto n = DownloadRunFile(conn_, "r1", "outputs/model.txt", {dir_ / "m"}, &other);
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_FALSE(fs::exists(dir_ / "m"));
}

TEST_F(DownloadTest, OnlyRegularFilesAreReplaced) {
  WriteFile(dir_ / "target", "keep me\n");
  fs::create_symlink("target", dir_ / "link");
  auto n = DownloadRunFile(conn_, "r1", "outputs/model.txt", {dir_ / "link"});
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(n.status().message().find("symbolic link"), std::string::npos) << n.status();
  EXPECT_TRUE(fs::is_symlink(dir_ / "link"));
  EXPECT_EQ(ReadFile(dir_ / "target"), "keep me\n");

  ASSERT_EQ(::mkfifo((dir_ / "fifo").c_str(), 0600), 0);
  n = DownloadRunFile(conn_, "r1", "outputs/model.txt", {dir_ / "fifo"});
  EXPECT_EQ(n.status().code(), absl::StatusCode::kFailedPrecondition) << n.status();
  fs::create_directory(dir_ / "folder");
  n = DownloadRunFile(conn_, "r1", "outputs/model.txt", {dir_ / "folder", -1, /*force=*/true});
  EXPECT_EQ(n.status().code(), absl::StatusCode::kFailedPrecondition) << n.status();

  // --force replaces the link itself, never what it points to.
  n = DownloadRunFile(conn_, "r1", "outputs/model.txt", {dir_ / "link", -1, /*force=*/true});
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_FALSE(fs::is_symlink(dir_ / "link"));
  EXPECT_EQ(ReadFile(dir_ / "link"), kContent);
  EXPECT_EQ(ReadFile(dir_ / "target"), "keep me\n");
}

class LongNameDownloadTest : public DownloadTest {
 protected:
  LongNameDownloadTest() : DownloadTest("outputs/" + LongName()) {}
  static std::string LongName() {
    std::string name;
    while (name.size() < 253) name += "\xc3\xa9";  // é: cut at a character boundary
    return name + "x";                              // 255 bytes
  }
};

TEST_F(LongNameDownloadTest, TempNameStaysWithinNameMax) {
  const std::string name = LongName();
  ASSERT_EQ(name.size(), 255u);
  const fs::path templ = DownloadTempTemplate(dir_ / name);
  EXPECT_LE(templ.filename().string().size(), 255u);
  EXPECT_EQ(templ.parent_path(), dir_);
  runs_.DropOnceAfter(1);
  auto n = DownloadRunFile(conn_, "r1", "outputs/" + name, {dir_ / name});
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(ReadFile(dir_ / name), kContent);
  EXPECT_EQ(Entries(), std::vector<std::string>{name});
}

}  // namespace
}  // namespace amld::client
