// WatchedRoots (daemon/watch/watched_roots.h), stepped with a fake watcher and a
// fake clock: nothing is applied until the test advances past the settle
// delay and calls RunDueWork, or a Sync sees its cookie. After every step the
// daemon's tree must equal what a client walk of the folder gives, and every
// blob of it must be in the CAS. One test drives the real inotify watcher.
// Also the settle queue both watching pipelines share.
#include "daemon/watch/watched_roots.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <future>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "storage/snapshot/snapshot.h"
#include "tests/testing/fake_clock.h"
#include "daemon/watch/inotify.h"
#include "daemon/watch/settle_queue.h"
#include "tests/testing/fake_watcher.h"
#include "tests/testing/test_util.h"

namespace amld::daemon {
namespace {

namespace fs = std::filesystem;
namespace pb = amld::v1;
using amld::testing::FakeWatcher;
using amld::storage::Digest;
using amld::testing::Eventually;
using amld::testing::FakeClock;
using amld::testing::TempDir;
using amld::testing::WriteFile;

constexpr absl::Duration kSettle = absl::Milliseconds(100);

// The settle queue (daemon/watch/settle_queue.h) both pipelines share.
TEST(SettleQueueTest, QuietDelayMovesOnUpToTheMaxDelay) {
  FakeClock clock;
  SettleQueue<std::string> q(&clock, SettleDelays{absl::Milliseconds(100), absl::Seconds(1)});
  const absl::Time start = clock.Now();
  q.Add("a");
  EXPECT_EQ(q.NextDue(), start + absl::Milliseconds(100));
  // Changed again and again: due moves on with each change...
  for (int i = 0; i < 10; ++i) {
    clock.Advance(absl::Milliseconds(90));
    q.Add("a");
    EXPECT_TRUE(q.TakeDue().empty());
  }
  // ...but never past the max delay after the first change.
  clock.Advance(absl::Milliseconds(90));
  q.Add("a");
  EXPECT_EQ(q.NextDue(), start + absl::Seconds(1));
  clock.Advance(absl::Milliseconds(100));
  auto due = q.TakeDue();
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].first, "a");
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.NextDue(), absl::InfiniteFuture());
}

TEST(SettleQueueTest, WorkWithAShortMaxDelayIsNotPutOffByALongerOne) {
  FakeClock clock;
  SettleQueue<std::string, std::string> q(&clock, SettleDelays{});
  q.Add("rescan", SettleDelays{absl::Seconds(5), absl::Seconds(5)}) = "degraded";
  q.Add("rescan", SettleDelays{}) = "overflow";  // due now
  q.Add("rescan", SettleDelays{absl::Seconds(5), absl::Seconds(5)});
  EXPECT_EQ(q.NextDue(), clock.Now());
  auto due = q.TakeDue();
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].second, "overflow");
}

TEST(SettleQueueTest, TakeAndEraseIfIgnoreDueTimes) {
  FakeClock clock;
  SettleQueue<std::pair<std::string, int>> q(&clock,
                                             SettleDelays{absl::Seconds(1), absl::Seconds(2)});
  q.Add({"run1", 1});
  q.Add({"run1", 2});
  q.Add({"run2", 1});
  EXPECT_TRUE(q.Take({"run2", 1}).has_value());
  EXPECT_FALSE(q.Take({"run2", 1}).has_value());
  q.EraseIf([](const auto& key) { return key.first == "run1"; });
  EXPECT_TRUE(q.empty());
  clock.Advance(absl::Seconds(5));
  EXPECT_TRUE(q.TakeDue().empty());
}

class WatchedRootsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::canonical(src_.path());
    auto cas = amld::storage::ContentStore::Open(data_.path() / "cas");
    ASSERT_TRUE(cas.ok()) << cas.status();
    cas_ = *std::move(cas);
    WriteFile(root_ / "train.py", "print('hi')\n");
    WriteFile(root_ / "cfg" / "a.yaml", "a: 1\n");
    WriteFile(root_ / "cfg" / "deep" / "b.json", "{}\n");
    WriteFile(root_ / ".gitignore", "*.log\nbuild/\n");
    WriteFile(root_ / "run.log", "noise\n");
    WriteFile(root_ / "build" / "out.bin", "xx\n");
    ASSERT_EQ(::symlink("cfg/a.yaml", (root_ / "a_link").c_str()), 0);
  }
  void TearDown() override { roots_.reset(); }

  void StartRoots(WatchedRootsOptions o = {}) {
    o.state_file = data_.path() / "watched-roots";
    o.settle_delay = kSettle;
    o.run_worker_thread = false;
    if (o.cookie_timeout == absl::Seconds(10)) o.cookie_timeout = absl::Seconds(60);
    roots_ = std::make_unique<WatchedRoots>(WatchedRootsDeps{cas_.get(), &clock_, nullptr}, o);
    auto w = std::make_unique<FakeWatcher>();
    watcher_ = w.get();
    absl::Status started = roots_->Start(std::move(w));
    ASSERT_TRUE(started.ok()) << started;
  }

  // What a client walk of the folder gives now.
  Digest Walked() const {
    auto snap = amld::storage::BuildSnapshot(root_);
    EXPECT_TRUE(snap.ok()) << snap.status();
    return snap.ok() ? snap->root : Digest();
  }
  pb::WatchedRoot Listed() const {
    std::vector<pb::WatchedRoot> all = roots_->List();
    EXPECT_EQ(all.size(), 1u);
    return all.empty() ? pb::WatchedRoot() : all.front();
  }
  Digest Current() const { return amld::storage::FromProto(Listed().snapshot_root()); }
  void ExpectTreeMatchesWalkAndIsStored() {
    const Digest current = Current();
    EXPECT_EQ(current, Walked());
    auto missing = amld::storage::FindMissingInTree(*cas_, current);
    ASSERT_TRUE(missing.ok()) << missing.status();
    EXPECT_TRUE(missing->empty()) << missing->size() << " blobs missing, e.g. "
                                  << missing->front().ToString();
  }
  bool Watched(const std::string& rel) const {
    return watcher_->IdOf(rel.empty() ? root_ : root_ / rel).has_value();
  }
  // Steps past the settle delay and applies what is due.
  int Settle() {
    clock_.Advance(kSettle);
    return roots_->RunDueWork();
  }
  pb::WatchedRoot WatchOk() {
    auto w = roots_->Watch(root_);
    EXPECT_TRUE(w.ok()) << w.status();
    return w.ok() ? *w : pb::WatchedRoot();
  }
  // A sync cookie in the root now, or "".
  std::string FindCookie() const {
    for (const auto& e : fs::directory_iterator(root_)) {
      const std::string n = e.path().filename().string();
      if (absl::StartsWith(n, ".amld-cookie-")) return n;
    }
    return "";
  }
  // The cookie file a Sync in flight has written, once it exists.
  std::string WaitForCookie() const {
    std::string name;
    EXPECT_TRUE(Eventually([&] { return !(name = FindCookie()).empty(); }));
    return name;
  }

  TempDir src_;
  TempDir data_;
  fs::path root_;
  FakeClock clock_;
  std::unique_ptr<amld::storage::ContentStore> cas_;
  std::unique_ptr<WatchedRoots> roots_;
  FakeWatcher* watcher_ = nullptr;
};

TEST_F(WatchedRootsTest, WatchScansTheFolderAsAWalkDoes) {
  StartRoots();
  pb::WatchedRoot w = WatchOk();
  EXPECT_EQ(w.state(), pb::WatchedRoot::State::WATCHING);
  EXPECT_EQ(w.path(), root_.string());
  EXPECT_EQ(w.file_count(), 4);  // train.py, .gitignore, a.yaml, b.json
  EXPECT_EQ(w.rescan_count(), 1);
  EXPECT_EQ(w.last_rescan().reason(), "initial scan");
  ExpectTreeMatchesWalkAndIsStored();
  // Every included folder is watched, ignored ones are not.
  EXPECT_TRUE(Watched(""));
  EXPECT_TRUE(Watched("cfg"));
  EXPECT_TRUE(Watched("cfg/deep"));
  EXPECT_FALSE(Watched("build"));
  EXPECT_EQ(w.directories_watched(), 3);
}

// System mode: a root is read as its owner (uid 65534 here). What they
// cannot read is refused, naming the folder; the CAS is still written as
// the daemon; only they (or an admin: no as_owner) use and unwatch it; the
// owner survives a restart.
TEST_F(WatchedRootsTest, AUsersRootIsReadWithTheirRightsAndIsTheirs) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to read as another user";
  const RootOwner nobody{65534, 65534};
  fs::permissions(root_, fs::perms(0700));  // root's own: nobody may not read it
  StartRoots();
  auto refused = roots_->Watch(root_, nobody);
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(absl::IsPermissionDenied(refused.status())) << refused.status();
  EXPECT_TRUE(absl::StrContains(refused.status().message(), root_.string()))
      << refused.status();
  EXPECT_TRUE(roots_->List().empty());

  fs::permissions(root_, fs::perms(0755));
  auto w = roots_->Watch(root_, nobody);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->owner_uid(), 65534u);
  ExpectTreeMatchesWalkAndIsStored();
  struct stat object;
  ASSERT_EQ(::stat(cas_->ObjectPath(amld::storage::DigestOf("print('hi')\n")).c_str(), &object),
            0);
  EXPECT_EQ(object.st_uid, 0u) << "the CAS is written as the daemon";
  // Someone else watching it, using or unwatching it: refused, naming the owner.
  EXPECT_TRUE(absl::IsPermissionDenied(roots_->Watch(root_, RootOwner{1234, 1234}).status()));
  absl::Status theirs = roots_->Sync(root_, 1234u).status();
  EXPECT_TRUE(absl::IsPermissionDenied(theirs)) << theirs;
  // Named as people know them: "nobody (uid 65534)" (the name from passwd).
  EXPECT_TRUE(absl::StrContains(theirs.message(), "is watched by nobody (uid 65534)")) << theirs;
  EXPECT_TRUE(absl::IsPermissionDenied(roots_->Unwatch(root_, 1234u).status()));

  roots_.reset();  // a restart keeps the owner
  StartRoots();
  EXPECT_EQ(Listed().owner_uid(), 65534u);
  EXPECT_TRUE(roots_->Unwatch(root_, 65534u).ok());
}

TEST_F(WatchedRootsTest, AChangeIsAppliedOnlyAfterItSettles) {
  StartRoots();
  WatchOk();
  const Digest before = Current();
  WriteFile(root_ / "train.py", "print('changed')\n");
  ASSERT_TRUE(watcher_->Emit(root_, "train.py"));
  EXPECT_EQ(roots_->RunDueWork(), 0) << "applied before the settle delay";
  EXPECT_EQ(Listed().pending_changes(), 1);
  EXPECT_EQ(Current(), before);
  EXPECT_EQ(Settle(), 1);
  EXPECT_EQ(Listed().pending_changes(), 0);
  EXPECT_NE(Current(), before);
  ExpectTreeMatchesWalkAndIsStored();
  EXPECT_TRUE(cas_->Contains(amld::storage::DigestOf("print('changed')\n")));
  EXPECT_TRUE(Listed().has_last_change_time());
}

TEST_F(WatchedRootsTest, NewAndRemovedFoldersAndFiles) {
  StartRoots();
  WatchOk();
  WriteFile(root_ / "models" / "net" / "layer.py", "x = 1\n");
  WriteFile(root_ / "models" / "__init__.py", "");
  ASSERT_TRUE(watcher_->Emit(root_, "models", /*is_dir=*/true, /*created=*/true));
  Settle();
  ExpectTreeMatchesWalkAndIsStored();
  EXPECT_TRUE(Watched("models"));
  EXPECT_TRUE(Watched("models/net"));

  fs::remove_all(root_ / "cfg");
  fs::remove(root_ / "train.py");
  ASSERT_TRUE(watcher_->Emit(root_, "cfg", /*is_dir=*/true));
  ASSERT_TRUE(watcher_->Emit(root_, "train.py"));
  Settle();
  ExpectTreeMatchesWalkAndIsStored();
  EXPECT_FALSE(Watched("cfg"));
  EXPECT_FALSE(Watched("cfg/deep"));
}

TEST_F(WatchedRootsTest, FolderRenamedInsideTheTree) {
  StartRoots();
  WatchOk();
  fs::rename(root_ / "cfg", root_ / "config");
  ASSERT_TRUE(watcher_->EmitBatch({watcher_->Entry(root_, "cfg", true, false),
                                   watcher_->Entry(root_, "config", true, true)}));
  Settle();
  ExpectTreeMatchesWalkAndIsStored();
  EXPECT_TRUE(Watched("config"));
  EXPECT_TRUE(Watched("config/deep"));
  EXPECT_EQ(Listed().directories_watched(), 3);
}

TEST_F(WatchedRootsTest, SymlinksAndTypeChanges) {
  StartRoots();
  WatchOk();
  ASSERT_EQ(::symlink("train.py", (root_ / "cfg" / "t").c_str()), 0);
  ASSERT_TRUE(watcher_->Emit(root_ / "cfg", "t", false, true));
  fs::remove(root_ / "a_link");
  WriteFile(root_ / "a_link", "now a file\n");
  ASSERT_TRUE(watcher_->Emit(root_, "a_link"));
  Settle();
  ExpectTreeMatchesWalkAndIsStored();
  // A file replaced by a folder.
  fs::remove(root_ / "a_link");
  WriteFile(root_ / "a_link" / "inner.txt", "in\n");
  ASSERT_TRUE(watcher_->Emit(root_, "a_link", true, true));
  Settle();
  ExpectTreeMatchesWalkAndIsStored();
  EXPECT_TRUE(Watched("a_link"));
}

TEST_F(WatchedRootsTest, AnIgnoreFileChangeReevaluatesItsFolder) {
  StartRoots();
  WatchOk();
  // Stop ignoring *.log and build/: both come in, build/ gets a watch.
  WriteFile(root_ / ".gitignore", "*.tmp\n");
  ASSERT_TRUE(watcher_->Emit(root_, ".gitignore"));
  Settle();
  ExpectTreeMatchesWalkAndIsStored();
  EXPECT_TRUE(Watched("build"));
  EXPECT_EQ(Listed().file_count(), 6);
  // A nested .amlignore takes over from .gitignore in its folder.
  WriteFile(root_ / "cfg" / ".amlignore", "deep/\n*.yaml\n");
  ASSERT_TRUE(watcher_->Emit(root_ / "cfg", ".amlignore", false, true));
  Settle();
  ExpectTreeMatchesWalkAndIsStored();
  EXPECT_FALSE(Watched("cfg/deep"));
  // And its removal brings them back.
  fs::remove(root_ / "cfg" / ".amlignore");
  ASSERT_TRUE(watcher_->Emit(root_ / "cfg", ".amlignore"));
  Settle();
  ExpectTreeMatchesWalkAndIsStored();
  EXPECT_TRUE(Watched("cfg/deep"));
}

TEST_F(WatchedRootsTest, ALocalTrysOutputsStayOutAsInAWalk) {
  WriteFile(root_ / "outputs" / "model.json", "stale\n");
  StartRoots();
  WatchOk();
  ExpectTreeMatchesWalkAndIsStored();
  EXPECT_FALSE(Watched("outputs"));
  WriteFile(root_ / "logs" / "old.txt", "stale\n");
  ASSERT_TRUE(watcher_->Emit(root_, "logs", /*is_dir=*/true, /*created=*/true));
  Settle();
  ExpectTreeMatchesWalkAndIsStored();
  EXPECT_FALSE(Watched("logs"));
  EXPECT_EQ(Listed().file_count(), 4);
  // A `!` rule in the root's ignore file brings outputs/ back.
  WriteFile(root_ / ".gitignore", "*.log\nbuild/\n!/outputs/\n");
  ASSERT_TRUE(watcher_->Emit(root_, ".gitignore"));
  Settle();
  ExpectTreeMatchesWalkAndIsStored();
  EXPECT_TRUE(Watched("outputs"));
  EXPECT_EQ(Listed().file_count(), 5);
}

TEST_F(WatchedRootsTest, OverflowForcesAFullRescanThatIsListed) {
  StartRoots();
  WatchOk();
  // Changes whose events were lost.
  WriteFile(root_ / "cfg" / "deep" / "b.json", "{\"lost\": true}\n");
  WriteFile(root_ / "new.py", "pass\n");
  ASSERT_TRUE(watcher_->EmitOverflow());
  Settle();
  ExpectTreeMatchesWalkAndIsStored();
  pb::WatchedRoot w = Listed();
  EXPECT_EQ(w.rescan_count(), 2);
  EXPECT_TRUE(absl::StrContains(w.last_rescan().reason(), "overflow")) << w.last_rescan().reason();
  EXPECT_TRUE(w.last_rescan().has_time());
}

TEST_F(WatchedRootsTest, AnEventForAnUnknownWatchForcesAFullRescan) {
  StartRoots();
  WatchOk();
  WriteFile(root_ / "cfg" / "a.yaml", "a: 2\n");
  ASSERT_TRUE(watcher_->EmitUnknown());
  Settle();
  ExpectTreeMatchesWalkAndIsStored();
  EXPECT_TRUE(absl::StrContains(Listed().last_rescan().reason(), "unknown watch"));
}

TEST_F(WatchedRootsTest, SyncWaitsForItsCookieAndAppliesChangesWithoutSettling) {
  StartRoots();
  WatchOk();
  WriteFile(root_ / "train.py", "print('edited just now')\n");
  auto sync = std::async(std::launch::async, [&] { return roots_->Sync(root_); });
  const std::string cookie = WaitForCookie();
  ASSERT_FALSE(cookie.empty()) << "Sync wrote no cookie";
  // The kernel's order: the edit's event, then the cookie's.
  ASSERT_TRUE(watcher_->EmitBatch(
      {watcher_->Entry(root_, "train.py", false, false), watcher_->Entry(root_, cookie, false, true)}));
  auto got = sync.get();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(amld::storage::FromProto(got->snapshot_root()), Walked());
  EXPECT_EQ(got->changes_applied(), 1);
  EXPECT_FALSE(got->rescanned());
  EXPECT_FALSE(fs::exists(root_ / cookie)) << "the cookie was left behind";
  ExpectTreeMatchesWalkAndIsStored();
}

TEST_F(WatchedRootsTest, AFileWithAnotherNameOutsideTheRootIsCheckedOnEverySync) {
  // A write through the other name sends no event for the root.
  const fs::path outside = data_.path() / "outside.txt";
  WriteFile(outside, "first\n");
  ASSERT_EQ(::link(outside.c_str(), (root_ / "cfg" / "linked.txt").c_str()), 0);
  StartRoots();
  WatchOk();
  ExpectTreeMatchesWalkAndIsStored();
  WriteFile(outside, "second, longer\n");
  auto sync = std::async(std::launch::async, [&] { return roots_->Sync(root_); });
  const std::string cookie = WaitForCookie();
  ASSERT_TRUE(watcher_->Emit(root_, cookie, false, true));
  auto got = sync.get();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(amld::storage::FromProto(got->snapshot_root()), Walked());
}

TEST_F(WatchedRootsTest, OverflowReleasesAWaitingSyncWithARescan) {
  StartRoots();
  WatchOk();
  WriteFile(root_ / "train.py", "print('lost event')\n");
  auto sync = std::async(std::launch::async, [&] { return roots_->Sync(root_); });
  ASSERT_FALSE(WaitForCookie().empty());
  ASSERT_TRUE(watcher_->EmitOverflow());  // the cookie's own event was lost too
  auto got = sync.get();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(got->rescanned());
  EXPECT_EQ(amld::storage::FromProto(got->snapshot_root()), Walked());
}

TEST_F(WatchedRootsTest, SyncGivesUpWhenItsCookieNeverArrives) {
  WatchedRootsOptions o;
  o.cookie_timeout = absl::Milliseconds(200);
  StartRoots(o);
  WatchOk();
  auto got = roots_->Sync(root_);
  EXPECT_TRUE(absl::IsDeadlineExceeded(got.status())) << got.status();
  EXPECT_EQ(FindCookie(), "") << "cookie left behind";
}

TEST_F(WatchedRootsTest, SyncOfAFolderNotWatchedIsNotFound) {
  StartRoots();
  EXPECT_TRUE(absl::IsNotFound(roots_->Sync(root_).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(roots_->Sync("relative/dir").status()));
  WatchOk();
  EXPECT_TRUE(absl::IsNotFound(roots_->Sync(root_ / "cfg").status()))
      << "a subfolder is not a root";
}

TEST_F(WatchedRootsTest, OutOfWatchesIsDegradedWithTheSysctlToRaise) {
  StartRoots();
  watcher_->set_watch_limit(2);
  pb::WatchedRoot w = WatchOk();
  EXPECT_EQ(w.state(), pb::WatchedRoot::State::DEGRADED);
  EXPECT_TRUE(absl::StrContains(w.detail(), "sysctl fs.inotify.max_user_watches=")) << w.detail();
  EXPECT_EQ(w.directories_watched(), 0) << "a degraded root keeps no watches";
  EXPECT_TRUE(watcher_->WatchedDirs().empty());
  auto sync = roots_->Sync(root_);
  EXPECT_TRUE(absl::IsFailedPrecondition(sync.status())) << sync.status();
  // Raised: watching again recovers.
  watcher_->set_watch_limit(-1);
  w = WatchOk();
  EXPECT_EQ(w.state(), pb::WatchedRoot::State::WATCHING);
  EXPECT_EQ(w.last_rescan().reason(), "registered again");
  ExpectTreeMatchesWalkAndIsStored();
}

TEST_F(WatchedRootsTest, LimitsRefuseARootAndListTheLargestFiles) {
  WriteFile(root_ / "cfg" / "weights.bin", std::string(5000, 'w'));
  WatchedRootsOptions o;
  o.max_snapshot_files = 3;
  StartRoots(o);
  auto w = roots_->Watch(root_);
  ASSERT_TRUE(absl::IsResourceExhausted(w.status())) << w.status();
  EXPECT_TRUE(absl::StrContains(w.status().message(), "cfg/weights.bin")) << w.status();
  EXPECT_TRUE(roots_->List().empty()) << "a refused root stays unregistered";
}

TEST_F(WatchedRootsTest, ARootThatGrowsOverTheLimitsRefusesSnapshots) {
  WatchedRootsOptions o;
  o.max_snapshot_bytes = 4000;
  StartRoots(o);
  WatchOk();
  WriteFile(root_ / "cfg" / "big.bin", std::string(5000, 'b'));
  ASSERT_TRUE(watcher_->Emit(root_ / "cfg", "big.bin", false, true));
  Settle();
  pb::WatchedRoot w = Listed();
  EXPECT_EQ(w.state(), pb::WatchedRoot::State::ERROR);
  EXPECT_TRUE(absl::StrContains(w.detail(), "cfg/big.bin")) << w.detail();
  auto sync = std::async(std::launch::async, [&] { return roots_->Sync(root_); });
  const std::string cookie = WaitForCookie();
  ASSERT_TRUE(watcher_->Emit(root_, cookie, false, true));
  auto got = sync.get();
  EXPECT_TRUE(absl::IsResourceExhausted(got.status())) << got.status();
  EXPECT_TRUE(absl::StrContains(got.status().message(), "cfg/big.bin"));
}

TEST_F(WatchedRootsTest, RootsSurviveARestartWithAFullRescan) {
  StartRoots();
  WatchOk();
  roots_.reset();
  WriteFile(root_ / "train.py", "print('changed while down')\n");
  StartRoots();
  pb::WatchedRoot w = Listed();
  EXPECT_EQ(w.state(), pb::WatchedRoot::State::SCANNING);
  EXPECT_EQ(roots_->RunDueWork(), 1);
  w = Listed();
  EXPECT_EQ(w.state(), pb::WatchedRoot::State::WATCHING);
  EXPECT_EQ(w.last_rescan().reason(), "daemon restart");
  ExpectTreeMatchesWalkAndIsStored();
}

TEST_F(WatchedRootsTest, UnwatchForgetsTheRootAndItsWatches) {
  StartRoots();
  WatchOk();
  auto gone = roots_->Unwatch(root_);
  ASSERT_TRUE(gone.ok()) << gone.status();
  EXPECT_TRUE(roots_->List().empty());
  EXPECT_TRUE(watcher_->WatchedDirs().empty());
  EXPECT_TRUE(absl::IsNotFound(roots_->Sync(root_).status()));
  EXPECT_TRUE(absl::IsNotFound(roots_->Unwatch(root_).status()));
  roots_.reset();
  StartRoots();
  EXPECT_TRUE(roots_->List().empty()) << "unwatched roots come back after a restart";
}

TEST_F(WatchedRootsTest, NestedRootsAreRefused) {
  StartRoots();
  WatchOk();
  EXPECT_TRUE(absl::IsFailedPrecondition(roots_->Watch(root_ / "cfg").status()));
  EXPECT_TRUE(absl::IsFailedPrecondition(roots_->Watch(root_.parent_path()).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(roots_->Watch("cfg").status()));
  EXPECT_TRUE(absl::IsNotFound(roots_->Watch(root_ / "nope").status()));
  // Watching the same root again is harmless.
  EXPECT_EQ(WatchOk().rescan_count(), 1);
}

// Issue 19: watching <data>/cas made each stored folder a new change, the
// store growing without end, and resumed after a restart.
TEST_F(WatchedRootsTest, RootsInsideTheDataDirAreRefusedAndNotResumed) {
  WatchedRootsOptions o;
  o.data_dir = data_.path();
  StartRoots(o);
  for (const fs::path& p : {data_.path(), data_.path() / "cas", data_.path() / "cas/objects"}) {
    absl::Status s = roots_->Watch(p).status();
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << p << ": " << s;
    EXPECT_NE(s.message().find("inside amld's own data dir"), absl::string_view::npos) << s;
  }
  EXPECT_TRUE(roots_->List().empty());
  // One registered by an earlier amld is dropped at start.
  roots_.reset();
  WriteFile(data_.path() / "watched-roots", absl::StrCat("1 ", (data_.path() / "cas").string(), "\n"));
  StartRoots(o);
  EXPECT_TRUE(roots_->List().empty());
  EXPECT_TRUE(WatchOk().path().size() > 0);  // a source folder is still fine
}

TEST_F(WatchedRootsTest, RemovedRootIsAnErrorUntilWatchedAgain) {
  StartRoots();
  WatchOk();
  WatchEvent gone{WatchEvent::Kind::kSelfGone, *watcher_->IdOf(root_)};
  fs::rename(root_, root_.string() + "-moved");
  ASSERT_TRUE(watcher_->EmitBatch({gone}));
  pb::WatchedRoot w = Listed();
  EXPECT_EQ(w.state(), pb::WatchedRoot::State::ERROR);
  EXPECT_TRUE(absl::IsFailedPrecondition(roots_->Sync(root_).status()));
  fs::rename(root_.string() + "-moved", root_);
  EXPECT_EQ(WatchOk().state(), pb::WatchedRoot::State::WATCHING);
  ExpectTreeMatchesWalkAndIsStored();
}

// The real inotify watcher and worker thread, end to end.
TEST_F(WatchedRootsTest, RealInotifySeesAnEditBeforeSyncReturns) {
  WatchedRootsOptions o;
  o.state_file = data_.path() / "watched-roots";
  roots_ = std::make_unique<WatchedRoots>(WatchedRootsDeps{cas_.get(), base::RealClock(), nullptr}, o);
  auto watcher = NewInotifyWatcher();
  ASSERT_TRUE(watcher.ok()) << watcher.status();
  ASSERT_TRUE(roots_->Start(*std::move(watcher)).ok());
  WatchOk();
  for (int i = 0; i < 3; ++i) {
    WriteFile(root_ / "cfg" / "deep" / "b.json", absl::StrCat("{\"i\": ", i, "}\n"));
    WriteFile(root_ / absl::StrCat("new", i) / "x.py", absl::StrCat("x = ", i, "\n"));
    auto got = roots_->Sync(root_);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(amld::storage::FromProto(got->snapshot_root()), Walked()) << "stale at step " << i;
  }
  // The worker applies changes by itself once they settle.
  WriteFile(root_ / "train.py", "print('settled')\n");
  EXPECT_TRUE(Eventually([&] { return Current() == Walked(); }));
}

}  // namespace
}  // namespace amld::daemon
