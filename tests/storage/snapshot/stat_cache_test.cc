// StatCache (storage/snapshot/stat_cache.h): an unchanged tree is not read again, any
// change of stat (down to the nanosecond, or ctime alone) is, racy entries
// are never saved, and a damaged cache file is ignored and replaced.
#include "storage/snapshot/stat_cache.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <fstream>
#include <iterator>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "storage/snapshot/snapshot.h"
#include "tests/testing/test_util.h"

namespace amld::storage {
namespace {

namespace fs = std::filesystem;
using amld::testing::TempDir;

void Write(const fs::path& p, const std::string& data) {
  fs::create_directories(p.parent_path());
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << data;
}

std::string Read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void SetMtime(const fs::path& p, time_t sec, long nsec) {
  struct timespec times[2] = {{sec, nsec}, {sec, nsec}};
  ASSERT_EQ(::utimensat(AT_FDCWD, p.c_str(), times, 0), 0) << p;
}

// Counts what BuildSnapshot asks of the cache it wraps: every Store is a
// file that was read and hashed.
class CountingCache final : public DigestCache {
 public:
  explicit CountingCache(DigestCache* inner) : inner_(inner) {}
  std::optional<Digest> Lookup(const std::string& rel, const struct stat& st) override {
    std::optional<Digest> d = inner_->Lookup(rel, st);
    (d ? hits : misses) += 1;
    return d;
  }
  void Store(const std::string& rel, const struct stat& st, const Digest& d) override {
    hashed.push_back(rel);
    inner_->Store(rel, st, d);
  }
  int hits = 0;
  int misses = 0;
  std::vector<std::string> hashed;

 private:
  DigestCache* inner_;
};

// The walk "started" this long after the files were written, so none of
// them is racy (instead of sleeping past storage::kRacyWindow).
const absl::Duration kLater = absl::Seconds(5);

class StatCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 40; ++i) {
      Write(src_.path() / absl::StrCat("d", i % 4) / absl::StrCat("f", i, ".py"),
            absl::StrCat("print(", i, ")\n"));
    }
    cache_file_ = cache_dir_.path() / "stat-test.bin";
  }

  // One walk through the cache file: load, build, save.
  absl::StatusOr<Snapshot> Walk(CountingCache** counted = nullptr, absl::Duration later = kLater) {
    StatCache cache = StatCache::Load(cache_file_);
    last_load_problem_ = cache.load_problem();
    counting_ = std::make_unique<CountingCache>(&cache);
    BuildOptions o;
    o.cache = counting_.get();
    const absl::Time started = absl::Now();
    absl::StatusOr<Snapshot> snap = BuildSnapshot(src_.path(), o);
    if (snap.ok()) {
      EXPECT_TRUE(cache.Save(cache_file_, started + later).ok());
    }
    if (counted != nullptr) *counted = counting_.get();
    return snap;
  }

  TempDir src_;
  TempDir cache_dir_;
  fs::path cache_file_;
  std::unique_ptr<CountingCache> counting_;
  std::string last_load_problem_;
};

TEST_F(StatCacheTest, UnchangedTreeReadsNoFile) {
  CountingCache* first;
  auto a = Walk(&first);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(first->hashed.size(), 40u);
  struct stat before, after;
  ASSERT_EQ(::stat(cache_file_.c_str(), &before), 0);
  CountingCache* second;
  auto b = Walk(&second);
  ASSERT_TRUE(b.ok()) << b.status();
  ASSERT_EQ(::stat(cache_file_.c_str(), &after), 0);
  EXPECT_EQ(before.st_ino, after.st_ino) << "rewritten although nothing changed";
  EXPECT_EQ(second->hits, 40);
  EXPECT_TRUE(second->hashed.empty()) << "read again: " << second->hashed.front();
  EXPECT_EQ(a->root, b->root);
  EXPECT_EQ(last_load_problem_, "");
}

TEST_F(StatCacheTest, OneChangedFileIsTheOnlyOneRead) {
  ASSERT_TRUE(Walk().ok());
  Write(src_.path() / "d1" / "f1.py", "print('changed')\n");
  CountingCache* counted;
  auto b = Walk(&counted);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(counted->hashed, std::vector<std::string>{"d1/f1.py"});
  EXPECT_EQ(b->root, BuildSnapshot(src_.path())->root);
}

TEST_F(StatCacheTest, SameSizeAndSecondButOtherNanosecondsIsReadAgain) {
  const fs::path f = src_.path() / "d0" / "f0.py";
  Write(f, "aaaa\n");
  SetMtime(f, 1700000000, 100);
  ASSERT_TRUE(Walk().ok());
  Write(f, "bbbb\n");  // same size
  SetMtime(f, 1700000000, 200);
  CountingCache* counted;
  auto b = Walk(&counted);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(counted->hashed, std::vector<std::string>{"d0/f0.py"});
  EXPECT_EQ(b->root, BuildSnapshot(src_.path())->root);
}

TEST_F(StatCacheTest, ContentChangedWithSizeAndMtimeRestoredIsReadAgain) {
  // Only ctime tells this one apart (a tool that restores mtimes).
  const fs::path f = src_.path() / "d2" / "f2.py";
  Write(f, "aaaa\n");
  SetMtime(f, 1700000000, 100);
  ASSERT_TRUE(Walk().ok());
  Write(f, "bbbb\n");
  SetMtime(f, 1700000000, 100);
  CountingCache* counted;
  auto b = Walk(&counted);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(counted->hashed, std::vector<std::string>{"d2/f2.py"});
  EXPECT_EQ(b->root, BuildSnapshot(src_.path())->root);
}

TEST_F(StatCacheTest, FilesChangedJustBeforeTheWalkAreNotSaved) {
  // Written a moment ago and saved by a walk that started now: every entry
  // is racy, so nothing may vouch for these files next time.
  ASSERT_TRUE(Walk(nullptr, absl::ZeroDuration()).ok());
  StatCache reloaded = StatCache::Load(cache_file_);
  EXPECT_EQ(reloaded.size(), 0u);
  EXPECT_EQ(reloaded.load_problem(), "");
}

TEST_F(StatCacheTest, LookupNeedsEveryFieldToMatch) {
  const fs::path f = src_.path() / "d3" / "f3.py";
  struct stat st;
  ASSERT_EQ(::lstat(f.c_str(), &st), 0);
  StatCache cache;
  const Digest d = DigestOf(Read(f));
  cache.Store("d3/f3.py", st, d);
  EXPECT_EQ(cache.Lookup("d3/f3.py", st), d);
  EXPECT_FALSE(cache.Lookup("d3/other.py", st));
  struct stat changed = st;
  changed.st_ino += 1;
  EXPECT_FALSE(cache.Lookup("d3/f3.py", changed));
  changed = st;
  changed.st_mode ^= 0100;
  EXPECT_FALSE(cache.Lookup("d3/f3.py", changed));
  changed = st;
  changed.st_ctim.tv_nsec ^= 1;
  EXPECT_FALSE(cache.Lookup("d3/f3.py", changed));
  changed = st;
  changed.st_size += 1;
  EXPECT_FALSE(cache.Lookup("d3/f3.py", changed));
}

TEST_F(StatCacheTest, DamagedCacheFilesAreIgnoredAndReplaced) {
  ASSERT_TRUE(Walk().ok());
  const std::string good = Read(cache_file_);
  ASSERT_GT(good.size(), 100u);
  std::string flipped = good;
  flipped[flipped.size() / 2] ^= 0x40;
  const std::vector<std::string> bad = {
      flipped,   good.substr(0, good.size() - 7), good.substr(0, 12), std::string(4096, '\xff'), "",
      good + "x"};
  for (const std::string& contents : bad) {
    Write(cache_file_, contents);
    CountingCache* counted;
    auto snap = Walk(&counted);
    ASSERT_TRUE(snap.ok());
    EXPECT_NE(last_load_problem_, "") << "a damaged file was trusted";
    EXPECT_EQ(counted->hits, 0);
    EXPECT_EQ(counted->hashed.size(), 40u);
    // Rewritten whole by the walk above.
    StatCache reloaded = StatCache::Load(cache_file_);
    EXPECT_EQ(reloaded.load_problem(), "");
    EXPECT_EQ(reloaded.size(), 40u);
  }
}

TEST_F(StatCacheTest, FilesGoneFromTheTreeLeaveTheCache) {
  ASSERT_TRUE(Walk().ok());
  fs::remove_all(src_.path() / "d0");
  ASSERT_TRUE(Walk().ok());
  EXPECT_EQ(StatCache::Load(cache_file_).size(), 30u);
}

TEST_F(StatCacheTest, TheUploadedTreeIsKeptForItsDaemonOnly) {
  auto snap = Walk();
  ASSERT_TRUE(snap.ok());
  StatCache cache = StatCache::Load(cache_file_);
  absl::flat_hash_set<Digest> dirs;
  for (const auto& [d, bytes] : snap->directories) dirs.insert(d);
  cache.SetUploadedTree("daemon A", dirs);
  ASSERT_TRUE(cache.Save(cache_file_, absl::Now() + kLater).ok());
  StatCache reloaded = StatCache::Load(cache_file_);
  EXPECT_EQ(reloaded.load_problem(), "");
  ASSERT_NE(reloaded.UploadedTree("daemon A"), nullptr);
  EXPECT_EQ(*reloaded.UploadedTree("daemon A"), dirs);
  EXPECT_EQ(reloaded.UploadedTree("daemon B"), nullptr) << "another daemon, or A restarted";
  EXPECT_EQ(reloaded.UploadedTree(""), nullptr);
}

TEST(StatCacheFileTest, OneFilePerRootUnderTheCacheDir) {
  const fs::path dir = "/home/u/.cache/amld";
  const fs::path a = StatCacheFileFor(dir, "/src/a");
  EXPECT_EQ(a.parent_path(), dir);
  EXPECT_NE(a, StatCacheFileFor(dir, "/src/b"));
  EXPECT_EQ(a, StatCacheFileFor(dir, "/src/a/"));
  EXPECT_EQ(a, StatCacheFileFor(dir, "/src/x/../a"));
}

TEST(StatCacheFileTest, DefaultDirFollowsXdgCacheHome) {
  const char* old = std::getenv("XDG_CACHE_HOME");
  std::string saved = old != nullptr ? old : "";
  ::setenv("XDG_CACHE_HOME", "/var/tmp/xdg", 1);
  EXPECT_EQ(DefaultStatCacheDir(), fs::path("/var/tmp/xdg/amld"));
  ::setenv("XDG_CACHE_HOME", "relative", 1);  // not absolute: ignored, as the spec says
  EXPECT_EQ(DefaultStatCacheDir().filename(), "amld");
  EXPECT_NE(DefaultStatCacheDir(), fs::path("relative/amld"));
  if (old != nullptr) {
    ::setenv("XDG_CACHE_HOME", saved.c_str(), 1);
  } else {
    ::unsetenv("XDG_CACHE_HOME");
  }
}

}  // namespace
}  // namespace amld::storage
