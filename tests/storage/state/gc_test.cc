#include "storage/state/gc.h"

#include <gtest/gtest.h>

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
    NewRun run{.id = id, .now = absl::Now()};
    run.config.set_experiment_name("exp");
    run.config.set_script("train.py");
    ToProto(root, run.config.mutable_snapshot_root());
    ASSERT_TRUE(state_->InsertRun(run).ok());
  }

  fs::path dir_;
  std::unique_ptr<ContentStore> cas_;
  std::unique_ptr<StateStore> state_;
};

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

}  // namespace
}  // namespace amld::storage
