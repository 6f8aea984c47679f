#include "storage/state/gc.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>

#include <atomic>
#include <fstream>

#include "storage/snapshot/snapshot.h"

namespace amld::storage {
namespace {

namespace fs = std::filesystem;

class GcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ("gc_test." + std::to_string(::getpid()) + "." +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "src" / "pkg");
    std::ofstream(dir_ / "src" / "train.py") << "print('train')\n";
    std::ofstream(dir_ / "src" / "pkg" / "model.py") << "W = 1\n";
    auto cas = ContentStore::Open(dir_ / "cas");
    auto state = StateStore::Open(dir_ / "amld.db");
    ASSERT_TRUE(cas.ok() && state.ok());
    cas_ = std::move(*cas);
    state_ = std::move(*state);
  }
  void TearDown() override { fs::remove_all(dir_); }

  void SubmitRun(const std::string& id, const Digest& root) {
    NewRun run;
    run.id = id;
    run.now = absl::Now();
    run.config.set_experiment_name("exp");
    run.config.set_script("train.py");
    ToProto(root, run.config.mutable_snapshot_root());
    ASSERT_TRUE(state_->InsertRun(run).ok());
  }

  fs::path dir_;
  std::unique_ptr<ContentStore> cas_;
  std::unique_ptr<StateStore> state_;
};

// System mode's claims (who proved which blob) go with their blobs: a
// removed blob leaves no claim behind for anyone, a kept one keeps them.
TEST_F(GcTest, ClaimsOfRemovedBlobsGoInTheSameCollection) {
  auto kept = cas_->Put("a run's output");
  auto young = cas_->Put("just uploaded, not submitted yet");
  auto orphan = cas_->Put("uploaded long ago, never submitted");
  ASSERT_TRUE(kept.ok() && young.ok() && orphan.ok());
  auto snapshot = BuildSnapshot(dir_ / "src");
  ASSERT_TRUE(snapshot.ok()) << snapshot.status();
  ASSERT_TRUE(StoreSnapshot(*snapshot, *cas_).ok());
  SubmitRun("exp_1_00000001", snapshot->root);
  ASSERT_TRUE(state_->PutArtifacts("exp_1_00000001", {{"outputs/out.txt", *kept}}).ok());
  for (uint32_t uid : {1001u, 1002u}) {
    ASSERT_TRUE(state_->AddBlobClaims(uid, {*kept, *young, *orphan}).ok());
  }
  // The orphan is old; the young blob within the grace period.
  const fs::path orphan_path = cas_->ObjectPath(*orphan);
  const timespec old_times[2] = {{::time(nullptr) - 7200, 0}, {::time(nullptr) - 7200, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, orphan_path.c_str(), old_times, 0), 0);

  auto stats = CollectUnreferencedBlobs(*state_, *cas_, absl::Hours(1));
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->objects_removed, 1);
  EXPECT_FALSE(cas_->Contains(*orphan));
  for (uint32_t uid : {1001u, 1002u}) {
    auto unclaimed = state_->UnclaimedBlobs(uid, {*kept, *young, *orphan});
    ASSERT_TRUE(unclaimed.ok()) << unclaimed.status();
    EXPECT_EQ(*unclaimed, std::vector<Digest>{*orphan}) << "uid " << uid;
  }
}

TEST_F(GcTest, RemovesOnlyWhatNoRunReferences) {
  auto snapshot = BuildSnapshot(dir_ / "src");
  ASSERT_TRUE(snapshot.ok()) << snapshot.status();
  ASSERT_TRUE(StoreSnapshot(*snapshot, *cas_).ok());
  SubmitRun("exp_1_00000001", snapshot->root);
  auto artifact = cas_->Put("model weights");
  auto orphan = cas_->Put("uploaded, never submitted");
  ASSERT_TRUE(artifact.ok() && orphan.ok());
  ASSERT_TRUE(state_->PutArtifacts("exp_1_00000001", {{"outputs/model.bin", *artifact}}).ok());

  // Young objects survive a collection with a grace period...
  auto kept = CollectUnreferencedBlobs(*state_, *cas_, absl::Hours(1));
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_EQ(kept->objects_removed, 0);
  EXPECT_TRUE(cas_->Contains(*orphan));

  // ...and without one, only the unreferenced blob goes.
  auto stats = CollectUnreferencedBlobs(*state_, *cas_, absl::ZeroDuration());
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->objects_removed, 1);
  EXPECT_FALSE(cas_->Contains(*orphan));
  EXPECT_TRUE(cas_->Contains(*artifact));
  auto missing = FindMissingInTree(*cas_, snapshot->root);
  ASSERT_TRUE(missing.ok());
  EXPECT_TRUE(missing->empty());
  EXPECT_TRUE(Materialize(*cas_, snapshot->root, dir_ / "restored").ok());
}

// Makes the object of `d` look `age` old, as if stored then.
void Age(const ContentStore& cas, const Digest& d, absl::Duration age) {
  const absl::Time then = absl::Now() - age;
  struct timespec times[2];
  times[0] = times[1] = absl::ToTimespec(then);
  ASSERT_EQ(::utimensat(AT_FDCWD, cas.ObjectPath(d).c_str(), times, 0), 0);
}

TEST_F(GcTest, WhatTheDaemonHoldsBesidesRunsIsKept) {
  auto snapshot = BuildSnapshot(dir_ / "src");
  ASSERT_TRUE(snapshot.ok()) << snapshot.status();
  ASSERT_TRUE(StoreSnapshot(*snapshot, *cas_).ok());
  auto watched_file = cas_->Put("a watched file, changed but not yet in a published tree");
  auto orphan = cas_->Put("old upload");
  ASSERT_TRUE(watched_file.ok() && orphan.ok());

  CasCollector::Deps deps;
  deps.state = state_.get();
  deps.cas = cas_.get();
  deps.extra_live = [&](ExtraLive* extra) {
    extra->roots.push_back(snapshot->root);  // a watched root's published tree
    extra->blobs.insert(*watched_file);
  };
  CasCollector gc(deps, CasCollectorOptions{.grace = absl::ZeroDuration(), .interval = {}});
  EXPECT_EQ(gc.Last().started, absl::InfinitePast());
  auto report = gc.CollectNow();
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->stats.objects_removed, 1);
  EXPECT_FALSE(cas_->Contains(*orphan));
  EXPECT_TRUE(cas_->Contains(*watched_file));
  EXPECT_TRUE(Materialize(*cas_, snapshot->root, dir_ / "restored").ok());
  EXPECT_EQ(gc.Last().stats.objects_removed, 1);
  EXPECT_NE(gc.Last().started, absl::InfinitePast());
}

// A store that finds an old unreferenced object relies on it (dedup): the
// object's mtime is refreshed, so a collection running meanwhile, with a
// grace period, keeps it until the run that uses it is recorded.
TEST_F(GcTest, AnOldObjectStoredAgainOutlivesTheGracePeriod) {
  auto blob = cas_->Put("outputs/model.bin of an earlier, deleted upload");
  auto other = cas_->Put("never used again");
  ASSERT_TRUE(blob.ok() && other.ok());
  Age(*cas_, *blob, absl::Hours(3));
  Age(*cas_, *other, absl::Hours(3));
  ASSERT_TRUE(cas_->Put("outputs/model.bin of an earlier, deleted upload").ok());  // found: dedup
  EXPECT_EQ(cas_->FindMissing({*other}).size(), 0u);  // a client told it is present
  Age(*cas_, *other, absl::Hours(3));                 // ...long ago

  auto stats = CollectUnreferencedBlobs(*state_, *cas_, absl::Hours(1));
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_TRUE(cas_->Contains(*blob));
  EXPECT_FALSE(cas_->Contains(*other));
  EXPECT_EQ(stats->objects_removed, 1);
}

TEST_F(GcTest, TheBackgroundCollectorRunsEveryIntervalAndStops) {
  auto orphan = cas_->Put("abandoned upload");
  ASSERT_TRUE(orphan.ok());
  std::atomic<int> reports{0};
  CasCollector::Deps deps;
  deps.state = state_.get();
  deps.cas = cas_.get();
  deps.on_report = [&](const GcReport& r) {
    EXPECT_TRUE(r.status.ok()) << r.status;
    ++reports;
  };
  CasCollector gc(deps, {.grace = absl::ZeroDuration(), .interval = absl::Milliseconds(20)});
  gc.Start();
  for (int i = 0; i < 500 && reports.load() < 2; ++i) absl::SleepFor(absl::Milliseconds(10));
  gc.Stop();
  EXPECT_GE(reports.load(), 2);
  EXPECT_FALSE(cas_->Contains(*orphan));
}

}  // namespace
}  // namespace amld::storage
