// LocalIngest (daemon/watch/local_ingest.h): the daemon's own read of a
// client's folder, handed over as a descriptor the client holds open.
//   - the tree is the client walk's (BuildSnapshot): same root digest for a
//     folder with ignore files, links, empty folders and odd names, every
//     blob in the CAS, and a second ingest reads no file (stat cache);
//   - a root daemon reads as the caller: a client running as `nobody`
//     cannot have a file only root may read ingested, and can once it is
//     readable (needs root: skipped otherwise);
//   - descriptors that are not a folder, not the caller's process, or name
//     another folder than the client said are refused with
//     FAILED_PRECONDITION (the client then uploads).
#include "daemon/watch/local_ingest.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "storage/snapshot/snapshot.h"
#include "tests/testing/test_util.h"

namespace amld::daemon {
namespace {

namespace fs = std::filesystem;
namespace pb = amld::v1;
using amld::testing::TempDir;
using amld::testing::WriteFile;

constexpr uid_t kNobody = 65534;
constexpr gid_t kNogroup = 65534;

class LocalIngestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::chmod(tmp_.path().c_str(), 0755);  // `nobody` reaches the project below
    project_ = tmp_.path() / "project";
    WriteFile(project_ / "train.py", "print('hi')\n");
    WriteFile(project_ / ".gitignore", "*.log\ndata/\n");
    WriteFile(project_ / "run.log", "left out\n");
    WriteFile(project_ / "data" / "big.bin", "left out too\n");
    WriteFile(project_ / "src" / ".amlignore", "secret_*\n");
    WriteFile(project_ / "src" / "secret_key", "left out by .amlignore\n");
    WriteFile(project_ / "src" / "a b.py", "spaces\n");
    WriteFile(project_ / "src" / "\xc3\xbcnicode-\xe2\x9c\x93.txt", "utf-8 name\n");
    WriteFile(project_ / "src" / "-dash#hash", "odd\n");
    WriteFile(project_ / "src" / "run.sh", "#!/bin/sh\n");
    ::chmod((project_ / "src" / "run.sh").c_str(), 0755);
    WriteFile(project_ / "outputs" / "model.pt", "a local try's output\n");
    fs::create_directories(project_ / "empty" / "nested");
    fs::create_symlink("src/a b.py", project_ / "link.py");
    fs::create_symlink("../train.py", project_ / "src" / "up.py");
    for (auto& e : fs::recursive_directory_iterator(project_)) {
      if (e.is_directory() && !e.is_symlink()) ::chmod(e.path().c_str(), 0755);
    }
    ::chmod(project_.c_str(), 0755);
    auto cas = amld::storage::ContentStore::Open(tmp_.path() / "data" / "cas");
    ASSERT_TRUE(cas.ok()) << cas.status();
    cas_ = *std::move(cas);
  }

  LocalIngest NewIngest() {
    LocalIngestOptions o;
    o.cache_dir = tmp_.path() / "data" / "ingest-cache";
    return LocalIngest(cas_.get(), o);
  }

  static pb::IngestLocalFolderRequest Request(int fd) {
    pb::IngestLocalFolderRequest req;
    req.set_dir_fd(fd);
    struct stat st;
    EXPECT_EQ(::fstat(fd, &st), 0);
    req.set_dir_device(st.st_dev);
    req.set_dir_inode(st.st_ino);
    return req;
  }

  static PeerProcess Self() { return PeerProcess{::getpid(), ::geteuid(), ::getegid()}; }

  amld::storage::Digest WalkedRoot() {
    auto snap = amld::storage::BuildSnapshot(project_);
    EXPECT_TRUE(snap.ok()) << snap.status();
    return snap.ok() ? snap->root : amld::storage::Digest{};
  }

  TempDir tmp_;
  fs::path project_;
  std::unique_ptr<amld::storage::ContentStore> cas_;
};

TEST_F(LocalIngestTest, GivesTheClientWalksTreeWithEveryBlobStoredAndThenReadsNothing) {
  LocalIngest ingest = NewIngest();
  base::ScopedFd fd(::open(project_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(fd.valid());
  auto first = ingest.Ingest(Self(), Request(fd.get()));
  ASSERT_TRUE(first.ok()) << first.status();
  const amld::storage::Digest root = amld::storage::FromProto(first->snapshot_root());
  EXPECT_EQ(root, WalkedRoot());
  EXPECT_EQ(first->file_count(), 7);  // train.py .gitignore and src's 5
  EXPECT_EQ(first->files_read(), 7);
  EXPECT_FALSE(first->read_as_caller());
  auto missing = amld::storage::FindMissingInTree(*cas_, root);
  ASSERT_TRUE(missing.ok()) << missing.status();
  EXPECT_TRUE(missing->empty()) << missing->size() << " blobs missing";

  // Files younger than a second are never trusted to a stat cache.
  absl::SleepFor(absl::Milliseconds(1100));
  auto second = ingest.Ingest(Self(), Request(fd.get()));
  ASSERT_TRUE(second.ok()) << second.status();
  auto third = ingest.Ingest(Self(), Request(fd.get()));
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_EQ(third->files_read(), 0);
  EXPECT_EQ(amld::storage::FromProto(third->snapshot_root()), root);

  WriteFile(project_ / "src" / "a b.py", "changed\n");
  auto changed = ingest.Ingest(Self(), Request(fd.get()));
  ASSERT_TRUE(changed.ok()) << changed.status();
  EXPECT_EQ(changed->files_read(), 1);
  EXPECT_EQ(amld::storage::FromProto(changed->snapshot_root()), WalkedRoot());
}

TEST_F(LocalIngestTest, ACachedDigestTheStoreLostIsReadAgain) {
  LocalIngest ingest = NewIngest();
  base::ScopedFd fd(::open(project_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  absl::SleepFor(absl::Milliseconds(1100));
  ASSERT_TRUE(ingest.Ingest(Self(), Request(fd.get())).ok());
  auto digest = amld::storage::DigestOf("print('hi')\n");
  ASSERT_TRUE(fs::remove(cas_->ObjectPath(digest)));
  auto again = ingest.Ingest(Self(), Request(fd.get()));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->files_read(), 1);
  EXPECT_TRUE(cas_->Contains(digest));
}

TEST_F(LocalIngestTest, RefusesDescriptorsItCannotTrust) {
  LocalIngest ingest = NewIngest();
  base::ScopedFd file(::open((project_ / "train.py").c_str(), O_RDONLY | O_CLOEXEC));
  auto not_dir = ingest.Ingest(Self(), Request(file.get()));
  EXPECT_EQ(not_dir.status().code(), absl::StatusCode::kFailedPrecondition) << not_dir.status();
  EXPECT_TRUE(absl::StrContains(not_dir.status().message(), "not a folder")) << not_dir.status();

  base::ScopedFd dir(::open(project_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  pb::IngestLocalFolderRequest other = Request(dir.get());
  other.set_dir_inode(other.dir_inode() + 1);
  auto elsewhere = ingest.Ingest(Self(), other);
  EXPECT_EQ(elsewhere.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(elsewhere.status().message(), "another folder"))
      << elsewhere.status();

  pb::IngestLocalFolderRequest not_open = Request(dir.get());
  not_open.set_dir_fd(1000);
  auto closed = ingest.Ingest(Self(), not_open);
  EXPECT_EQ(closed.status().code(), absl::StatusCode::kFailedPrecondition) << closed.status();

  auto no_pid = ingest.Ingest(PeerProcess{0, ::geteuid(), ::getegid()}, Request(dir.get()));
  EXPECT_EQ(no_pid.status().code(), absl::StatusCode::kFailedPrecondition);
}

// A child process that becomes `nobody`, opens the project and holds it
// until told to exit: the client of a system-mode daemon.
class NobodyClient {
 public:
  explicit NobodyClient(const fs::path& dir) {
    int ready[2], done[2];
    EXPECT_EQ(::pipe2(ready, O_CLOEXEC), 0);
    EXPECT_EQ(::pipe2(done, O_CLOEXEC), 0);
    pid_ = ::fork();
    if (pid_ == 0) {
      // Raw calls only: per thread, and this child has just the one. The
      // parent's ends are closed here, or `done` would never see EOF.
      ::close(ready[0]);
      ::close(done[1]);
      int fd = -1;
      if (::syscall(SYS_setgroups, 0, nullptr) == 0 && ::syscall(SYS_setgid, kNogroup) == 0 &&
          ::syscall(SYS_setuid, kNobody) == 0) {
        ::prctl(PR_SET_DUMPABLE, 1);  // as any process of that user is
        fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
      }
      (void)!::write(ready[1], &fd, sizeof fd);
      char c;
      (void)!::read(done[0], &c, 1);
      ::_exit(0);
    }
    ::close(ready[1]);
    ::close(done[0]);
    done_ = done[1];
    if (::read(ready[0], &fd_, sizeof fd_) != sizeof fd_) fd_ = -1;
    ::close(ready[0]);
  }
  ~NobodyClient() {
    ::close(done_);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  PeerProcess peer() const { return PeerProcess{pid_, kNobody, kNogroup}; }
  int fd() const { return fd_; }

 private:
  pid_t pid_ = -1;
  int fd_ = -1;
  int done_ = -1;
};

TEST_F(LocalIngestTest, ARootDaemonReadsAsTheCallerAndCannotTakeWhatOnlyRootMayRead) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  WriteFile(project_ / "src" / "only_root.txt", "root's\n");
  ::chmod((project_ / "src" / "only_root.txt").c_str(), 0600);
  LocalIngest ingest = NewIngest();
  NobodyClient client(project_);
  ASSERT_GE(client.fd(), 0) << "the child could not become nobody and open the project";
  base::ScopedFd mine(::open(project_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  pb::IngestLocalFolderRequest req = Request(mine.get());
  req.set_dir_fd(client.fd());

  auto refused = ingest.Ingest(client.peer(), req);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kPermissionDenied) << refused.status();
  EXPECT_TRUE(absl::StrContains(refused.status().message(), "only_root.txt")) << refused.status();
  // The message names the folder, not the daemon's descriptor.
  EXPECT_FALSE(absl::StrContains(refused.status().message(), "/proc/self/fd"))
      << refused.status();

  ::chmod((project_ / "src" / "only_root.txt").c_str(), 0644);
  auto read = ingest.Ingest(client.peer(), req);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_TRUE(read->read_as_caller());
  EXPECT_EQ(amld::storage::FromProto(read->snapshot_root()), WalkedRoot());
  // What the daemon stored is its own, not the caller's.
  struct stat st;
  ASSERT_EQ(::stat(cas_->ObjectPath(amld::storage::DigestOf("root's\n")).c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 0u);

  // The pid is the caller's only while that process is nobody's: naming a
  // process of another user is refused.
  auto not_theirs = ingest.Ingest(PeerProcess{::getpid(), kNobody, kNogroup}, Request(mine.get()));
  EXPECT_EQ(not_theirs.status().code(), absl::StatusCode::kFailedPrecondition)
      << not_theirs.status();
}

}  // namespace
}  // namespace amld::daemon
