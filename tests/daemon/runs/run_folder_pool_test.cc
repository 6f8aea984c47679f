// The run-folder pool on its own (run_folder_pool.h): spares, and which
// finished runs' folders it removes. Housekeeping runs inline, so every
// effect is visible when the call returns. How the run manager uses the pool
// is in run_manager_test.cc (filled spares, retention across runs).
#include "daemon/runs/run_folder_pool.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "spdlog/spdlog.h"
#include "storage/snapshot/snapshot.h"
#include "tests/testing/fake_task_runner.h"
#include "tests/testing/test_util.h"

namespace amld::daemon {
namespace {

namespace fs = std::filesystem;
using amld::v1::RunStatus;
using testing::InlineTaskRunner;
using testing::TempDir;
using testing::WriteFile;

class RunFolderPoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = *amld::storage::StateStore::Open(dir_ / "amld.db");
    cas_ = *amld::storage::ContentStore::Open(dir_ / "cas");
    WriteFile(dir_ / "src/train.py", "print('hi')\n");
    auto snapshot = amld::storage::BuildSnapshot(dir_ / "src");
    ASSERT_TRUE(snapshot.ok()) << snapshot.status();
    ASSERT_TRUE(amld::storage::StoreSnapshot(*snapshot, *cas_).ok());
    root_ = snapshot->root;
    fs::create_directories(dir_ / "runs");
  }

  std::unique_ptr<RunFolderPool> MakePool(int keep) {
    return std::make_unique<RunFolderPool>(
        RunFolderPoolDeps{store_.get(), cas_.get(), &housekeeping_,
                          std::make_shared<spdlog::logger>("test")},
        RunFolderPoolOptions{dir_ / "runs", keep});
  }

  // A run in the store, ended (COMPLETED) at `end_seconds` unless `ended` is
  // false, with a folder under runs/.
  std::string Run(const std::string& id, int64_t end_seconds, bool ended = true) {
    amld::storage::NewRun nr;
    nr.id = id;
    nr.config.set_experiment_name("exp");
    nr.now = absl::FromUnixSeconds(1);
    EXPECT_TRUE(store_->InsertRun(nr).ok());
    const absl::Time end = absl::FromUnixSeconds(end_seconds);
    for (auto s : {RunStatus::PREPARING, RunStatus::STARTING, RunStatus::RUNNING}) {
      EXPECT_TRUE(store_->Transition(id, s, {}, end).ok());
    }
    if (ended) {
      EXPECT_TRUE(store_->Transition(id, RunStatus::FINALIZING, {}, end).ok());
      EXPECT_TRUE(store_->Transition(id, RunStatus::COMPLETED, {}, end).ok());
    }
    WriteFile(dir_ / "runs" / id / "wd/train.py", "x");
    return id;
  }
  bool HasFolder(const std::string& id) { return fs::exists(dir_ / "runs" / id); }

  TempDir dir_;
  std::unique_ptr<amld::storage::StateStore> store_;
  std::unique_ptr<amld::storage::ContentStore> cas_;
  amld::storage::Digest root_;
  InlineTaskRunner housekeeping_;
};

TEST_F(RunFolderPoolTest, StartLeavesOneFreshSpareAndNoStaleOnes) {
  WriteFile(dir_ / "runs/.spare-tmp-7/wd/x", "half made");
  WriteFile(dir_ / "runs/.spare-with-abc-1/wd/x", "an earlier daemon's");
  auto pool = MakePool(20);
  pool->Start();
  EXPECT_TRUE(fs::is_directory(dir_ / "runs/.spare/wd"));
  EXPECT_TRUE(fs::exists(dir_ / "runs/.spare/user_logs/std_log.txt"));
  EXPECT_FALSE(fs::exists(dir_ / "runs/.spare-tmp-7"));
  EXPECT_FALSE(fs::exists(dir_ / "runs/.spare-with-abc-1"));
}

TEST_F(RunFolderPoolTest, PrepareRenamesTheSpareOverLeftoversAndBuildsOneWhenNoneIsLeft) {
  auto pool = MakePool(20);
  pool->Start();
  struct stat spare_st;
  ASSERT_EQ(::stat((dir_ / "runs/.spare/wd").c_str(), &spare_st), 0);
  WriteFile(dir_ / "runs/exp_1_a/wd/half.py", "an earlier attempt's");
  ASSERT_TRUE(pool->Prepare("exp_1_a", root_).ok());
  const RunPaths a = pool->PathsFor("exp_1_a");
  struct stat wd_st;
  ASSERT_EQ(::stat(a.wd.c_str(), &wd_st), 0);
  EXPECT_EQ(wd_st.st_ino, spare_st.st_ino);
  EXPECT_FALSE(fs::exists(a.wd / "half.py"));
  EXPECT_EQ(testing::ReadFile(a.wd / "train.py"), "print('hi')\n");
  EXPECT_TRUE(fs::is_directory(a.outputs));
  EXPECT_TRUE(fs::is_directory(a.logs));
  EXPECT_TRUE(fs::exists(a.std_log));

  // No spare now: built in place. After the launch, a spare and a filled one.
  ASSERT_TRUE(pool->Prepare("exp_1_b", root_).ok());
  EXPECT_EQ(testing::ReadFile(pool->PathsFor("exp_1_b").wd / "train.py"), "print('hi')\n");
  pool->Launched(root_);
  EXPECT_TRUE(fs::exists(dir_ / "runs/.spare"));
  const fs::path filled = dir_ / "runs" / absl::StrCat(".spare-with-", root_.hash, "-", root_.size);
  EXPECT_EQ(testing::ReadFile(filled / "wd/train.py"), "print('hi')\n");
  ASSERT_TRUE(pool->Prepare("exp_1_c", root_).ok());
  EXPECT_FALSE(fs::exists(filled));  // taken by the run of the same snapshot
}

TEST_F(RunFolderPoolTest, OnlyTheNewestFinishedFoldersStayAndUnendedOrUnknownOnesAreLeft) {
  const std::string old_end = Run("exp_1_old", 100);
  const std::string new_end = Run("exp_1_new", 300);
  const std::string mid_end = Run("exp_1_mid", 200);
  const std::string running = Run("exp_1_running", 50, /*ended=*/false);
  WriteFile(dir_ / "runs/not_a_run/keep.txt", "mine");
  auto pool = MakePool(2);
  pool->Start();  // by end time in the store, not by name or mtime
  EXPECT_FALSE(HasFolder(old_end));
  EXPECT_TRUE(HasFolder(mid_end));
  EXPECT_TRUE(HasFolder(new_end));
  EXPECT_TRUE(HasFolder(running));
  EXPECT_TRUE(HasFolder("not_a_run"));

  // Keeping none: every ended run's folder goes; one the caller says ended
  // but the store says has not is kept all the same.
  auto keep_none = MakePool(0);
  keep_none->Start();
  EXPECT_FALSE(HasFolder(mid_end));
  EXPECT_FALSE(HasFolder(new_end));
  keep_none->Finished(running);
  EXPECT_TRUE(HasFolder(running));
}

TEST_F(RunFolderPoolTest, KeepAllRemovesNothing) {
  const std::string a = Run("exp_1_a", 100);
  auto pool = MakePool(kKeepAllRunFolders);
  pool->Start();
  pool->Finished(a);
  EXPECT_TRUE(HasFolder(a));
}

}  // namespace
}  // namespace amld::daemon
