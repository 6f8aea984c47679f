#include "storage/state/state_store.h"

#include <sqlite3.h>
#include <stdlib.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "storage/state/state_schema.h"
#include "tests/testing/build_paths.h"
#include "tests/testing/test_util.h"

namespace amld::storage {
namespace {

namespace fs = std::filesystem;
namespace v1 = amld::v1;
using google::protobuf::util::MessageDifferencer;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

constexpr int64_t kBaseNs = 1'750'000'000'000'000'000;  // 2025-06-15
absl::Time At(int64_t seconds) { return absl::FromUnixNanos(kBaseNs + seconds * 1'000'000'000); }

int64_t Nanos(const google::protobuf::Timestamp& ts) {
  return ts.seconds() * 1'000'000'000 + ts.nanos();
}

google::protobuf::Timestamp Ts(int64_t ns) {
  google::protobuf::Timestamp ts;
  ts.set_seconds(ns / 1'000'000'000);
  ts.set_nanos(static_cast<int32_t>(ns % 1'000'000'000));
  return ts;
}

amld::v1::Metric NumberMetric(const std::string& name, int64_t step, double value,
                              int64_t time_ns) {
  amld::v1::Metric m;
  m.set_name(name);
  m.set_step(step);
  m.set_number(value);
  *m.mutable_time() = Ts(time_ns);
  return m;
}

std::string HashOf(const std::string& s) { return DigestOf(s).hash; }

// A plain SQLite connection of the test's own, to look at (or tamper with)
// the file behind the store's back.
class RawDb {
 public:
  explicit RawDb(const fs::path& path, bool read_only = false) {
    int flags = read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db_, flags, nullptr), SQLITE_OK) << path;
  }
  ~RawDb() { sqlite3_close(db_); }
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;

  void Exec(const std::string& sql) {
    char* err = nullptr;
    int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
    EXPECT_EQ(rc, SQLITE_OK) << sql << ": " << (err ? err : "");
    sqlite3_free(err);
  }
  // Every row, columns joined with "|".
  std::vector<std::string> Rows(const std::string& sql) {
    std::vector<std::string> rows;
    sqlite3_stmt* stmt = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK) << sql;
    while (stmt != nullptr && sqlite3_step(stmt) == SQLITE_ROW) {
      std::string row;
      for (int i = 0; i < sqlite3_column_count(stmt); ++i) {
        const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, i));
        absl::StrAppend(&row, i ? "|" : "", text ? text : "NULL");
      }
      rows.push_back(row);
    }
    sqlite3_finalize(stmt);
    return rows;
  }
  std::string One(const std::string& sql) {
    std::vector<std::string> rows = Rows(sql);
    return rows.empty() ? "<no row>" : rows.front();
  }

 private:
  sqlite3* db_ = nullptr;
};

amld::v1::RunConfig Config(const std::string& experiment, const std::string& snapshot = "src") {
  amld::v1::RunConfig config;
  config.set_experiment_name(experiment);
  config.mutable_snapshot_root()->set_hash(HashOf(snapshot));
  config.mutable_snapshot_root()->set_size_bytes(static_cast<int64_t>(snapshot.size()));
  config.set_script("train.py");
  config.add_arguments("--epochs");
  config.add_arguments("3");
  (*config.mutable_tags())["team"] = "vision";
  config.mutable_git()->set_repository_uri("https://example.com/ml.git");
  config.mutable_git()->set_commit("4f2a9c0d1e8b7a6f5e4d3c2b1a0f9e8d7c6b5a49");
  return config;
}

NewRun MakeRun(const std::string& id, const std::string& experiment, absl::Time now,
               uint32_t uid = 1000, const std::string& parent = "") {
  NewRun run;
  run.id = id;
  run.config = Config(experiment);
  run.submitter_uid = uid;
  run.parent_run_id = parent;
  run.now = now;
  return run;
}

std::vector<RunStatus> Statuses(const amld::v1::Run& run) {
  std::vector<RunStatus> out;
  for (const auto& t : run.history()) out.push_back(t.status());
  return out;
}

std::vector<std::string> Ids(const std::vector<amld::v1::Run>& runs) {
  std::vector<std::string> out;
  for (const auto& r : runs) out.push_back(r.id());
  return out;
}

class StateStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_path_ = dir_ / "state.db";
    Reopen();
  }
  void TearDown() override { store_.reset(); }

  void Reopen() {
    store_.reset();
    auto opened = StateStore::Open(db_path_);
    ASSERT_TRUE(opened.ok()) << opened.status();
    store_ = std::move(*opened);
  }

  amld::v1::Run Insert(const NewRun& run) {
    auto inserted = store_->InsertRun(run);
    EXPECT_TRUE(inserted.ok()) << inserted.status();
    return inserted.ok() ? *inserted : amld::v1::Run();
  }

  // Moves a run along legal transitions to `target`, one second apart.
  void Reach(const std::string& id, RunStatus target, int64_t start_second) {
    std::vector<RunStatus> path;
    switch (target) {
      case v1::RunStatus::QUEUED:
        break;
      case v1::RunStatus::PREPARING:
        path = {v1::RunStatus::PREPARING};
        break;
      case v1::RunStatus::STARTING:
        path = {v1::RunStatus::PREPARING, v1::RunStatus::STARTING};
        break;
      case v1::RunStatus::RUNNING:
        path = {v1::RunStatus::PREPARING, v1::RunStatus::STARTING, v1::RunStatus::RUNNING};
        break;
      case v1::RunStatus::FINALIZING:
        path = {v1::RunStatus::PREPARING, v1::RunStatus::STARTING, v1::RunStatus::RUNNING,
                v1::RunStatus::FINALIZING};
        break;
      case v1::RunStatus::COMPLETED:
        path = {v1::RunStatus::PREPARING, v1::RunStatus::STARTING, v1::RunStatus::RUNNING,
                v1::RunStatus::FINALIZING, v1::RunStatus::COMPLETED};
        break;
      case v1::RunStatus::CANCEL_REQUESTED:
        path = {v1::RunStatus::CANCEL_REQUESTED};
        break;
      case v1::RunStatus::FAILED:
        path = {v1::RunStatus::FAILED};
        break;
      case v1::RunStatus::CANCELED:
        path = {v1::RunStatus::CANCELED};
        break;
      default:
        FAIL() << "cannot reach " << StatusName(target);
    }
    for (RunStatus s : path) {
      auto moved = store_->Transition(id, s, {}, At(++start_second));
      ASSERT_TRUE(moved.ok()) << moved.status();
    }
  }

  amld::testing::TempDir tmp_{"state_store_test."};
  const fs::path dir_ = tmp_.path();
  fs::path db_path_;
  std::unique_ptr<StateStore> store_;
};

// ---------------------------------------------------------------------------
// Opening and migrating.

TEST_F(StateStoreTest, EmptyFileIsMigratedToLatestWithWalAndTables) {
  EXPECT_EQ(StateStore::LatestSchemaVersion(), 8);
  auto version = store_->SchemaVersion();
  ASSERT_TRUE(version.ok()) << version.status();
  EXPECT_EQ(*version, StateStore::LatestSchemaVersion());

  store_.reset();  // the store holds the file's lock while it is open
  RawDb raw(db_path_);
  EXPECT_EQ(raw.One("PRAGMA user_version"), absl::StrCat(StateStore::LatestSchemaVersion()));
  EXPECT_EQ(raw.One("PRAGMA journal_mode"), "wal");  // WAL is a property of the file
  EXPECT_EQ(raw.One("PRAGMA application_id"), absl::StrCat(kStateApplicationId));
  EXPECT_THAT(raw.Rows("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name"),
              ElementsAre("artifacts", "blob_claims", "compute_targets", "experiments", "metrics",
                          "models", "run_labels", "run_transitions", "runs"));
  EXPECT_THAT(raw.Rows("SELECT name FROM sqlite_master WHERE type='index' AND sql IS NOT NULL "
                       "ORDER BY name"),
              ElementsAre("metrics_by_run", "models_by_run", "runs_by_created",
                          "runs_by_experiment", "runs_by_parent", "runs_by_status",
                          "runs_by_submitter"));
}

// Issue 20: the daemon is the file's only user, so the store holds the
// file's lock while open (locking_mode EXCLUSIVE): SQLite keeps the WAL index
// in memory and takes no -shm locks around each statement (~70 fcntl calls
// per trivial run). Another connection is refused until the store closes,
// and what was committed is all there after a close.
TEST_F(StateStoreTest, TheOpenStoreHoldsTheFileAndNothingSharesIt) {
  ASSERT_TRUE(store_->InsertRun(MakeRun("r1", "mnist", At(1))).ok());
  {
    sqlite3* other = nullptr;
    ASSERT_EQ(sqlite3_open(db_path_.c_str(), &other), SQLITE_OK);
    EXPECT_EQ(sqlite3_exec(other, "SELECT COUNT(*) FROM runs", nullptr, nullptr, nullptr),
              SQLITE_BUSY);
    sqlite3_close(other);
  }
  EXPECT_FALSE(fs::exists(fs::path(db_path_.string() + "-shm")));
  store_.reset();
  EXPECT_EQ(RawDb(db_path_).One("SELECT COUNT(*) FROM runs"), "1");
}

TEST_F(StateStoreTest, ForeignKeysAreEnforcedAndAFailedWriteLeavesNothing) {
  store_.reset();
  {
    // A trigger makes every new experiment insert an artifact of a run that
    // does not exist: with foreign keys on, that insert fails.
    RawDb raw(db_path_);
    raw.Exec(
        "CREATE TRIGGER dangling AFTER INSERT ON experiments BEGIN "
        "INSERT INTO artifacts VALUES ('no-such-run', 'p', 'h', 1); END");
  }
  Reopen();
  auto created = store_->CreateExperiment("mnist", At(0));
  ASSERT_FALSE(created.ok());
  EXPECT_THAT(created.status().message(), HasSubstr("FOREIGN KEY"));
  EXPECT_EQ(store_->GetExperiment("mnist").status().code(), absl::StatusCode::kNotFound);
  auto inserted = store_->InsertRun(MakeRun("r1", "mnist", At(0)));
  EXPECT_FALSE(inserted.ok());
  EXPECT_EQ(store_->GetRun("r1").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(StateStoreTest, ReopeningKeepsEverything) {
  Insert(MakeRun("parent", "sweep", At(0)));
  Insert(MakeRun("child", "sweep", At(1), 1001, "parent"));
  Reach("child", v1::RunStatus::RUNNING, 2);
  ASSERT_TRUE(store_->SetRunHandle("child", "pid=42").ok());
  ASSERT_TRUE(store_->PutArtifacts("child", {{"outputs/a.txt", DigestOf("a")}}).ok());
  ASSERT_TRUE(store_->AppendMetrics("child", {NumberMetric("loss", 1, 0.5, kBaseNs)}).ok());
  amld::v1::Run before = *store_->GetRun("child");

  Reopen();
  auto after = store_->GetRun("child");
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_TRUE(MessageDifferencer::Equals(before, *after)) << after->DebugString();
  EXPECT_EQ(*store_->GetRunHandle("child"), "pid=42");
  EXPECT_EQ(store_->ListArtifacts("child")->size(), 1u);
  ASSERT_EQ(store_->GetMetrics("child", {})->size(), 1u);
  EXPECT_EQ(store_->GetExperiment("sweep")->run_count(), 2);
  EXPECT_EQ(*store_->SchemaVersion(), StateStore::LatestSchemaVersion());
}

TEST_F(StateStoreTest, DeleteRunRemovesAnEndedRunsRowsOnly) {
  Insert(MakeRun("parent", "sweep", At(0)));
  Insert(MakeRun("child", "sweep", At(1), 1001, "parent"));
  Insert(MakeRun("other", "sweep", At(2)));
  ASSERT_TRUE(store_->PutArtifacts("child", {{"outputs/a.txt", DigestOf("a")}}).ok());
  ASSERT_TRUE(store_->AppendMetrics("child", {NumberMetric("loss", 1, 0.5, kBaseNs)}).ok());
  ASSERT_TRUE(store_->PutArtifacts("other", {{"outputs/a.txt", DigestOf("a")}}).ok());
  // Not ended: refused, and kept.
  EXPECT_EQ(store_->DeleteRun("child").code(), absl::StatusCode::kFailedPrecondition);
  Reach("child", v1::RunStatus::FAILED, 10);
  Reach("parent", v1::RunStatus::CANCELED, 20);
  // A parent goes after its children.
  absl::Status refused = store_->DeleteRun("parent");
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.message(), HasSubstr("child"));
  ASSERT_TRUE(store_->DeleteRun("child").ok());
  ASSERT_TRUE(store_->DeleteRun("parent").ok());
  EXPECT_EQ(store_->GetRun("child").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->ListArtifacts("child", "").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->DeleteRun("child").code(), absl::StatusCode::kNotFound);
  // Another run's rows stay, and so does what it refers to.
  EXPECT_EQ(store_->ListArtifacts("other", "")->size(), 1u);
  auto refs = store_->ReferencedDigests();
  ASSERT_TRUE(refs.ok()) << refs.status();
}

TEST_F(StateStoreTest, PlacementChangesWithoutATransitionUntilTheRunEnds) {
  Insert(MakeRun("slurm", "exp", At(0)));
  Reach("slurm", v1::RunStatus::STARTING, 1);
  auto pending = store_->SetRunPlacement("slurm", "slurm:12 PENDING (Resources)");
  ASSERT_TRUE(pending.ok()) << pending.status();
  EXPECT_EQ(pending->placement(), "slurm:12 PENDING (Resources)");
  EXPECT_EQ(pending->status(), v1::RunStatus::STARTING);
  const int transitions = pending->history_size();
  EXPECT_EQ(store_->GetRun("slurm")->placement(), "slurm:12 PENDING (Resources)");
  EXPECT_EQ(store_->GetRun("slurm")->history_size(), transitions);
  ASSERT_TRUE(store_->Transition("slurm", v1::RunStatus::CANCELED, {}, At(10)).ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(store_->SetRunPlacement("slurm", "x").status()));
  EXPECT_EQ(store_->GetRun("slurm")->placement(), "slurm:12 PENDING (Resources)");
  EXPECT_TRUE(absl::IsNotFound(store_->SetRunPlacement("nope", "x").status()));
}

TEST_F(StateStoreTest, AssignedGpusAreRecordedWithATransitionAndKept) {
  Insert(MakeRun("gpu", "exp", At(0)));
  auto queued = store_->GetRun("gpu");
  EXPECT_THAT(queued->assigned_gpus(), ElementsAre());
  TransitionDetails details;
  details.assigned_gpus = std::vector<int>{2, 0};
  auto preparing = store_->Transition("gpu", v1::RunStatus::PREPARING, details, At(1));
  ASSERT_TRUE(preparing.ok()) << preparing.status();
  EXPECT_THAT(preparing->assigned_gpus(), ElementsAre(2, 0));
  // A transition without them leaves them as they are.
  ASSERT_TRUE(store_->Transition("gpu", v1::RunStatus::STARTING, {}, At(2)).ok());
  Reopen();
  EXPECT_THAT(store_->GetRun("gpu")->assigned_gpus(), ElementsAre(2, 0));
  EXPECT_THAT(store_->RunsInStatus({v1::RunStatus::STARTING})->at(0).assigned_gpus(),
              ElementsAre(2, 0));
  // An empty list clears them.
  details.assigned_gpus = std::vector<int>{};
  EXPECT_THAT(store_->Transition("gpu", v1::RunStatus::RUNNING, details, At(3))->assigned_gpus(),
              ElementsAre());
}

fs::path DataFile(const std::string& name) {
  return testing::SourceDir() / "tests" / "data" / name;
}

TEST_F(StateStoreTest, CheckedInV1FileIsMigration1Verbatim) {
  // The fixture must be what migration 1 makes, or it proves nothing about
  // migrating real old files.
  fs::path fresh = dir_ / "v1-fresh.db";
  RawDb made(fresh);
  made.Exec(absl::StrCat("BEGIN;", SchemaMigrations()[0].sql, "COMMIT;"));
  RawDb fixture(DataFile("state-v1.sqlite"), /*read_only=*/true);
  const std::string schema = "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name";
  EXPECT_EQ(fixture.Rows(schema), made.Rows(schema));
  EXPECT_EQ(fixture.One("PRAGMA user_version"), "1");
  EXPECT_EQ(fixture.One("PRAGMA application_id"), absl::StrCat(kStateApplicationId));
}

TEST_F(StateStoreTest, MigratesCheckedInV1FileWithItsData) {
  store_.reset();
  fs::path old = dir_ / "old.db";
  fs::copy_file(DataFile("state-v1.sqlite"), old);
  auto opened = StateStore::Open(old);
  ASSERT_TRUE(opened.ok()) << opened.status();
  store_ = std::move(*opened);
  EXPECT_EQ(*store_->SchemaVersion(), StateStore::LatestSchemaVersion());
  store_.reset();  // the store holds the file's lock while it is open
  {
    RawDb raw(old);
    EXPECT_EQ(raw.One("PRAGMA journal_mode"), "wal");
    EXPECT_EQ(raw.One("PRAGMA foreign_key_check"), "<no row>");
  }
  opened = StateStore::Open(old);
  ASSERT_TRUE(opened.ok()) << opened.status();
  store_ = std::move(*opened);

  auto done = store_->GetRun("mnist_1700000000_0a1b2c3d");
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->status(), v1::RunStatus::COMPLETED);
  EXPECT_EQ(done->config().experiment_name(), "mnist");
  EXPECT_EQ(done->config().script(), "train.py");
  EXPECT_THAT(done->config().arguments(), ElementsAre("--epochs", "3"));
  EXPECT_EQ(done->config().tags().at("team"), "vision");
  EXPECT_EQ(done->config().git().commit(), "4f2a9c0d1e8b7a6f5e4d3c2b1a0f9e8d7c6b5a49");
  EXPECT_EQ(done->config().snapshot_root().size_bytes(), 412);
  EXPECT_EQ(done->submitter_uid(), 1000u);
  EXPECT_EQ(done->placement(), "local");
  EXPECT_THAT(done->assigned_gpus(), ElementsAre());  // v1 had no GPUs
  EXPECT_EQ(Nanos(done->created_time()), 1700000000000000000);
  EXPECT_THAT(Statuses(*done), ElementsAre(v1::RunStatus::QUEUED, v1::RunStatus::PREPARING,
                                           v1::RunStatus::STARTING, v1::RunStatus::RUNNING,
                                           v1::RunStatus::FINALIZING, v1::RunStatus::COMPLETED));
  EXPECT_EQ(Nanos(done->history(3).time()), 1700000001250000000);

  auto failed = store_->GetRun("mnist_1700000100_deadbeef");
  ASSERT_TRUE(failed.ok()) << failed.status();
  EXPECT_EQ(failed->status(), v1::RunStatus::FAILED);
  EXPECT_EQ(failed->exit_code(), 3);
  EXPECT_EQ(failed->error(), "exit code 3");
  EXPECT_EQ(failed->submitter_uid(), 1001u);
  EXPECT_EQ(failed->history(5).reason(), "exit code 3");

  auto child = store_->GetRun("cifar_1700000201_00000002");
  ASSERT_TRUE(child.ok()) << child.status();
  EXPECT_EQ(child->parent_run_id(), "cifar_1700000200_00000001");
  EXPECT_EQ(child->config().max_run_duration_seconds(), 600);
  EXPECT_EQ(store_->GetRun("cifar_1700000200_00000001")->config().display_name(), "lr sweep");

  RunFilter all;
  EXPECT_THAT(Ids(store_->ListRuns(all)->runs),
              ElementsAre("cifar_1700000201_00000002", "cifar_1700000200_00000001",
                          "mnist_1700000100_deadbeef", "mnist_1700000000_0a1b2c3d"));
  RunFilter children;
  children.parent_run_id = "cifar_1700000200_00000001";
  EXPECT_THAT(Ids(store_->ListRuns(children)->runs), ElementsAre("cifar_1700000201_00000002"));
  RunFilter by_uid;
  by_uid.submitter_uid = 1001;
  EXPECT_THAT(Ids(store_->ListRuns(by_uid)->runs), ElementsAre("mnist_1700000100_deadbeef"));

  auto experiments = store_->ListExperiments();
  ASSERT_TRUE(experiments.ok()) << experiments.status();
  ASSERT_EQ(experiments->size(), 2u);
  EXPECT_EQ((*experiments)[0].name(), "cifar");
  EXPECT_EQ((*experiments)[0].run_count(), 2);
  EXPECT_EQ(Nanos((*experiments)[0].last_run_time()), 1700000201000000000);
  EXPECT_EQ((*experiments)[1].name(), "mnist");

  auto files = store_->ListArtifacts("mnist_1700000000_0a1b2c3d");
  ASSERT_TRUE(files.ok()) << files.status();
  ASSERT_EQ(files->size(), 3u);
  EXPECT_EQ((*files)[0].path, "logs/train.log");
  EXPECT_EQ((*files)[1].path, "outputs/model.json");
  EXPECT_EQ((*files)[1].digest, DigestOf("model"));

  auto metrics = store_->GetMetrics("mnist_1700000000_0a1b2c3d", {});
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  std::vector<std::string> seen;
  for (const auto& m : *metrics) {
    seen.push_back(m.has_text() ? absl::StrCat(m.name(), "@", m.step(), "=", m.text())
                                : absl::StrCat(m.name(), "@", m.step(), "=", m.number()));
  }
  EXPECT_THAT(seen, ElementsAre("accuracy@2=0.875", "loss@0=0.9", "loss@1=0.5", "loss@2=0.25",
                                "phase@0=done"));

  auto counts = store_->CountByStatus();
  ASSERT_TRUE(counts.ok()) << counts.status();
  EXPECT_EQ((*counts)[v1::RunStatus::QUEUED], 1);
  EXPECT_EQ((*counts)[v1::RunStatus::RUNNING], 1);
  EXPECT_EQ((*counts)[v1::RunStatus::COMPLETED], 1);
  EXPECT_EQ((*counts)[v1::RunStatus::FAILED], 1);
  // Two runs share one snapshot: 2 snapshot roots + 4 artifacts.
  EXPECT_EQ(store_->ReferencedDigests()->snapshot_roots.size(), 2u);
  EXPECT_EQ(store_->ReferencedDigests()->artifacts.size(), 4u);

  // The column migration 2 added works on old rows, and old runs move on.
  EXPECT_EQ(*store_->GetRunHandle("cifar_1700000200_00000001"), "");
  ASSERT_TRUE(store_->SetRunHandle("cifar_1700000200_00000001", "pid=7").ok());
  auto finalizing = store_->Transition("cifar_1700000200_00000001", v1::RunStatus::FINALIZING,
                                       {.reason = "process exited", .exit_code = 0},
                                       absl::FromUnixSeconds(1700000300));
  ASSERT_TRUE(finalizing.ok()) << finalizing.status();
  EXPECT_EQ(finalizing->history_size(), 5);
  EXPECT_EQ(finalizing->history(4).reason(), "process exited");
}

TEST_F(StateStoreTest, AFailedMigrationLeavesTheFileAtTheOldVersion) {
  store_.reset();
  fs::path old = dir_ / "old.db";
  fs::copy_file(DataFile("state-v1.sqlite"), old);
  // Migration 2's last statement creates runs_by_parent; an index of that
  // name already there makes it fail after its earlier statements ran.
  RawDb(old).Exec("CREATE INDEX runs_by_parent ON runs(parent_run_id)");
  auto opened = StateStore::Open(old);
  ASSERT_FALSE(opened.ok());
  EXPECT_THAT(opened.status().message(), HasSubstr("to schema version 2"));
  EXPECT_THAT(opened.status().message(), HasSubstr("runs_by_parent"));
  RawDb raw(old);
  EXPECT_EQ(raw.One("PRAGMA user_version"), "1");
  EXPECT_EQ(raw.One("SELECT COUNT(*) FROM sqlite_master WHERE name='metrics_by_run'"), "0");
  EXPECT_EQ(raw.One("SELECT COUNT(*) FROM pragma_table_info('runs') WHERE name='handle'"), "0");
}

TEST_F(StateStoreTest, NewerSchemaIsRefusedNamingBothVersions) {
  store_.reset();
  RawDb(db_path_).Exec("PRAGMA user_version = 99");
  auto opened = StateStore::Open(db_path_);
  ASSERT_EQ(opened.status().code(), absl::StatusCode::kFailedPrecondition) << opened.status();
  EXPECT_THAT(opened.status().message(), HasSubstr("99"));
  EXPECT_THAT(opened.status().message(),
              HasSubstr(absl::StrCat("version ", StateStore::LatestSchemaVersion())));
  EXPECT_THAT(opened.status().message(), HasSubstr("upgrade amld"));
  EXPECT_EQ(RawDb(db_path_).One("PRAGMA user_version"), "99");  // left as it was
}

TEST_F(StateStoreTest, ForeignFilesAreRefused) {
  fs::path other = dir_ / "other.db";
  RawDb(other).Exec("CREATE TABLE notes(x TEXT)");
  auto opened = StateStore::Open(other);
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kFailedPrecondition) << opened.status();
  EXPECT_THAT(opened.status().message(), HasSubstr("another program"));
  EXPECT_EQ(RawDb(other).One("PRAGMA journal_mode"), "delete");  // refused untouched
  EXPECT_EQ(RawDb(other).One("PRAGMA user_version"), "0");

  fs::path text = dir_ / "text.db";
  {
    std::FILE* f = std::fopen(text.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs(
        "this is not an SQLite file, just some text that is long enough to matter\n"
        "0123456789012345678901234567890123456789012345678901234567890123456789\n",
        f);
    std::fclose(f);
  }
  opened = StateStore::Open(text);
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kFailedPrecondition) << opened.status();
  EXPECT_THAT(opened.status().message(), HasSubstr(text.string()));

  opened = StateStore::Open(dir_ / "no-such-dir" / "state.db");
  EXPECT_FALSE(opened.ok());
  EXPECT_THAT(opened.status().message(), HasSubstr("no-such-dir"));
}

// Issue 19: a 0-byte amld.db started empty (every run forgotten) and a
// damaged page was noticed only at the next write that touched it.
TEST_F(StateStoreTest, AnEmptyOrDamagedDatabaseIsRefusedAtOpen) {
  const fs::path empty = dir_ / "empty.db";
  { std::ofstream touch(empty); }
  auto opened = StateStore::Open(empty);
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kFailedPrecondition) << opened.status();
  EXPECT_THAT(opened.status().message(), HasSubstr("is empty (0 bytes)"));

  for (int i = 0; i < 400; ++i) Insert(MakeRun(absl::StrCat("run_", i), "mnist", At(i)));
  store_.reset();  // the last connection checkpoints the WAL into the file
  const auto size = fs::file_size(db_path_);
  ASSERT_GT(size, 16u * 4096);
  {
    std::fstream f(db_path_, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(size / 4096 / 2 * 4096));
    const std::string garbage(4096, '\xa5');
    f.write(garbage.data(), garbage.size());
  }
  opened = StateStore::Open(db_path_);
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kFailedPrecondition) << opened.status();
  EXPECT_THAT(opened.status().message(), HasSubstr("is damaged"));
  EXPECT_THAT(opened.status().message(), HasSubstr(".recover"));
}

// ---------------------------------------------------------------------------
// Experiments and runs.

// Issue 19: a run that ended without an exit code (supervisor lost) read as
// exit code 0.
TEST_F(StateStoreTest, ARunWithoutAnExitCodeHasNoneNotZero) {
  Insert(MakeRun("lost", "mnist", At(0)));
  Reach("lost", v1::RunStatus::FINALIZING, 0);
  EXPECT_FALSE(store_->GetRun("lost")->has_exit_code());
  Insert(MakeRun("ended", "mnist", At(0)));
  Reach("ended", v1::RunStatus::RUNNING, 0);
  TransitionDetails details;
  details.exit_code = 0;
  ASSERT_TRUE(store_->Transition("ended", v1::RunStatus::FINALIZING, details, At(9)).ok());
  EXPECT_TRUE(store_->GetRun("ended")->has_exit_code());
}

TEST_F(StateStoreTest, ExperimentsAreCreatedOnceAndCountTheirRuns) {
  auto first = store_->CreateExperiment("mnist", At(0));
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->run_count(), 0);
  EXPECT_FALSE(first->has_last_run_time());
  auto again = store_->CreateExperiment("mnist", At(50));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(Nanos(again->created_time()), Nanos(first->created_time()));

  Insert(MakeRun("a", "mnist", At(10)));
  Insert(MakeRun("b", "mnist", At(20)));
  Insert(MakeRun("c", "cifar", At(30)));  // created by the run
  auto mnist = store_->GetExperiment("mnist");
  ASSERT_TRUE(mnist.ok()) << mnist.status();
  EXPECT_EQ(mnist->run_count(), 2);
  EXPECT_EQ(Nanos(mnist->last_run_time()), Nanos(Ts(absl::ToUnixNanos(At(20)))));
  auto cifar = store_->GetExperiment("cifar");
  ASSERT_TRUE(cifar.ok()) << cifar.status();
  EXPECT_EQ(Nanos(cifar->created_time()), absl::ToUnixNanos(At(30)));

  auto all = store_->ListExperiments();
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].name(), "cifar");
  EXPECT_EQ((*all)[1].name(), "mnist");

  EXPECT_EQ(store_->GetExperiment("nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->CreateExperiment("bad name", At(0)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->CreateExperiment("", At(0)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->CreateExperiment(std::string(129, 'a'), At(0)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(store_->CreateExperiment("A-z_0.9", At(0)).ok());
}

TEST_F(StateStoreTest, InsertedRunReadsBackQueued) {
  NewRun new_run = MakeRun("mnist_1_00000001", "mnist", At(5), 4242);
  new_run.config.set_display_name("first try");
  auto inserted = store_->InsertRun(new_run);
  ASSERT_TRUE(inserted.ok()) << inserted.status();
  auto got = store_->GetRun("mnist_1_00000001");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(MessageDifferencer::Equals(*inserted, *got));
  EXPECT_TRUE(MessageDifferencer::Equals(got->config(), new_run.config));
  EXPECT_EQ(got->status(), v1::RunStatus::QUEUED);
  EXPECT_EQ(got->submitter_uid(), 4242u);
  EXPECT_EQ(got->parent_run_id(), "");
  EXPECT_EQ(Nanos(got->created_time()), absl::ToUnixNanos(At(5)));
  ASSERT_EQ(got->history_size(), 1);
  EXPECT_EQ(got->history(0).status(), v1::RunStatus::QUEUED);
  EXPECT_EQ(Nanos(got->history(0).time()), absl::ToUnixNanos(At(5)));
  EXPECT_EQ(got->exit_code(), 0);
  EXPECT_EQ(got->error(), "");
}

TEST_F(StateStoreTest, DuplicateRunIdIsRefusedAndTheFirstKept) {
  Insert(MakeRun("r1", "mnist", At(0), 1000));
  NewRun dup = MakeRun("r1", "other", At(9), 2000);
  auto again = store_->InsertRun(dup);
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists) << again.status();
  auto got = store_->GetRun("r1");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->config().experiment_name(), "mnist");
  EXPECT_EQ(got->submitter_uid(), 1000u);
  // The refused run's experiment was not created either: one transaction.
  EXPECT_EQ(store_->GetExperiment("other").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(StateStoreTest, FindRunIdsMatchesPrefixesAndSuffixesNewestFirst) {
  Insert(MakeRun("mnist_100_aaaa1111", "mnist", At(0)));
  Insert(MakeRun("mnist_200_bbbb2222", "mnist", At(1)));
  Insert(MakeRun("cifar_300_cccc1111", "cifar", At(2)));
  using Ids = std::vector<std::string>;
  EXPECT_EQ(*store_->FindRunIds("mnist_", 10), (Ids{"mnist_200_bbbb2222", "mnist_100_aaaa1111"}));
  EXPECT_EQ(*store_->FindRunIds("1111", 10), (Ids{"cifar_300_cccc1111", "mnist_100_aaaa1111"}));
  EXPECT_EQ(*store_->FindRunIds("bbbb2222", 10), Ids{"mnist_200_bbbb2222"});
  EXPECT_EQ(*store_->FindRunIds("1111", 1), Ids{"cifar_300_cccc1111"});
  // Neither start nor end: the middle of an id is not a match.
  EXPECT_TRUE(store_->FindRunIds("_200_", 10)->empty());
  // LIKE wildcards are plain characters here.
  EXPECT_TRUE(store_->FindRunIds("mnist%", 10)->empty());
}

TEST_F(StateStoreTest, BadRunsAreRefused) {
  EXPECT_EQ(store_->GetRun("missing").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->InsertRun(MakeRun("", "mnist", At(0))).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->InsertRun(MakeRun("r", "no/slash", At(0))).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto orphan = store_->InsertRun(MakeRun("child", "mnist", At(0), 1000, "no-such-parent"));
  EXPECT_EQ(orphan.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(orphan.status().message(), HasSubstr("no-such-parent"));
  NewRun bad_digest = MakeRun("r", "mnist", At(0));
  bad_digest.config.mutable_snapshot_root()->set_hash("XYZ");
  EXPECT_EQ(store_->InsertRun(bad_digest).status().code(), absl::StatusCode::kInvalidArgument);
  NewRun no_snapshot = MakeRun("bare", "mnist", At(0));
  no_snapshot.config.clear_snapshot_root();
  EXPECT_TRUE(store_->InsertRun(no_snapshot).ok());
  EXPECT_THAT(store_->ReferencedDigests()->snapshot_roots, IsEmpty());
  EXPECT_THAT(store_->ReferencedDigests()->artifacts, IsEmpty());
}

TEST_F(StateStoreTest, ListRunsPagesThroughEveryRunOnceNewestFirst) {
  // Three runs share each timestamp, so pages must break ties by id.
  std::set<std::string> inserted;
  for (int i = 0; i < 120; ++i) {
    std::string id = absl::StrCat("run_", 1000 + (i * 7919) % 120);  // not in time order
    Insert(MakeRun(id, "mnist", At(i / 3)));
    inserted.insert(id);
  }
  RunFilter filter;
  filter.page_size = 50;
  std::vector<size_t> sizes;
  std::vector<amld::v1::Run> all;
  for (int page_count = 0; page_count < 10; ++page_count) {
    auto page = store_->ListRuns(filter);
    ASSERT_TRUE(page.ok()) << page.status();
    sizes.push_back(page->runs.size());
    all.insert(all.end(), page->runs.begin(), page->runs.end());
    if (page->next_page_token.empty()) break;
    filter.page_token = page->next_page_token;
  }
  EXPECT_THAT(sizes, ElementsAre(50u, 50u, 20u));
  std::vector<std::string> ids = Ids(all);
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()), inserted);
  EXPECT_EQ(ids.size(), inserted.size());
  for (size_t i = 1; i < all.size(); ++i) {
    int64_t prev = Nanos(all[i - 1].created_time()), cur = Nanos(all[i].created_time());
    EXPECT_TRUE(prev > cur || (prev == cur && all[i - 1].id() > all[i].id()))
        << all[i - 1].id() << " before " << all[i].id();
  }
  EXPECT_EQ(all.front().history_size(), 1);  // pages carry history

  RunFilter exact;
  exact.page_size = 120;
  auto one_page = store_->ListRuns(exact);
  ASSERT_TRUE(one_page.ok());
  EXPECT_EQ(one_page->runs.size(), 120u);
  EXPECT_EQ(one_page->next_page_token, "");

  RunFilter defaults;
  defaults.page_size = 0;  // means 50
  EXPECT_EQ(store_->ListRuns(defaults)->runs.size(), 50u);
  RunFilter huge;
  huge.page_size = 1'000'000;  // clamped, but more than there are
  EXPECT_EQ(store_->ListRuns(huge)->runs.size(), 120u);
}

TEST_F(StateStoreTest, ListRunsFiltersCombine) {
  Insert(MakeRun("p", "sweep", At(0), 1000));
  Insert(MakeRun("c1", "sweep", At(1), 1000, "p"));
  Insert(MakeRun("c2", "sweep", At(2), 1001, "p"));
  Insert(MakeRun("c3", "sweep", At(3), 1000, "p"));
  Insert(MakeRun("m1", "mnist", At(4), 1001));
  Insert(MakeRun("m2", "mnist", At(5), 1000));
  Reach("c1", v1::RunStatus::RUNNING, 10);
  Reach("c3", v1::RunStatus::COMPLETED, 20);
  Reach("m2", v1::RunStatus::RUNNING, 30);

  auto list = [&](RunFilter f) {
    auto page = store_->ListRuns(f);
    EXPECT_TRUE(page.ok()) << page.status();
    return page.ok() ? Ids(page->runs) : std::vector<std::string>{"<error>"};
  };
  RunFilter f;
  f.experiment_name = "mnist";
  EXPECT_THAT(list(f), ElementsAre("m2", "m1"));
  f = {};
  f.statuses = {v1::RunStatus::RUNNING};
  EXPECT_THAT(list(f), ElementsAre("m2", "c1"));
  f.statuses = {v1::RunStatus::RUNNING, v1::RunStatus::COMPLETED, v1::RunStatus::RUNNING};
  EXPECT_THAT(list(f), ElementsAre("m2", "c3", "c1"));
  f = {};
  f.submitter_uid = 1001;
  EXPECT_THAT(list(f), ElementsAre("m1", "c2"));
  f = {};
  f.parent_run_id = "p";
  EXPECT_THAT(list(f), ElementsAre("c3", "c2", "c1"));
  f.submitter_uid = 1000;
  EXPECT_THAT(list(f), ElementsAre("c3", "c1"));
  f.statuses = {v1::RunStatus::QUEUED};
  EXPECT_THAT(list(f), IsEmpty());
  f = {};
  f.experiment_name = "sweep";
  f.statuses = {v1::RunStatus::QUEUED, v1::RunStatus::COMPLETED};
  f.submitter_uid = 1000;
  EXPECT_THAT(list(f), ElementsAre("c3", "p"));
  f = {};
  f.experiment_name = "nope";
  EXPECT_THAT(list(f), IsEmpty());

  // A filtered listing pages too.
  f = {};
  f.experiment_name = "sweep";
  f.page_size = 3;
  auto first = store_->ListRuns(f);
  ASSERT_TRUE(first.ok());
  EXPECT_THAT(Ids(first->runs), ElementsAre("c3", "c2", "c1"));
  ASSERT_NE(first->next_page_token, "");
  f.page_token = first->next_page_token;
  auto second = store_->ListRuns(f);
  ASSERT_TRUE(second.ok());
  EXPECT_THAT(Ids(second->runs), ElementsAre("p"));
  EXPECT_EQ(second->next_page_token, "");

  f = {};
  f.statuses = {v1::RunStatus::UNKNOWN};
  EXPECT_EQ(store_->ListRuns(f).status().code(), absl::StatusCode::kInvalidArgument);
  f.statuses = {static_cast<RunStatus>(42)};
  EXPECT_EQ(store_->ListRuns(f).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(StateStoreTest, MalformedPageTokensAreInvalidArgument) {
  Insert(MakeRun("r", "mnist", At(0)));
  for (const std::string& token :
       {std::string("garbage!"), absl::WebSafeBase64Escape("r2:5:r"),
        absl::WebSafeBase64Escape("r1:abc:r"), absl::WebSafeBase64Escape("r1:5:"),
        absl::WebSafeBase64Escape("r1:5"), absl::WebSafeBase64Escape("r1")}) {
    RunFilter f;
    f.page_token = token;
    auto page = store_->ListRuns(f);
    EXPECT_EQ(page.status().code(), absl::StatusCode::kInvalidArgument) << token;
    EXPECT_THAT(page.status().message(), HasSubstr("page token")) << token;
  }
}

// ---------------------------------------------------------------------------
// Status transitions.

// The issue's table, written out independently of the store's.
bool ExpectedLegal(RunStatus from, RunStatus to) {
  using S = v1::RunStatus;
  static const std::set<std::pair<RunStatus, RunStatus>> legal = {
      {S::QUEUED, S::PREPARING},
      {S::QUEUED, S::CANCEL_REQUESTED},
      {S::QUEUED, S::CANCELED},
      {S::QUEUED, S::FAILED},
      {S::PREPARING, S::STARTING},
      {S::PREPARING, S::CANCEL_REQUESTED},
      {S::PREPARING, S::CANCELED},
      {S::PREPARING, S::FAILED},
      {S::STARTING, S::RUNNING},
      {S::STARTING, S::CANCEL_REQUESTED},
      {S::STARTING, S::CANCELED},
      {S::STARTING, S::FAILED},
      {S::RUNNING, S::FINALIZING},
      {S::RUNNING, S::CANCEL_REQUESTED},
      {S::RUNNING, S::FAILED},
      {S::CANCEL_REQUESTED, S::FINALIZING},
      {S::CANCEL_REQUESTED, S::CANCELED},
      {S::CANCEL_REQUESTED, S::FAILED},
      {S::FINALIZING, S::COMPLETED},
      {S::FINALIZING, S::FAILED},
      {S::FINALIZING, S::CANCELED},
  };
  return legal.count({from, to}) > 0;
}

std::vector<RunStatus> AllStatusValues() {
  std::vector<RunStatus> out;
  for (int v = 0; v <= 10; ++v) out.push_back(static_cast<RunStatus>(v));  // 10: unknown to us
  out.push_back(static_cast<RunStatus>(-1));
  return out;
}

TEST(TransitionTableTest, MatchesTheIssue) {
  int legal = 0;
  for (RunStatus from : AllStatusValues()) {
    for (RunStatus to : AllStatusValues()) {
      EXPECT_EQ(IsLegalTransition(from, to), ExpectedLegal(from, to))
          << StatusName(from) << " -> " << StatusName(to);
      legal += IsLegalTransition(from, to);
    }
  }
  EXPECT_EQ(legal, 21);
  EXPECT_TRUE(IsTerminal(v1::RunStatus::COMPLETED));
  EXPECT_TRUE(IsTerminal(v1::RunStatus::FAILED));
  EXPECT_TRUE(IsTerminal(v1::RunStatus::CANCELED));
  EXPECT_FALSE(IsTerminal(v1::RunStatus::CANCEL_REQUESTED));
  EXPECT_FALSE(IsTerminal(v1::RunStatus::FINALIZING));
  EXPECT_EQ(StatusName(v1::RunStatus::CANCEL_REQUESTED), "CANCEL_REQUESTED");
  EXPECT_EQ(StatusName(static_cast<RunStatus>(42)), "STATUS(42)");
}

TEST_F(StateStoreTest, EveryTransitionIsAcceptedOrRefusedInTheStore) {
  const std::vector<RunStatus> reachable = {
      v1::RunStatus::QUEUED,    v1::RunStatus::PREPARING,        v1::RunStatus::STARTING,
      v1::RunStatus::RUNNING,   v1::RunStatus::CANCEL_REQUESTED, v1::RunStatus::FINALIZING,
      v1::RunStatus::COMPLETED, v1::RunStatus::FAILED,           v1::RunStatus::CANCELED};
  int n = 0, accepted = 0;
  for (RunStatus from : reachable) {
    for (RunStatus to : AllStatusValues()) {
      std::string id = absl::StrCat("run_", ++n);
      Insert(MakeRun(id, "grid", At(0)));
      Reach(id, from, 0);
      amld::v1::Run before = *store_->GetRun(id);
      ASSERT_EQ(before.status(), from);
      auto moved = store_->Transition(id, to, {.reason = "test"}, At(100));
      if (ExpectedLegal(from, to)) {
        ++accepted;
        ASSERT_TRUE(moved.ok()) << StatusName(from) << " -> " << StatusName(to) << ": "
                                << moved.status();
        EXPECT_EQ(moved->status(), to);
        ASSERT_EQ(moved->history_size(), before.history_size() + 1);
        EXPECT_EQ(moved->history().rbegin()->status(), to);
        EXPECT_EQ(Nanos(moved->history().rbegin()->time()), absl::ToUnixNanos(At(100)));
        EXPECT_EQ(moved->history().rbegin()->reason(), "test");
      } else {
        EXPECT_EQ(moved.status().code(), absl::StatusCode::kFailedPrecondition)
            << StatusName(from) << " -> " << StatusName(to);
        amld::v1::Run after = *store_->GetRun(id);
        EXPECT_TRUE(MessageDifferencer::Equals(before, after))
            << StatusName(from) << " -> " << StatusName(to) << " changed the run";
      }
    }
  }
  EXPECT_EQ(accepted, 21);
}

TEST_F(StateStoreTest, IllegalTransitionSaysWhatAndChangesNothing) {
  Insert(MakeRun("r1", "mnist", At(0)));
  Reach("r1", v1::RunStatus::COMPLETED, 0);
  amld::v1::Run before = *store_->GetRun("r1");
  auto moved = store_->Transition("r1", v1::RunStatus::RUNNING,
                                  {.reason = "x", .exit_code = 9, .error = "nope"}, At(50));
  ASSERT_EQ(moved.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(moved.status().message(), "run r1 is COMPLETED; it cannot become RUNNING");
  amld::v1::Run after = *store_->GetRun("r1");
  EXPECT_TRUE(MessageDifferencer::Equals(before, after));
  EXPECT_EQ(after.exit_code(), 0);
  EXPECT_EQ(after.error(), "");

  EXPECT_EQ(store_->Transition("missing", v1::RunStatus::PREPARING, {}, At(1)).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(StateStoreTest, HistoryKeepsTheTimeOfEveryStatusAndTheDetails) {
  Insert(MakeRun("r1", "mnist", At(0)));
  auto step = [&](RunStatus to, int64_t second, TransitionDetails details) {
    auto moved = store_->Transition("r1", to, details, At(second));
    EXPECT_TRUE(moved.ok()) << moved.status();
  };
  step(v1::RunStatus::PREPARING, 1, {});
  step(v1::RunStatus::STARTING, 3, {.placement = "local"});
  step(v1::RunStatus::RUNNING, 4, {.reason = "pid 123"});
  step(v1::RunStatus::FINALIZING, 70,
       {.reason = "process exited", .exit_code = 3, .exit_signal = 0});
  step(v1::RunStatus::FAILED, 72, {.reason = "nonzero exit", .error = "exit code 3"});

  auto run = store_->GetRun("r1");
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->status(), v1::RunStatus::FAILED);
  EXPECT_EQ(run->exit_code(), 3);
  EXPECT_EQ(run->exit_signal(), 0);
  EXPECT_EQ(run->error(), "exit code 3");
  EXPECT_EQ(run->placement(), "local");  // unset details leave values alone
  EXPECT_THAT(Statuses(*run), ElementsAre(v1::RunStatus::QUEUED, v1::RunStatus::PREPARING,
                                          v1::RunStatus::STARTING, v1::RunStatus::RUNNING,
                                          v1::RunStatus::FINALIZING, v1::RunStatus::FAILED));
  const int64_t seconds[] = {0, 1, 3, 4, 70, 72};
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(Nanos(run->history(i).time()), absl::ToUnixNanos(At(seconds[i]))) << i;
  }
  EXPECT_EQ(run->history(3).reason(), "pid 123");
  EXPECT_EQ(run->history(5).reason(), "nonzero exit");

  Insert(MakeRun("r2", "mnist", At(0)));
  Reach("r2", v1::RunStatus::RUNNING, 0);
  auto cancel =
      store_->Transition("r2", v1::RunStatus::CANCEL_REQUESTED, {.reason = "by uid 1000"}, At(10));
  ASSERT_TRUE(cancel.ok());
  auto killed = store_->Transition("r2", v1::RunStatus::CANCELED,
                                   {.exit_signal = 15, .error = "canceled by uid 1000"}, At(11));
  ASSERT_TRUE(killed.ok()) << killed.status();
  EXPECT_EQ(killed->exit_signal(), 15);
  EXPECT_EQ(killed->error(), "canceled by uid 1000");
}

TEST_F(StateStoreTest, CountByStatusAndRunsInStatus) {
  Insert(MakeRun("a", "mnist", At(3)));
  Insert(MakeRun("b", "mnist", At(1)));
  Insert(MakeRun("c", "mnist", At(2)));
  Insert(MakeRun("d", "mnist", At(4)));
  Reach("a", v1::RunStatus::RUNNING, 10);
  Reach("b", v1::RunStatus::RUNNING, 10);
  Reach("d", v1::RunStatus::COMPLETED, 10);

  auto counts = store_->CountByStatus();
  ASSERT_TRUE(counts.ok()) << counts.status();
  EXPECT_EQ(counts->size(), 3u);
  EXPECT_EQ(counts->at(v1::RunStatus::RUNNING), 2);
  EXPECT_EQ(counts->at(v1::RunStatus::QUEUED), 1);
  EXPECT_EQ(counts->at(v1::RunStatus::COMPLETED), 1);

  auto running = store_->RunsInStatus({v1::RunStatus::RUNNING});
  ASSERT_TRUE(running.ok()) << running.status();
  EXPECT_THAT(Ids(*running), ElementsAre("b", "a"));  // oldest first
  auto active = store_->RunsInStatus({v1::RunStatus::QUEUED, v1::RunStatus::RUNNING});
  ASSERT_TRUE(active.ok());
  EXPECT_THAT(Ids(*active), ElementsAre("b", "c", "a"));
  EXPECT_EQ(active->front().history_size(), 4);
  EXPECT_THAT(*store_->RunsInStatus({}), IsEmpty());
  EXPECT_THAT(*store_->RunsInStatus({v1::RunStatus::FAILED}), IsEmpty());
  EXPECT_EQ(store_->RunsInStatus({v1::RunStatus::UNKNOWN}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(StateStoreTest, RunHandle) {
  Insert(MakeRun("r1", "mnist", At(0)));
  EXPECT_EQ(*store_->GetRunHandle("r1"), "");
  ASSERT_TRUE(store_->SetRunHandle("r1", "{\"pid\":42,\"start\":99}").ok());
  EXPECT_EQ(*store_->GetRunHandle("r1"), "{\"pid\":42,\"start\":99}");
  ASSERT_TRUE(store_->SetRunHandle("r1", "slurm:1234").ok());
  Reopen();
  EXPECT_EQ(*store_->GetRunHandle("r1"), "slurm:1234");
  EXPECT_EQ(store_->SetRunHandle("nope", "x").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->GetRunHandle("nope").status().code(), absl::StatusCode::kNotFound);
}

// ---------------------------------------------------------------------------
// Artifacts and metrics.

TEST_F(StateStoreTest, ArtifactsArePutReplacedAndListedByPrefix) {
  Insert(MakeRun("r1", "mnist", At(0)));
  Insert(MakeRun("r2", "mnist", At(1)));
  ASSERT_TRUE(store_
                  ->PutArtifacts("r1", {{"outputs/model.json", DigestOf("m1")},
                                        {"logs/train.log", DigestOf("log")},
                                        {"outputs0", DigestOf("sibling")},
                                        {"outputs/sub/w.bin", DigestOf("w")},
                                        {"user_logs/std_log.txt", DigestOf("std")}})
                  .ok());
  ASSERT_TRUE(store_->PutArtifacts("r2", {{"outputs/other.txt", DigestOf("o")}}).ok());

  auto paths = [&](const std::string& run, const std::string& prefix) {
    std::vector<std::string> out;
    auto listed = store_->ListArtifacts(run, prefix);
    EXPECT_TRUE(listed.ok()) << listed.status();
    if (listed.ok()) {
      for (const Artifact& a : *listed) out.push_back(a.path);
    }
    return out;
  };
  EXPECT_THAT(paths("r1", ""),
              ElementsAre("logs/train.log", "outputs/model.json", "outputs/sub/w.bin", "outputs0",
                          "user_logs/std_log.txt"));
  EXPECT_THAT(paths("r1", "outputs/"), ElementsAre("outputs/model.json", "outputs/sub/w.bin"));
  EXPECT_THAT(paths("r1", "outputs/m"), ElementsAre("outputs/model.json"));
  EXPECT_THAT(paths("r1", "outputs"),
              ElementsAre("outputs/model.json", "outputs/sub/w.bin", "outputs0"));
  EXPECT_THAT(paths("r1", "zzz"), IsEmpty());
  EXPECT_THAT(paths("r2", ""), ElementsAre("outputs/other.txt"));

  ASSERT_TRUE(store_->PutArtifacts("r1", {{"outputs/model.json", DigestOf("m2")}}).ok());
  auto model = store_->GetArtifact("r1", "outputs/model.json");
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->digest, DigestOf("m2"));
  EXPECT_EQ(model->path, "outputs/model.json");
  EXPECT_EQ(store_->ListArtifacts("r1")->size(), 5u);

  auto missing = store_->GetArtifact("r1", "outputs/none");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("outputs/none"));
  EXPECT_EQ(store_->GetArtifact("nope", "x").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->ListArtifacts("nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->PutArtifacts("nope", {{"a", DigestOf("a")}}).code(),
            absl::StatusCode::kNotFound);
}

TEST_F(StateStoreTest, BadArtifactsAreRefusedAndTheBatchNotStored) {
  Insert(MakeRun("r1", "mnist", At(0)));
  const std::vector<std::string> bad_paths = {
      "", "/etc/passwd", "../x", "outputs/../../x", "a//b", "./a", "a/", std::string("a\0b", 3)};
  for (const std::string& bad : bad_paths) {
    absl::Status status =
        store_->PutArtifacts("r1", {{"outputs/fine.txt", DigestOf("f")}, {bad, DigestOf("x")}});
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << absl::CHexEscape(bad);
  }
  EXPECT_EQ(store_->PutArtifacts("r1", {{"outputs/x", Digest{"abc", 1}}}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(*store_->ListArtifacts("r1"), IsEmpty());
}

TEST_F(StateStoreTest, MetricsAreAppendedAndReadByName) {
  Insert(MakeRun("r1", "mnist", At(0)));
  Insert(MakeRun("r2", "mnist", At(0)));
  amld::v1::Metric text;
  text.set_name("phase");
  text.set_text("warmup");
  *text.mutable_time() = Ts(kBaseNs + 5);
  ASSERT_TRUE(store_
                  ->AppendMetrics("r1", {NumberMetric("loss", 2, 0.25, kBaseNs + 3),
                                         NumberMetric("loss", 0, 0.75, kBaseNs + 1),
                                         NumberMetric("acc", 1, 0.5, kBaseNs + 2), text})
                  .ok());
  ASSERT_TRUE(
      store_
          ->AppendMetrics(
              "r1",
              {NumberMetric("loss", 1, 0.5, kBaseNs + 2), NumberMetric("loss", 1, 0.4, kBaseNs + 1),
               NumberMetric("nan", 0, std::numeric_limits<double>::quiet_NaN(), kBaseNs),
               NumberMetric("inf", 0, -std::numeric_limits<double>::infinity(), kBaseNs)})
          .ok());
  ASSERT_TRUE(store_->AppendMetrics("r2", {NumberMetric("loss", 0, 9, kBaseNs)}).ok());

  auto all = store_->GetMetrics("r1", {});
  ASSERT_TRUE(all.ok()) << all.status();
  std::vector<std::string> seen;
  for (const auto& m : *all) {
    seen.push_back(absl::StrCat(m.name(), "@", m.step(), "/", Nanos(m.time()) - kBaseNs, "=",
                                m.has_text() ? m.text() : absl::StrCat(m.number())));
  }
  EXPECT_THAT(seen,
              ElementsAre("acc@1/2=0.5", "inf@0/0=-inf", "loss@0/1=0.75", "loss@1/1=0.4",
                          "loss@1/2=0.5", "loss@2/3=0.25", "nan@0/0=nan", "phase@0/5=warmup"));
  ASSERT_EQ(all->size(), 8u);
  EXPECT_TRUE(std::isnan((*all)[6].number()));
  EXPECT_TRUE(std::isinf((*all)[1].number()));

  auto loss = store_->GetMetrics("r1", {"loss"});
  ASSERT_TRUE(loss.ok());
  EXPECT_EQ(loss->size(), 4u);
  auto two = store_->GetMetrics("r1", {"phase", "acc", "phase"});
  ASSERT_TRUE(two.ok());
  ASSERT_EQ(two->size(), 2u);
  EXPECT_EQ((*two)[0].name(), "acc");
  EXPECT_EQ((*two)[1].name(), "phase");
  EXPECT_THAT(*store_->GetMetrics("r1", {"missing"}), IsEmpty());
  EXPECT_EQ(store_->GetMetrics("r2", {})->size(), 1u);
  EXPECT_EQ(store_->GetMetrics("nope", {}).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->AppendMetrics("nope", {NumberMetric("x", 0, 1, kBaseNs)}).code(),
            absl::StatusCode::kNotFound);
}

// Schema 7: each value's source, so a restarted daemon resumes every file
// (metrics.jsonl by count, TensorBoard event files by offset) where the
// last one stopped.
TEST_F(StateStoreTest, MetricSourcesCountValuesAndKeepTheLargestOffset) {
  Insert(MakeRun("r1", "mnist", At(0)));
  ASSERT_TRUE(store_->AppendMetrics("r1", {NumberMetric("loss", 0, 1, kBaseNs),
                                           NumberMetric("loss", 1, 2, kBaseNs)})
                  .ok());
  const std::string events = "logs/tb/events.out.tfevents.1.host";
  ASSERT_TRUE(store_
                  ->AppendMetrics("r1",
                                  {NumberMetric("Loss/train", 0, 3, kBaseNs),
                                   NumberMetric("acc", 0, 4, kBaseNs),
                                   NumberMetric("Loss/train", 1, 5, kBaseNs)},
                                  events, {80, 80, 120})
                  .ok());
  EXPECT_EQ(store_->AppendMetrics("r1", {NumberMetric("x", 0, 1, kBaseNs)}, events, {}).code(),
            absl::StatusCode::kInvalidArgument);
  auto sources = store_->GetMetricSources("r1");
  ASSERT_TRUE(sources.ok()) << sources.status();
  ASSERT_EQ(sources->size(), 2u);
  EXPECT_EQ(sources->at("").values, 2);
  EXPECT_EQ(sources->at(events).values, 3);
  EXPECT_EQ(sources->at(events).end_offset, 120);
  EXPECT_EQ(store_->GetMetrics("r1", {})->size(), 5u);  // every source reads alike
  EXPECT_EQ(store_->GetMetricSources("nope").status().code(), absl::StatusCode::kNotFound);
}

// Schema 6: a value's logged type (int, bool, None) and its table come back
// as stored, so the SDK gives them back as azureml does.
TEST_F(StateStoreTest, MetricValueTypesAndTablesAreKept) {
  Insert(MakeRun("r1", "mnist", At(0)));
  amld::v1::Metric flag = NumberMetric("converged", 0, 1, kBaseNs);
  flag.set_value_type(amld::v1::Metric::VALUE_BOOLEAN);
  amld::v1::Metric none = NumberMetric("best", 0, std::numeric_limits<double>::quiet_NaN(), kBaseNs);
  none.set_value_type(amld::v1::Metric::VALUE_NONE);
  amld::v1::Metric cell = NumberMetric("t/x", 3, 7, kBaseNs);
  cell.set_value_type(amld::v1::Metric::VALUE_INTEGER);
  cell.set_table("t");
  ASSERT_TRUE(store_->AppendMetrics("r1", {flag, none, cell}).ok());
  auto all = store_->GetMetrics("r1", {});
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].name(), "best");
  EXPECT_EQ((*all)[0].value_type(), amld::v1::Metric::VALUE_NONE);
  EXPECT_TRUE(std::isnan((*all)[0].number()));
  EXPECT_EQ((*all)[1].value_type(), amld::v1::Metric::VALUE_BOOLEAN);
  EXPECT_EQ((*all)[1].number(), 1);
  EXPECT_EQ((*all)[2].table(), "t");
  EXPECT_EQ((*all)[2].step(), 3);
  EXPECT_EQ((*all)[2].value_type(), amld::v1::Metric::VALUE_INTEGER);
}

TEST_F(StateStoreTest, BadMetricsAreRefusedAndTheBatchNotStored) {
  Insert(MakeRun("r1", "mnist", At(0)));
  amld::v1::Metric no_value;
  no_value.set_name("x");
  *no_value.mutable_time() = Ts(kBaseNs);
  amld::v1::Metric no_time = NumberMetric("x", 0, 1, kBaseNs);
  no_time.clear_time();
  amld::v1::Metric no_name = NumberMetric("", 0, 1, kBaseNs);
  for (const auto& bad : {no_value, no_time, no_name}) {
    EXPECT_EQ(store_->AppendMetrics("r1", {NumberMetric("ok", 0, 1, kBaseNs), bad}).code(),
              absl::StatusCode::kInvalidArgument)
        << bad.DebugString();
  }
  EXPECT_THAT(*store_->GetMetrics("r1", {}), IsEmpty());
}

TEST_F(StateStoreTest, ReferencedDigestsAreDeduplicated) {
  NewRun a = MakeRun("a", "mnist", At(0));
  NewRun b = MakeRun("b", "mnist", At(1));  // same snapshot as a
  NewRun c = MakeRun("c", "mnist", At(2));
  c.config = Config("mnist", "other source");
  Insert(a);
  Insert(b);
  Insert(c);
  ASSERT_TRUE(store_
                  ->PutArtifacts("a", {{"outputs/x", DigestOf("x")},
                                       {"outputs/y", DigestOf("src")}})  // equals a snapshot
                  .ok());
  ASSERT_TRUE(store_->PutArtifacts("b", {{"outputs/x", DigestOf("x")}}).ok());
  auto digests = store_->ReferencedDigests();
  ASSERT_TRUE(digests.ok()) << digests.status();
  EXPECT_THAT(digests->snapshot_roots,
              UnorderedElementsAre(DigestOf("src"), DigestOf("other source")));
  EXPECT_THAT(digests->artifacts, UnorderedElementsAre(DigestOf("src"), DigestOf("x")));
}

TEST_F(StateStoreTest, ConcurrentCallersAreSerialized) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([this, t] {
      for (int i = 0; i < 25; ++i) {
        std::string id = absl::StrCat("t", t, "_", i);
        EXPECT_TRUE(store_->InsertRun(MakeRun(id, "mnist", At(i))).ok());
        EXPECT_TRUE(store_->Transition(id, v1::RunStatus::PREPARING, {}, At(i + 1)).ok());
        EXPECT_TRUE(store_->ListRuns({}).ok());
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(store_->CountByStatus()->at(v1::RunStatus::PREPARING), 100);
}

// ---------------------------------------------------------------------------
// Compute targets.

v1::ComputeTarget SshTargetNamed(const std::string& name) {
  v1::ComputeTarget t;
  t.set_name(name);
  v1::SshTarget* ssh = t.mutable_ssh();
  ssh->set_host("gpu-box.example.org");
  ssh->set_port(2222);
  ssh->set_user("alice");
  ssh->set_identity_file("/home/alice/.ssh/id_ed25519");
  ssh->set_workdir("/scratch/amld");
  return t;
}

v1::ComputeTarget SlurmTargetNamed(const std::string& name) {
  v1::ComputeTarget t;
  t.set_name(name);
  v1::SlurmTarget* slurm = t.mutable_slurm();
  slurm->set_partition("gpu");
  slurm->set_account("ml");
  slurm->set_workdir("/shared/amld");
  slurm->add_sbatch_args("--gres=gpu:1");
  return t;
}

TEST_F(StateStoreTest, ComputeTargetsAreCreatedReadListedAndKeptAcrossReopen) {
  auto created = store_->CreateComputeTarget(SshTargetNamed("box"), At(7));
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(Nanos(created->created_time()), absl::ToUnixNanos(At(7)));
  ASSERT_TRUE(store_->CreateComputeTarget(SlurmTargetNamed("cluster"), At(8)).ok());

  store_.reset();
  auto reopened = StateStore::Open(db_path_);
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  store_ = std::move(*reopened);

  auto box = store_->GetComputeTarget("box");
  ASSERT_TRUE(box.ok()) << box.status();
  EXPECT_TRUE(MessageDifferencer::Equals(*box, *created));
  EXPECT_EQ(box->ssh().host(), "gpu-box.example.org");
  EXPECT_EQ(box->ssh().port(), 2222);

  auto list = store_->ListComputeTargets();
  ASSERT_TRUE(list.ok()) << list.status();
  std::vector<std::string> names;
  for (const auto& t : *list) names.push_back(t.name());
  EXPECT_THAT(names, ElementsAre("box", "cluster", "local"));
  EXPECT_TRUE((*list)[1].has_slurm());
  EXPECT_THAT((*list)[1].slurm().sbatch_args(), ElementsAre("--gres=gpu:1"));
  EXPECT_TRUE((*list)[2].has_local());
}

TEST_F(StateStoreTest, LocalTargetIsBuiltInAndCannotBeRedefinedOrDeleted) {
  auto local = store_->GetComputeTarget("local");
  ASSERT_TRUE(local.ok()) << local.status();
  EXPECT_TRUE(local->has_local());
  EXPECT_FALSE(local->has_created_time());

  EXPECT_EQ(store_->CreateComputeTarget(SshTargetNamed("local"), At(1)).status().code(),
            absl::StatusCode::kAlreadyExists);
  absl::Status deleted = store_->DeleteComputeTarget("local");
  EXPECT_EQ(deleted.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(deleted.message(), HasSubstr("built in"));
  store_.reset();  // the store holds the file's lock while it is open
  RawDb raw(db_path_);
  EXPECT_EQ(raw.One("SELECT COUNT(*) FROM compute_targets"), "0");
}

TEST_F(StateStoreTest, BlobClaimsArePerUidAndSurviveAReopen) {
  const Digest a = amld::storage::DigestOf("a");
  const Digest b = amld::storage::DigestOf("b");
  ASSERT_TRUE(store_->AddBlobClaims(1001, {a, a}).ok());  // twice: one claim
  auto unclaimed = store_->UnclaimedBlobs(1001, {a, b});
  ASSERT_TRUE(unclaimed.ok()) << unclaimed.status();
  EXPECT_EQ(*unclaimed, std::vector<Digest>{b});
  // Another uid has proved nothing.
  EXPECT_EQ(*store_->UnclaimedBlobs(1002, {a, b}), (std::vector<Digest>{a, b}));
  Reopen();
  EXPECT_EQ(*store_->UnclaimedBlobs(1001, {b, a}), std::vector<Digest>{b});
}

TEST_F(StateStoreTest, RemovingBlobClaimsDropsThemForEveryUid) {
  const Digest a = amld::storage::DigestOf("a");
  const Digest b = amld::storage::DigestOf("b");
  for (uint32_t uid : {0u, 1001u, 4000000000u}) ASSERT_TRUE(store_->AddBlobClaims(uid, {a, b}).ok());
  ASSERT_TRUE(store_->RemoveBlobClaims({a.hash, amld::storage::DigestOf("never claimed").hash}).ok());
  ASSERT_TRUE(store_->RemoveBlobClaims({}).ok());
  for (uint32_t uid : {0u, 1001u, 4000000000u}) {
    EXPECT_EQ(*store_->UnclaimedBlobs(uid, {a, b}), std::vector<Digest>{a}) << uid;
  }
}

TEST_F(StateStoreTest, DuplicateAndMissingComputeTargets) {
  ASSERT_TRUE(store_->CreateComputeTarget(SshTargetNamed("box"), At(1)).ok());
  v1::ComputeTarget other = SlurmTargetNamed("box");
  auto again = store_->CreateComputeTarget(other, At(2));
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(again.status().message(), HasSubstr("aml compute delete box"));
  EXPECT_TRUE(store_->GetComputeTarget("box")->has_ssh());  // the first is kept

  EXPECT_EQ(store_->GetComputeTarget("nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->DeleteComputeTarget("nope").code(), absl::StatusCode::kNotFound);
}

// The store's own rules; what an ssh or slurm target's settings mean is
// checked by its executor (tests/daemon/executors/{ssh,slurm}/*_target_test.cc).
TEST_F(StateStoreTest, MalformedComputeTargetsAreRefusedSayingWhat) {
  struct Case {
    std::string why;
    v1::ComputeTarget target;
    std::string message;
  };
  std::vector<Case> cases;
  auto ssh = [](auto edit) {
    v1::ComputeTarget t = SshTargetNamed("box");
    edit(t);
    return t;
  };
  cases.push_back({"bad name", ssh([](auto& t) { t.set_name("a b"); }), "may contain only"});
  cases.push_back({"empty name", ssh([](auto& t) { t.set_name(""); }), "1 to 128"});
  cases.push_back({"no kind", [] { v1::ComputeTarget t; t.set_name("x"); return t; }(),
                   "ssh or slurm"});
  cases.push_back({"local kind", [] { v1::ComputeTarget t; t.set_name("x"); t.mutable_local();
                                      return t; }(), "built in"});

  for (const Case& c : cases) {
    EXPECT_EQ(ValidateComputeTarget(c.target).code(), absl::StatusCode::kInvalidArgument) << c.why;
    auto created = store_->CreateComputeTarget(c.target, At(1));
    EXPECT_EQ(created.status().code(), absl::StatusCode::kInvalidArgument) << c.why;
    EXPECT_THAT(created.status().message(), HasSubstr(c.message)) << c.why;
  }
  store_.reset();  // the store holds the file's lock while it is open
  RawDb raw(db_path_);
  EXPECT_EQ(raw.One("SELECT COUNT(*) FROM compute_targets"), "0");
}

TEST_F(StateStoreTest, ComputeTargetInUseByAnUnfinishedRunCannotBeDeleted) {
  ASSERT_TRUE(store_->CreateComputeTarget(SshTargetNamed("box"), At(1)).ok());
  NewRun on_box = MakeRun("r_box", "mnist", At(2));
  on_box.config.set_compute_target("box");
  Insert(on_box);
  Insert(MakeRun("r_local", "mnist", At(3)));  // on "local": not in the way

  auto expect_refused = [&](const std::string& when) {
    absl::Status deleted = store_->DeleteComputeTarget("box");
    EXPECT_EQ(deleted.code(), absl::StatusCode::kFailedPrecondition) << when;
    EXPECT_THAT(deleted.message(), HasSubstr("in use by run r_box")) << when;
    EXPECT_TRUE(store_->GetComputeTarget("box").ok()) << when;
  };
  expect_refused("queued");
  Reach("r_box", v1::RunStatus::RUNNING, 10);
  expect_refused("running");
  ASSERT_TRUE(store_->Transition("r_box", v1::RunStatus::CANCEL_REQUESTED, {}, At(20)).ok());
  expect_refused("cancel requested");
  ASSERT_TRUE(store_->Transition("r_box", v1::RunStatus::FINALIZING, {}, At(21)).ok());
  expect_refused("finalizing");
  ASSERT_TRUE(store_->Transition("r_box", v1::RunStatus::CANCELED, {}, At(22)).ok());

  ASSERT_TRUE(store_->DeleteComputeTarget("box").ok());
  EXPECT_EQ(store_->GetComputeTarget("box").status().code(), absl::StatusCode::kNotFound);
  // The finished run keeps the name it ran on, and the name may be reused.
  EXPECT_EQ(store_->GetRun("r_box")->config().compute_target(), "box");
  EXPECT_TRUE(store_->CreateComputeTarget(SlurmTargetNamed("box"), At(40)).ok());
}

}  // namespace
}  // namespace amld::storage
