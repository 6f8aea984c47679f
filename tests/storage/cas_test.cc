#include "storage/cas.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <latch>
#include <sstream>
#include <thread>

#include "tests/testing/test_util.h"

namespace amld::storage {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// Bytes that differ at every position (a repeated byte would hide offset bugs).
std::string Blob(size_t n, uint32_t seed) {
  std::string out(n, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; ++i) {
    x = x * 1664525u + 1013904223u;
    out[i] = static_cast<char>(x >> 24);
  }
  return out;
}

std::vector<fs::path> FilesUnder(const fs::path& dir) {
  std::vector<fs::path> files;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) files.push_back(e.path());
  }
  return files;
}

void SetMtimeHoursAgo(const fs::path& path, int hours) {
  struct timespec times[2];
  times[0].tv_sec = times[1].tv_sec = ::time(nullptr) - hours * 3600;
  times[0].tv_nsec = times[1].tv_nsec = 0;
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, 0), 0) << path;
}

// Reads a blob through OpenBlob in odd-sized chunks; returns the bytes read
// before the first error and that error (OK when the whole blob was read).
std::pair<std::string, absl::Status> StreamAll(const ContentStore& cas, const Digest& d) {
  auto reader = cas.OpenBlob(d);
  if (!reader.ok()) return {"", reader.status()};
  std::string out;
  std::vector<char> buf(40000 + 7);
  for (;;) {
    auto n = (*reader)->Read(buf.data(), buf.size());
    if (!n.ok()) return {out, n.status()};
    if (*n == 0) return {out, absl::OkStatus()};
    out.append(buf.data(), *n);
  }
}

absl::Status Upload(ContentStore& cas, const Digest& d, std::string_view data, size_t chunk) {
  auto upload = cas.BeginUpload(d);
  if (!upload.ok()) return upload.status();
  for (int64_t pos = (*upload)->committed_size(); pos < static_cast<int64_t>(data.size());
       pos += static_cast<int64_t>(chunk)) {
    absl::Status st = (*upload)->Append(pos, data.substr(pos, chunk));
    if (!st.ok()) return st;
  }
  return (*upload)->Commit();
}

// A forked child that waits for a byte on `go_fd` (when >= 0), runs `body`,
// writes what it returns (empty means success) to `report` and exits.
pid_t ForkChild(int go_fd, const fs::path& report, const std::function<std::string()>& body) {
  pid_t pid = ::fork();
  if (pid != 0) return pid;
  char c;
  if (go_fd >= 0 && ::read(go_fd, &c, 1) != 1) ::_exit(2);
  std::string failure = body();
  std::ofstream(report) << failure;
  ::_exit(failure.empty() ? 0 : 1);
}

std::string ReadReport(const fs::path& report) {
  std::ifstream in(report);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class ContentStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = dir_ / "cas";
    auto cas = ContentStore::Open(root_);
    ASSERT_TRUE(cas.ok()) << cas.status();
    cas_ = std::move(*cas);
  }
  void TearDown() override { cas_.reset(); }

  // Object files other than the empty blob's.
  std::vector<fs::path> StoredObjects() const {
    std::vector<fs::path> out;
    for (const fs::path& p : FilesUnder(root_ / "objects")) {
      if (p != cas_->ObjectPath(Digest::Empty())) out.push_back(p);
    }
    return out;
  }

  void Corrupt(const Digest& d, int64_t offset) {
    fs::path path = cas_->ObjectPath(d);
    ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
    int fd = ::open(path.c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    char c = 0;
    EXPECT_EQ(::pread(fd, &c, 1, offset), 1);
    c = static_cast<char>(c ^ 0x5a);
    EXPECT_EQ(::pwrite(fd, &c, 1, offset), 1);
    ::close(fd);
  }

  amld::testing::TempDir tmp_{"cas_test."};
  const fs::path dir_ = tmp_.path();
  fs::path root_;
  std::unique_ptr<ContentStore> cas_;
};

TEST_F(ContentStoreTest, FreshStoreHasEmptyBlob) {
  const Digest& empty = Digest::Empty();
  EXPECT_TRUE(cas_->Contains(empty));
  EXPECT_TRUE(fs::is_regular_file(cas_->ObjectPath(empty)));
  EXPECT_THAT(cas_->FindMissing({empty}), IsEmpty());
  auto data = cas_->Read(empty);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(*data, "");
  EXPECT_TRUE(cas_->Verify(empty).ok());
  auto [streamed, st] = StreamAll(*cas_, empty);
  EXPECT_TRUE(st.ok()) << st;
  EXPECT_EQ(streamed, "");
  auto upload = cas_->BeginUpload(empty);
  ASSERT_TRUE(upload.ok()) << upload.status();
  EXPECT_EQ((*upload)->committed_size(), 0);
  EXPECT_TRUE((*upload)->Commit().ok());
  // Even with its file gone (say, removed by hand) the empty blob reads.
  fs::remove(cas_->ObjectPath(empty));
  EXPECT_TRUE(cas_->Contains(empty));
  EXPECT_TRUE(cas_->Read(empty).ok());
}

TEST_F(ContentStoreTest, PutThenReadRoundTrip) {
  std::string data = Blob(1000003, 1);
  auto d = cas_->Put(data);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(*d, DigestOf(data));
  EXPECT_TRUE(cas_->Contains(*d));
  EXPECT_EQ(cas_->ObjectPath(*d), root_ / "objects" / d->hash.substr(0, 2) / d->hash.substr(2));
  auto back = cas_->Read(*d);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, data);
  EXPECT_TRUE(cas_->Verify(*d).ok());
  struct stat st;
  ASSERT_EQ(::stat(cas_->ObjectPath(*d).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0400u);
  EXPECT_THAT(FilesUnder(root_ / "tmp"), IsEmpty());
}

TEST_F(ContentStoreTest, StreamingReadsWithOffsets) {
  std::string data = Blob(300001, 2);
  auto d = cas_->Put(data);
  ASSERT_TRUE(d.ok()) << d.status();
  auto [streamed, st] = StreamAll(*cas_, *d);
  EXPECT_TRUE(st.ok()) << st;
  EXPECT_EQ(streamed, data);

  auto reader = cas_->OpenBlob(*d);
  ASSERT_TRUE(reader.ok()) << reader.status();
  BlobReader& r = **reader;
  EXPECT_EQ(r.size(), 300001);
  char buf[1000];
  ASSERT_TRUE(r.Seek(123457).ok());
  auto n = r.Read(buf, sizeof buf);
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(std::string(buf, *n), data.substr(123457, 1000));
  ASSERT_TRUE(r.Seek(300001 - 10).ok());
  n = r.Read(buf, sizeof buf);
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(std::string(buf, *n), data.substr(300001 - 10));
  n = r.Read(buf, sizeof buf);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 0u);
  EXPECT_EQ(r.Seek(300002).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.Seek(-1).code(), absl::StatusCode::kInvalidArgument);
  // Back to 0: a full pass again.
  ASSERT_TRUE(r.Seek(0).ok());
  std::string again;
  while (true) {
    auto m = r.Read(buf, sizeof buf);
    ASSERT_TRUE(m.ok()) << m.status();
    if (*m == 0) break;
    again.append(buf, *m);
  }
  EXPECT_EQ(again, data);

  EXPECT_EQ(cas_->OpenBlob(DigestOf("absent")).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(cas_->Read(DigestOf("absent")).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(cas_->Verify(DigestOf("absent")).code(), absl::StatusCode::kNotFound);
}

TEST_F(ContentStoreTest, SameBlobTwiceIsStoredOnce) {
  std::string data = Blob(200000, 3);
  fs::path file = dir_ / "input.bin";
  std::ofstream(file, std::ios::binary) << data;
  auto a = cas_->Put(data);
  auto b = cas_->Put(data);
  auto c = cas_->PutFile(file);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  ASSERT_TRUE(cas_->PutVerified(*a, data).ok());
  EXPECT_EQ(*a, *b);
  EXPECT_EQ(*a, *c);
  auto objects = StoredObjects();
  ASSERT_EQ(objects.size(), 1u);
  EXPECT_EQ(objects[0], cas_->ObjectPath(*a));
  struct stat st;
  ASSERT_EQ(::stat(objects[0].c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0400u);
  EXPECT_THAT(FilesUnder(root_ / "tmp"), IsEmpty());
}

TEST_F(ContentStoreTest, PutFileCopiesAndRefusesNonFiles) {
  std::string data = Blob(3 * 128 * 1024 + 5, 4);
  fs::path file = dir_ / "input.bin";
  std::ofstream(file, std::ios::binary) << data;
  auto d = cas_->PutFile(file);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(*d, DigestOf(data));
  EXPECT_EQ(*cas_->Read(*d), data);
  EXPECT_EQ(cas_->PutFile(dir_).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(cas_->PutFile(dir_ / "missing").status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(FilesUnder(root_ / "tmp"), IsEmpty());
}

TEST_F(ContentStoreTest, PutVerifiedRefusesMismatchAndStoresNothing) {
  Digest expected = DigestOf("the expected bytes");
  absl::Status st = cas_->PutVerified(expected, "other bytes, not expected");
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr(expected.hash));
  EXPECT_THAT(st.message(), HasSubstr(DigestOf("other bytes, not expected").hash));
  // Same hash, wrong size.
  Digest wrong_size{expected.hash, expected.size + 1};
  EXPECT_EQ(cas_->PutVerified(wrong_size, "the expected bytes").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(cas_->Contains(expected));
  EXPECT_FALSE(cas_->Contains(DigestOf("other bytes, not expected")));
  EXPECT_THAT(StoredObjects(), IsEmpty());
  EXPECT_THAT(FilesUnder(root_ / "tmp"), IsEmpty());
  EXPECT_TRUE(cas_->PutVerified(expected, "the expected bytes").ok());
  EXPECT_TRUE(cas_->Contains(expected));
}

TEST_F(ContentStoreTest, MalformedDigestsAreInvalidArgument) {
  const std::string good = DigestOf("x").hash;
  std::string upper = good;
  upper[0] = 'A';
  for (const Digest& bad : {Digest{"abc", 1}, Digest{upper, 1}, Digest{good, -1}, Digest{"", 0}}) {
    SCOPED_TRACE(bad.ToString());
    EXPECT_FALSE(cas_->Contains(bad));
    EXPECT_EQ(cas_->UploadedSize(bad), 0);
    EXPECT_EQ(cas_->Read(bad).status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(cas_->OpenBlob(bad).status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(cas_->Verify(bad).code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(cas_->BeginUpload(bad).status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(cas_->PutVerified(bad, "x").code(), absl::StatusCode::kInvalidArgument);
  }
  EXPECT_THAT(FilesUnder(root_ / "uploads"), IsEmpty());
}

TEST_F(ContentStoreTest, DigestWithWrongSizeIsNotFound) {
  auto d = cas_->Put("hello");
  ASSERT_TRUE(d.ok());
  Digest wrong{d->hash, 6};
  EXPECT_FALSE(cas_->Contains(wrong));
  EXPECT_EQ(cas_->Read(wrong).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(cas_->Verify(wrong).code(), absl::StatusCode::kNotFound);
}

TEST_F(ContentStoreTest, CorruptedObjectIsDataLoss) {
  std::string data = Blob(500000, 5);
  auto d = cas_->Put(data);
  ASSERT_TRUE(d.ok());
  Corrupt(*d, 1000);

  EXPECT_EQ(cas_->Read(*d).status().code(), absl::StatusCode::kDataLoss);
  absl::Status verified = cas_->Verify(*d);
  EXPECT_EQ(verified.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(verified.message(), HasSubstr(cas_->ObjectPath(*d).string()));
  // The streaming read hands out every chunk but the last, then fails.
  auto [streamed, st] = StreamAll(*cas_, *d);
  EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss);
  EXPECT_LT(streamed.size(), data.size());
  EXPECT_GT(streamed.size(), 0u);
  // Put does not hide it: the object exists with the right size.
  EXPECT_TRUE(cas_->Put(data).ok());
  EXPECT_EQ(cas_->Verify(*d).code(), absl::StatusCode::kDataLoss);

  // A truncated object is corrupt too (its prefix does not hash to d).
  ASSERT_EQ(::truncate(cas_->ObjectPath(*d).c_str(), 250000), 0);
  EXPECT_FALSE(cas_->Contains(*d));
  EXPECT_EQ(cas_->Read(*d).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(cas_->Verify(*d).code(), absl::StatusCode::kDataLoss);
}

TEST_F(ContentStoreTest, CorruptionInLastByteIsCaught) {
  std::string data = Blob(128 * 1024, 6);
  auto d = cas_->Put(data);
  ASSERT_TRUE(d.ok());
  Corrupt(*d, 128 * 1024 - 1);
  EXPECT_EQ(cas_->Read(*d).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(StreamAll(*cas_, *d).second.code(), absl::StatusCode::kDataLoss);
}

// Issue 19: a read that starts at an offset (a resumed download) skipped
// the check, so a corruption before the offset went unnoticed.
TEST_F(ContentStoreTest, AReadFromAnOffsetIsVerifiedToo) {
  std::string data = Blob(300000, 8);
  auto d = cas_->Put(data);
  ASSERT_TRUE(d.ok());
  auto read_from = [&](int64_t offset) {
    auto reader = cas_->OpenBlob(*d);
    EXPECT_TRUE(reader.ok()) << reader.status();
    std::string got;
    absl::Status seek = (*reader)->Seek(offset);
    if (!seek.ok()) return std::make_pair(got, seek);
    char buf[65536];
    for (;;) {
      absl::StatusOr<size_t> n = (*reader)->Read(buf, sizeof buf);
      if (!n.ok()) return std::make_pair(got, n.status());
      if (*n == 0) return std::make_pair(got, absl::OkStatus());
      got.append(buf, *n);
    }
  };
  auto [tail, ok] = read_from(200000);
  EXPECT_TRUE(ok.ok()) << ok;
  EXPECT_EQ(tail, data.substr(200000));
  Corrupt(*d, 1000);  // before the offset
  EXPECT_EQ(read_from(200000).second.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(read_from(299999).second.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(read_from(300000).second.code(), absl::StatusCode::kDataLoss);
}

// Issue 19: a stale partial upload refused a new upload at offset 0 (until
// it aged out, an hour later), although offset 0 starts anew.
TEST_F(ContentStoreTest, AnUploadAtOffsetZeroStartsAnewOverAStalePartial) {
  const std::string data = Blob(200000, 9);
  const Digest d = DigestOf(data);
  {
    auto upload = cas_->BeginUpload(d);
    ASSERT_TRUE(upload.ok()) << upload.status();
    ASSERT_TRUE((*upload)->Append(0, data.substr(0, 1000)).ok());
  }  // abandoned: the partial stays for a resume
  auto upload = cas_->BeginUpload(d);
  ASSERT_TRUE(upload.ok()) << upload.status();
  EXPECT_EQ((*upload)->committed_size(), 1000);
  absl::Status fresh = (*upload)->Append(0, data.substr(0, 5000));
  ASSERT_TRUE(fresh.ok()) << fresh;
  EXPECT_EQ((*upload)->committed_size(), 5000);
  ASSERT_TRUE((*upload)->Append(5000, data.substr(5000)).ok());
  ASSERT_TRUE((*upload)->Commit().ok());
  EXPECT_EQ(*cas_->Read(d), data);
}

TEST_F(ContentStoreTest, EightThreadsPutSameBlob) {
  const std::string data = Blob(5 << 20, 7);
  std::latch start(8);
  std::vector<absl::Status> results(8);
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      start.arrive_and_wait();
      results[i] = cas_->Put(data).status();
    });
  }
  for (auto& t : threads) t.join();
  for (const absl::Status& st : results) EXPECT_TRUE(st.ok()) << st;
  Digest d = DigestOf(data);
  EXPECT_TRUE(cas_->Verify(d).ok());
  EXPECT_EQ(StoredObjects(), std::vector<fs::path>{cas_->ObjectPath(d)});
  EXPECT_THAT(FilesUnder(root_ / "tmp"), IsEmpty());
}

TEST_F(ContentStoreTest, FourProcessesPutAndUploadSameBlob) {
  const std::string data = Blob(5 << 20, 8);
  const Digest d = DigestOf(data);
  int go[2];
  ASSERT_EQ(::pipe(go), 0);
  std::vector<pid_t> pids;
  for (int i = 0; i < 4; ++i) {
    // Two children Put, two upload in chunks; each opens its own store.
    pids.push_back(ForkChild(go[0], dir_ / absl::StrCat("report", i), [&, i]() -> std::string {
      auto cas = ContentStore::Open(root_);
      if (!cas.ok()) return cas.status().ToString();
      absl::Status st = i % 2 == 0 ? (*cas)->Put(data).status() : Upload(**cas, d, data, 65536);
      return st.ok() ? "" : st.ToString();
    }));
  }
  ASSERT_EQ(::write(go[1], "gogo", 4), 4);
  ::close(go[0]);
  ::close(go[1]);
  for (int i = 0; i < 4; ++i) {
    int status = 0;
    ASSERT_EQ(::waitpid(pids[i], &status, 0), pids[i]);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "child " << i << ": " << ReadReport(dir_ / absl::StrCat("report", i));
  }
  EXPECT_TRUE(cas_->Verify(d).ok());
  EXPECT_EQ(StoredObjects(), std::vector<fs::path>{cas_->ObjectPath(d)});
  EXPECT_THAT(FilesUnder(root_ / "tmp"), IsEmpty());
  EXPECT_THAT(FilesUnder(root_ / "uploads"), IsEmpty());
}

TEST_F(ContentStoreTest, InterleavedUploadsOfSameDigestDoNotCorruptEachOther) {
  const std::string data = Blob(1 << 20, 9);
  const Digest d = DigestOf(data);
  auto a = cas_->BeginUpload(d);
  auto b = cas_->BeginUpload(d);
  ASSERT_TRUE(a.ok() && b.ok());
  for (int64_t pos = 0; pos < d.size; pos += 65536) {
    ASSERT_TRUE((*a)->Append(pos, std::string_view(data).substr(pos, 65536)).ok());
    ASSERT_TRUE((*b)->Append(pos, std::string_view(data).substr(pos, 65536)).ok());
  }
  EXPECT_TRUE((*b)->Commit().ok());
  EXPECT_TRUE((*a)->Commit().ok());
  EXPECT_TRUE(cas_->Verify(d).ok());
  a->reset();
  b->reset();
  EXPECT_EQ(StoredObjects(), std::vector<fs::path>{cas_->ObjectPath(d)});
  EXPECT_THAT(FilesUnder(root_ / "tmp"), IsEmpty());
  EXPECT_THAT(FilesUnder(root_ / "uploads"), IsEmpty());
}

TEST_F(ContentStoreTest, UploadKilledMidwayResumesInNewStore) {
  const std::string data = Blob(3 << 20, 10);
  const Digest d = DigestOf(data);
  const int64_t half = 1500000;
  pid_t pid = ForkChild(-1, dir_ / "report", [&]() -> std::string {
    auto cas = ContentStore::Open(root_);
    if (!cas.ok()) return cas.status().ToString();
    auto upload = (*cas)->BeginUpload(d);
    if (!upload.ok()) return upload.status().ToString();
    for (int64_t pos = 0; pos < half; pos += 100000) {
      absl::Status st = (*upload)->Append(pos, std::string_view(data).substr(pos, 100000));
      if (!st.ok()) return st.ToString();
    }
    ::raise(SIGKILL);  // the daemon dies mid-upload
    return "survived SIGKILL";
  });
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << ReadReport(dir_ / "report");

  auto restarted = ContentStore::Open(root_);
  ASSERT_TRUE(restarted.ok()) << restarted.status();
  ContentStore& cas = **restarted;
  EXPECT_FALSE(cas.Contains(d));
  EXPECT_EQ(cas.UploadedSize(d), half);
  auto upload = cas.BeginUpload(d);
  ASSERT_TRUE(upload.ok()) << upload.status();
  EXPECT_EQ((*upload)->committed_size(), half);
  ASSERT_TRUE((*upload)->Append(half, std::string_view(data).substr(half)).ok());
  ASSERT_TRUE((*upload)->Commit().ok());
  EXPECT_EQ(*cas.Read(d), data);
  EXPECT_EQ(cas.UploadedSize(d), d.size);
  EXPECT_THAT(FilesUnder(root_ / "uploads"), IsEmpty());
}

TEST_F(ContentStoreTest, DroppedUploadKeepsItsDataForTheNextOne) {
  const std::string data = Blob(400000, 11);
  const Digest d = DigestOf(data);
  {
    auto upload = cas_->BeginUpload(d);
    ASSERT_TRUE(upload.ok());
    ASSERT_TRUE((*upload)->Append(0, std::string_view(data).substr(0, 123456)).ok());
  }
  EXPECT_EQ(cas_->UploadedSize(d), 123456);
  EXPECT_TRUE(Upload(*cas_, d, data, 50000).ok());
  EXPECT_EQ(*cas_->Read(d), data);
}

// Uploads with an owner (the Cas service's uid in system mode) keep apart:
// one owner's partial data is neither seen, continued nor restarted by
// another, and each may finish the blob.
TEST_F(ContentStoreTest, OwnersKeepTheirPartialUploadsApart) {
  const std::string data = Blob(300000, 21);
  const Digest d = DigestOf(data);
  {
    auto upload = cas_->BeginUpload(d, Durability::kImmediate, "u1001");
    ASSERT_TRUE(upload.ok()) << upload.status();
    ASSERT_TRUE((*upload)->Append(0, std::string_view(data).substr(0, 100000)).ok());
  }
  EXPECT_EQ(cas_->UploadedSize(d, "u1001"), 100000);
  EXPECT_EQ(cas_->UploadedSize(d, "u1002"), 0);
  EXPECT_EQ(cas_->UploadedSize(d), 0);
  {
    auto other = cas_->BeginUpload(d, Durability::kImmediate, "u1002");
    ASSERT_TRUE(other.ok()) << other.status();
    EXPECT_EQ((*other)->committed_size(), 0);
    EXPECT_FALSE((*other)->Append(100000, "more").ok()) << "continues only its own";
    ASSERT_TRUE((*other)->Append(0, std::string_view(data).substr(0, 10)).ok());
  }
  EXPECT_EQ(cas_->UploadedSize(d, "u1001"), 100000) << "the other's start left hers alone";
  auto resumed = cas_->BeginUpload(d, Durability::kImmediate, "u1001");
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  ASSERT_EQ((*resumed)->committed_size(), 100000);
  ASSERT_TRUE((*resumed)->Append(100000, std::string_view(data).substr(100000)).ok());
  ASSERT_TRUE((*resumed)->Commit().ok());
  EXPECT_EQ(*cas_->Read(d), data);
  EXPECT_EQ(cas_->UploadedSize(d, "u1002"), d.size) << "stored is stored, for everyone";

  for (const std::string& bad :
       std::vector<std::string>{"../x", "u 1", "a/b", "0123456789abcdef0123456789abcdef0"}) {
    EXPECT_TRUE(absl::IsInvalidArgument(
        cas_->BeginUpload(DigestOf("x"), Durability::kImmediate, bad).status()))
        << bad;
    EXPECT_EQ(cas_->UploadedSize(DigestOf("x"), bad), 0) << bad;
  }
}

TEST_F(ContentStoreTest, AppendAtWrongOffsetIsRefused) {
  const std::string data = Blob(1000, 12);
  const Digest d = DigestOf(data);
  auto upload = cas_->BeginUpload(d);
  ASSERT_TRUE(upload.ok());
  BlobUpload& u = **upload;
  absl::Status st = u.Append(5, std::string_view(data).substr(5, 10));
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("byte 0"));
  ASSERT_TRUE(u.Append(0, std::string_view(data).substr(0, 10)).ok());
  // Offset 0 starts anew (the proto's rule), whatever is held.
  EXPECT_TRUE(u.Append(0, std::string_view(data).substr(0, 10)).ok());
  EXPECT_EQ(u.Append(11, std::string_view(data).substr(11, 10)).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(u.committed_size(), 10);
  ASSERT_TRUE(u.Append(10, std::string_view(data).substr(10)).ok());
  EXPECT_TRUE(u.Commit().ok());
  EXPECT_EQ(*cas_->Read(d), data);
}

TEST_F(ContentStoreTest, UploadOfTooManyBytesIsRefused) {
  const std::string data = Blob(10, 13);
  const Digest d = DigestOf(data);
  auto upload = cas_->BeginUpload(d);
  ASSERT_TRUE(upload.ok());
  BlobUpload& u = **upload;
  EXPECT_EQ(u.Append(0, data + "x").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(u.committed_size(), 0);
  ASSERT_TRUE(u.Append(0, data).ok());
  EXPECT_EQ(u.Append(10, "x").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(u.Append(10, "").ok());
  EXPECT_TRUE(u.Commit().ok());
  EXPECT_TRUE(cas_->Verify(d).ok());
}

TEST_F(ContentStoreTest, CommitOfWrongContentIsRefusedAndDiscarded) {
  const std::string data = Blob(300000, 14);
  const std::string other = Blob(300000, 15);
  const Digest d = DigestOf(data);
  auto upload = cas_->BeginUpload(d);
  ASSERT_TRUE(upload.ok());
  ASSERT_TRUE((*upload)->Append(0, other).ok());
  absl::Status st = (*upload)->Commit();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr(d.hash));
  EXPECT_THAT(st.message(), HasSubstr(DigestOf(other).hash));
  EXPECT_FALSE(cas_->Contains(d));
  EXPECT_EQ(cas_->UploadedSize(d), 0);
  EXPECT_THAT(FilesUnder(root_ / "uploads"), IsEmpty());
  EXPECT_EQ((*upload)->committed_size(), 0);
  EXPECT_EQ((*upload)->Append(0, "x").code(), absl::StatusCode::kFailedPrecondition);
  upload->reset();

  // A new upload starts over from 0 and succeeds.
  auto again = cas_->BeginUpload(d);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)->committed_size(), 0);
  ASSERT_TRUE((*again)->Append(0, data).ok());
  EXPECT_TRUE((*again)->Commit().ok());
  EXPECT_TRUE(cas_->Verify(d).ok());
}

TEST_F(ContentStoreTest, CommitOfIncompleteUploadIsRefused) {
  const std::string data = Blob(5000, 16);
  const Digest d = DigestOf(data);
  auto upload = cas_->BeginUpload(d);
  ASSERT_TRUE(upload.ok());
  ASSERT_TRUE((*upload)->Append(0, std::string_view(data).substr(0, 4000)).ok());
  EXPECT_EQ((*upload)->Commit().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(cas_->Contains(d));
  EXPECT_EQ(cas_->UploadedSize(d), 0);
}

TEST_F(ContentStoreTest, UploadOfStoredBlobIsComplete) {
  auto d = cas_->Put("already here");
  ASSERT_TRUE(d.ok());
  auto upload = cas_->BeginUpload(*d);
  ASSERT_TRUE(upload.ok());
  EXPECT_EQ((*upload)->committed_size(), d->size);
  EXPECT_EQ((*upload)->Append(0, "already here").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE((*upload)->Commit().ok());
  EXPECT_EQ(cas_->UploadedSize(*d), d->size);
  EXPECT_THAT(FilesUnder(root_ / "uploads"), IsEmpty());
}

TEST_F(ContentStoreTest, DeferredWritesAreVisibleAtOnceAndListedUntilSynced) {
  std::string batched = Blob(5000, 7), streamed = Blob(300000, 8), file = Blob(2000, 9);
  ASSERT_TRUE(cas_->PutVerified(DigestOf(batched), batched, Durability::kDeferred).ok());
  auto upload = cas_->BeginUpload(DigestOf(streamed), Durability::kDeferred);
  ASSERT_TRUE(upload.ok()) << upload.status();
  ASSERT_TRUE((*upload)->Append(0, streamed).ok());
  ASSERT_TRUE((*upload)->Commit().ok());
  std::ofstream(dir_ / "src", std::ios::binary) << file;
  auto from_file = cas_->PutFile(dir_ / "src", Durability::kDeferred);
  ASSERT_TRUE(from_file.ok()) << from_file.status();
  // Readable (and verified) before any sync: the data is in the page cache.
  for (const std::string* data : {&batched, &streamed, &file}) {
    EXPECT_TRUE(cas_->Contains(DigestOf(*data)));
    EXPECT_EQ(*cas_->Read(DigestOf(*data)), *data);
  }
  EXPECT_EQ(cas_->PendingSyncCount(), 3);
  // A blob already stored is not written again, so not listed again.
  ASSERT_TRUE(cas_->PutVerified(DigestOf(batched), batched, Durability::kDeferred).ok());
  EXPECT_EQ(cas_->PendingSyncCount(), 3);
  // Immediate writes are synced on the spot and never listed.
  ASSERT_TRUE(cas_->Put("immediate").ok());
  EXPECT_EQ(cas_->PendingSyncCount(), 3);
  // One that vanished before the sync (GC, or removed by hand) is skipped,
  // not an I/O error that would drop the others.
  ASSERT_TRUE(cas_->PutVerified(DigestOf("gone"), "gone", Durability::kDeferred).ok());
  ASSERT_TRUE(fs::remove(cas_->ObjectPath(DigestOf("gone"))));
  ASSERT_TRUE(cas_->SyncPending().ok());
  EXPECT_EQ(cas_->PendingSyncCount(), 0);
  EXPECT_TRUE(cas_->SyncPending().ok());  // nothing to do
  EXPECT_EQ(*cas_->Read(DigestOf(streamed)), streamed);
  EXPECT_TRUE(cas_->Contains(DigestOf(batched)));
}

TEST_F(ContentStoreTest, ManyDeferredWritesSyncAtOnceFromSeveralThreads) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([this, t] {
      for (int i = 0; i < 50; ++i) {
        std::string data = Blob(100 + i, 1000 * t + i);
        EXPECT_TRUE(cas_->PutVerified(DigestOf(data), data, Durability::kDeferred).ok());
        if (i % 10 == 9) {
          EXPECT_TRUE(cas_->SyncPending().ok());
        }
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_TRUE(cas_->SyncPending().ok());
  EXPECT_EQ(cas_->PendingSyncCount(), 0);
  for (int t = 0; t < 4; ++t) {
    for (int i = 0; i < 50; ++i) {
      EXPECT_TRUE(cas_->Contains(DigestOf(Blob(100 + i, 1000 * t + i))));
    }
  }
}

TEST_F(ContentStoreTest, FindMissingKeepsFirstSeenOrderWithoutDuplicates) {
  auto a = cas_->Put("a");
  ASSERT_TRUE(a.ok());
  Digest b = DigestOf("b"), c = DigestOf("c"), e = DigestOf("e");
  std::vector<Digest> in = {c, *a, b, c, Digest::Empty(), e, b, *a};
  EXPECT_EQ(cas_->FindMissing(in), (std::vector<Digest>{c, b, e}));
  EXPECT_THAT(cas_->FindMissing({}), IsEmpty());
}

TEST_F(ContentStoreTest, GarbageCollectionKeepsLiveAndRemovesTheRest) {
  auto a = cas_->Put(Blob(1000, 17));
  auto b = cas_->Put(Blob(2000, 18));
  auto c = cas_->Put(Blob(3000, 19));
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());

  // tmp/: a stale leftover and a fresh one (a writer still busy).
  fs::path stale_tmp = root_ / "tmp" / "put-stale";
  fs::path fresh_tmp = root_ / "tmp" / "put-fresh";
  std::ofstream(stale_tmp) << "12345";
  std::ofstream(fresh_tmp) << "1234567";
  SetMtimeHoursAgo(stale_tmp, 2);
  // uploads/: an abandoned partial upload, and an idle one still held open.
  const std::string abandoned = Blob(4000, 20), held = Blob(5000, 21);
  {
    auto u = cas_->BeginUpload(DigestOf(abandoned));
    ASSERT_TRUE(u.ok() && (*u)->Append(0, std::string_view(abandoned).substr(0, 100)).ok());
  }
  auto open_upload = cas_->BeginUpload(DigestOf(held));
  ASSERT_TRUE(open_upload.ok());
  ASSERT_TRUE((*open_upload)->Append(0, std::string_view(held).substr(0, 200)).ok());
  for (const fs::path& p : FilesUnder(root_ / "uploads")) SetMtimeHoursAgo(p, 3);

  auto stats = cas_->CollectGarbage({*a});
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->objects_removed, 2);
  EXPECT_EQ(stats->objects_kept, 2);  // a and the empty blob
  EXPECT_EQ(stats->temp_files_removed, 2);
  EXPECT_EQ(stats->bytes_removed, 2000 + 3000 + 5 + 100);

  EXPECT_TRUE(cas_->Verify(*a).ok());
  EXPECT_FALSE(cas_->Contains(*b));
  EXPECT_FALSE(cas_->Contains(*c));
  EXPECT_TRUE(fs::exists(cas_->ObjectPath(Digest::Empty())));
  EXPECT_FALSE(fs::exists(stale_tmp));
  EXPECT_TRUE(fs::exists(fresh_tmp));
  EXPECT_EQ(cas_->UploadedSize(DigestOf(abandoned)), 0);
  EXPECT_EQ(cas_->UploadedSize(DigestOf(held)), 200);
  // The held upload goes on after GC.
  ASSERT_TRUE((*open_upload)->Append(200, std::string_view(held).substr(200)).ok());
  EXPECT_TRUE((*open_upload)->Commit().ok());
  EXPECT_TRUE(cas_->Verify(DigestOf(held)).ok());

  // Everything dead: only the empty blob stays.
  stats = cas_->CollectGarbage({});
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->objects_removed, 2);
  EXPECT_EQ(stats->objects_kept, 1);
  EXPECT_THAT(StoredObjects(), IsEmpty());
  EXPECT_TRUE(cas_->Contains(Digest::Empty()));
}

// ENOSPC needs a small filesystem: a 256 KiB tmpfs mounted in a private mount
// namespace of a child process (skipped where mounting is not allowed).
TEST_F(ContentStoreTest, DiskFullIsResourceExhausted) {
  const fs::path small = dir_ / "small";
  fs::create_directories(small);
  pid_t pid = ForkChild(-1, dir_ / "report", [&]() -> std::string {
    if (::unshare(CLONE_NEWNS) != 0 ||
        ::mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
        ::mount("tmpfs", small.c_str(), "tmpfs", 0, "size=256k") != 0) {
      ::_exit(77);
    }
    auto cas = ContentStore::Open(small / "cas");
    if (!cas.ok()) return cas.status().ToString();
    const std::string big = Blob(1 << 20, 22);
    absl::Status put = (*cas)->Put(big).status();
    if (put.code() != absl::StatusCode::kResourceExhausted) return "Put: " + put.ToString();
    if (!FilesUnder(small / "cas" / "tmp").empty()) return "tmp/ not empty after ENOSPC";
    if (!(*cas)->Put("small blob still fits").ok()) return "small Put failed";
    // The upload keeps what fitted (resumable), and says why it stopped.
    absl::Status upload = Upload(**cas, DigestOf(big), big, 65536);
    if (upload.code() != absl::StatusCode::kResourceExhausted)
      return "Upload: " + upload.ToString();
    return "";
  });
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  if (WEXITSTATUS(status) == 77) GTEST_SKIP() << "cannot mount a tmpfs here";
  EXPECT_EQ(WEXITSTATUS(status), 0) << ReadReport(dir_ / "report");
}

}  // namespace
}  // namespace amld::storage

namespace amld::storage {
namespace {

void AgeFile(const std::filesystem::path& path, absl::Duration age) {
  timespec times[2];
  times[0].tv_sec = times[1].tv_sec = std::time(nullptr) - absl::ToInt64Seconds(age);
  times[0].tv_nsec = times[1].tv_nsec = 0;
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, 0), 0);
}

TEST_F(ContentStoreTest, GcKeepsYoungObjectsAndFindMissingRefreshesOldOnes) {
  auto young = cas_->Put("uploaded a moment ago");
  auto old = cas_->Put("unreferenced for two hours");
  auto relied_on = cas_->Put("old, but a client was just told it is present");
  ASSERT_TRUE(young.ok() && old.ok() && relied_on.ok());
  AgeFile(cas_->ObjectPath(*old), absl::Hours(2));
  AgeFile(cas_->ObjectPath(*relied_on), absl::Hours(2));

  std::vector<Digest> asked = {*relied_on};
  EXPECT_TRUE(cas_->FindMissing(asked).empty());

  auto stats = cas_->CollectGarbage({}, absl::Hours(1));
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->objects_removed, 1);
  EXPECT_TRUE(cas_->Contains(*young));
  EXPECT_FALSE(cas_->Contains(*old));
  EXPECT_TRUE(cas_->Contains(*relied_on));
}

}  // namespace
}  // namespace amld::storage
