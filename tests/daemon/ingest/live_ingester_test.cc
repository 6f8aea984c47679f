// Live ingestion stepped by hand: a fake watcher (the test says which events
// happened, or that events were lost) and a fake clock drive the pipeline
// events → settle → store without threads or sleeps, like watchman's
// InMemoryView tests. Real files, a real CAS and real SQLite on a temp dir.
// At the end, the real inotify watcher: what it reports, and a real queue
// overflow that the ingester's own thread recovers from.
#include "daemon/ingest/live_ingester.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <map>

#include "absl/strings/str_cat.h"
#include "base/file_util.h"
#include "daemon/watch/inotify.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/fake_watcher.h"
#include "tests/testing/test_util.h"
#include "tests/testing/tf_events_writer.h"

namespace amld::daemon {
namespace {

namespace fs = std::filesystem;
using amld::storage::ContentStore;
using amld::storage::StateStore;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::Eventually;
using testing::FakeClock;
using ::testing::IsEmpty;
using ::testing::Pair;
using testing::FakeWatcher;
using testing::ReadFile;
using testing::TempDir;
using testing::WriteFile;
using Files = std::map<std::string, std::string>;

constexpr absl::Duration kSettle = absl::Milliseconds(200);

class LiveIngesterTest : public ::testing::Test {
 protected:
  static constexpr uint32_t kSubmitter = 1234;
  void SetUp() override {
    store_ = *StateStore::Open(dir_ / "amld.db");
    cas_ = *ContentStore::Open(dir_ / "cas");
    amld::storage::NewRun run;
    run.id = run_id_;
    run.config.set_experiment_name("exp");
    run.config.set_script("train.py");
    amld::storage::ToProto(amld::storage::Digest::Empty(), run.config.mutable_snapshot_root());
    run.now = absl::FromUnixSeconds(1750000000);
    run.submitter_uid = kSubmitter;
    ASSERT_TRUE(store_->InsertRun(run).ok());
    paths_ = RunPathsFor(dir_ / "runs", run_id_);
    for (const fs::path& d : {paths_.outputs, paths_.logs, paths_.user_logs, paths_.system_logs}) {
      fs::create_directories(d);
    }
    WriteFile(paths_.std_log, "");
  }

  // Racy stamps off: a file stored is trusted at once, so tests can count
  // reads exactly. (RacyStampsAreReadAgain covers the window.) A CAS sync
  // per pass, so what a pass stored is recorded at once.
  // (FilesAreRecordedAfterOneSyncPerInterval covers the interval.)
  static LiveIngesterOptions Exact() {
    LiveIngesterOptions o;
    o.racy_window = absl::ZeroDuration();
    o.durable_interval = absl::ZeroDuration();
    return o;
  }
  void MakeIngester(LiveIngesterOptions options = Exact(), Watcher* watcher = nullptr) {
    ingester_ = std::make_unique<LiveIngester>(
        LiveIngesterDeps{store_.get(), cas_.get(), watcher != nullptr ? watcher : &watcher_,
                         &clock_, nullptr},
        options);
  }
  void StartWatching() {
    ingester_->Watch(run_id_, paths_);
    ingester_->RunDue();  // the first scan: watches everything
  }
  absl::Time Step() { return ingester_->RunDue(); }
  void Event(const fs::path& dir, const std::string& name, bool is_dir = false) {
    EXPECT_TRUE(watcher_.Watches(dir)) << dir << " is not watched";
    ingester_->HandleEvents({watcher_.Entry(dir, name, is_dir)});
  }
  void Settle() {
    clock_.Advance(kSettle);
    Step();
  }
  Files Stored() {
    Files out;
    auto artifacts = store_->ListArtifacts(run_id_);
    EXPECT_TRUE(artifacts.ok()) << artifacts.status();
    for (const auto& a : *artifacts) out[a.path] = *cas_->Read(a.digest);
    return out;
  }
  std::vector<std::string> Metrics() {
    std::vector<std::string> out;
    absl::StatusOr<std::vector<amld::v1::Metric>> metrics = store_->GetMetrics(run_id_, {});
    EXPECT_TRUE(metrics.ok()) << metrics.status();
    if (!metrics.ok()) return out;
    for (const amld::v1::Metric& m : *metrics) {
      out.push_back(absl::StrCat(m.name(), "@", m.step(), "=",
                                 m.has_text() ? m.text() : absl::StrCat(m.number())));
    }
    return out;
  }
  void AppendMetrics(absl::string_view data) {
    std::ofstream out(paths_.metrics, std::ios::binary | std::ios::app);
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
  }

  TempDir dir_;
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<ContentStore> cas_;
  const std::string run_id_ = "exp_1750000000_0000abcd";
  RunPaths paths_;
  FakeClock clock_;
  FakeWatcher watcher_;
  std::unique_ptr<LiveIngester> ingester_;
};

TEST_F(LiveIngesterTest, WatchingStartsWithAScanThatWatchesEveryFolder) {
  WriteFile(paths_.outputs / "from_snapshot/a.txt", "there before");
  MakeIngester();
  ingester_->Watch(run_id_, paths_);
  EXPECT_EQ(watcher_.wakes(), 1);  // the loop must look at the new work
  EXPECT_EQ(Step(), clock_.Now() + kSettle) << "the scan is due at once; a.txt settles";
  for (const fs::path& d :
       {paths_.root, paths_.wd, paths_.outputs, paths_.logs, paths_.outputs / "from_snapshot"}) {
    EXPECT_TRUE(watcher_.Watches(d)) << d;
  }
  EXPECT_FALSE(watcher_.Watches(paths_.user_logs));
  Settle();
  EXPECT_EQ(Stored(), (Files{{"outputs/from_snapshot/a.txt", "there before"}}));
  EXPECT_EQ(ingester_->stats().rescans, 1);
}

TEST_F(LiveIngesterTest, AFileIsStoredOnlyAfterItSettledAndChangedTwiceIsStoredOnce) {
  MakeIngester();
  StartWatching();
  WriteFile(paths_.outputs / "model.json", "v1");
  Event(paths_.outputs, "model.json");
  EXPECT_EQ(Step(), clock_.Now() + kSettle);
  clock_.Advance(absl::Milliseconds(100));
  WriteFile(paths_.outputs / "model.json", "v2, final");
  Event(paths_.outputs, "model.json");
  EXPECT_EQ(Step(), clock_.Now() + kSettle) << "each change restarts the wait";
  clock_.Advance(kSettle - absl::Milliseconds(1));
  Step();
  EXPECT_THAT(Stored(), IsEmpty());
  clock_.Advance(absl::Milliseconds(1));
  EXPECT_EQ(Step(), absl::InfiniteFuture());
  EXPECT_EQ(Stored(), (Files{{"outputs/model.json", "v2, final"}}));
  EXPECT_EQ(ingester_->stats().files_read, 1);
}

TEST_F(LiveIngesterTest, AFileThatNeverSettlesIsStoredWithinMaxDelay) {
  MakeIngester();
  StartWatching();
  const absl::Time first = clock_.Now();
  for (int i = 0; clock_.Now() - first < absl::Seconds(2); ++i) {
    WriteFile(paths_.logs / "train.log", absl::StrCat("line ", i, "\n"));
    Event(paths_.logs, "train.log");
    EXPECT_EQ(Step(), std::min(first + absl::Seconds(2), clock_.Now() + kSettle));
    EXPECT_THAT(Stored(), IsEmpty());
    clock_.Advance(absl::Milliseconds(150));
  }
  // 2.1 s after the first change, with the last change 150 ms ago.
  Step();
  EXPECT_EQ(Stored(), (Files{{"logs/train.log", "line 13\n"}}));
}

TEST_F(LiveIngesterTest, ANewFolderIsWatchedBeforeItIsListedSoEarlyFilesAreFound) {
  MakeIngester();
  StartWatching();
  // Written before the ingester hears of the folder: no events of their own.
  WriteFile(paths_.outputs / "ckpt/epoch1/w.bin", "w1");
  WriteFile(paths_.outputs / "ckpt/meta.txt", "m");
  Event(paths_.outputs, "ckpt", /*is_dir=*/true);
  Step();  // folders at once
  EXPECT_TRUE(watcher_.Watches(paths_.outputs / "ckpt"));
  EXPECT_TRUE(watcher_.Watches(paths_.outputs / "ckpt/epoch1"));
  EXPECT_THAT(Stored(), IsEmpty()) << "files found in a new folder settle first";
  Settle();
  EXPECT_EQ(Stored(), (Files{{"outputs/ckpt/epoch1/w.bin", "w1"}, {"outputs/ckpt/meta.txt", "m"}}));
  // Later files there arrive as events of the new watch.
  WriteFile(paths_.outputs / "ckpt/epoch1/w2.bin", "w2");
  Event(paths_.outputs / "ckpt/epoch1", "w2.bin");
  Settle();
  EXPECT_THAT(Stored(), Contains(Pair("outputs/ckpt/epoch1/w2.bin", "w2")));
}

TEST_F(LiveIngesterTest, OverflowLeadsToARescanThatMissesNothing) {
  LiveIngesterOptions options;  // real racy window: a.txt is rewritten at once
  options.durable_interval = absl::ZeroDuration();
  MakeIngester(options);
  StartWatching();
  WriteFile(paths_.outputs / "a.txt", "a1");
  WriteFile(paths_.outputs / "gone.txt", "g");
  Event(paths_.outputs, "a.txt");
  Event(paths_.outputs, "gone.txt");
  Settle();
  ASSERT_EQ(Stored().size(), 2u);
  // Changes whose events were lost: same size, new folders, a removal.
  WriteFile(paths_.outputs / "a.txt", "a2");
  WriteFile(paths_.outputs / "new/deep/n.txt", "n");
  WriteFile(paths_.logs / "l.txt", "l");
  fs::remove(paths_.outputs / "gone.txt");
  ingester_->HandleEvents({WatchEvent{WatchEvent::Kind::kOverflow}});
  Step();
  EXPECT_TRUE(watcher_.Watches(paths_.outputs / "new/deep"));
  EXPECT_EQ(Stored().count("outputs/gone.txt"), 0u) << "a removal needs no settling";
  Settle();
  EXPECT_EQ(Stored(),
            (Files{{"outputs/a.txt", "a2"}, {"outputs/new/deep/n.txt", "n"}, {"logs/l.txt", "l"}}));
  EXPECT_EQ(ingester_->stats().overflows, 1);
  EXPECT_EQ(ingester_->stats().rescans, 2);
}

TEST_F(LiveIngesterTest, AnEventForAnUnknownWatchLeadsToARescan) {
  MakeIngester();
  StartWatching();
  WriteFile(paths_.outputs / "x.txt", "x");
  ingester_->HandleEvents({WatchEvent{WatchEvent::Kind::kEntry, 4242, "x.txt", false}});
  EXPECT_EQ(ingester_->stats().unknown_watch_events, 1);
  Step();
  Settle();
  EXPECT_EQ(Stored(), (Files{{"outputs/x.txt", "x"}}));
  // The end of a watch (its folder was deleted) is not a loss.
  ingester_->HandleEvents({WatchEvent{WatchEvent::Kind::kWatchEnded, 4343, "", false}});
  EXPECT_EQ(ingester_->stats().unknown_watch_events, 1);
  EXPECT_EQ(Step(), absl::InfiniteFuture());
}

TEST_F(LiveIngesterTest, RemovedAndRenamedFilesDisappearFromTheRun) {
  MakeIngester();
  StartWatching();
  WriteFile(paths_.outputs / "m.tmp", "model");
  WriteFile(paths_.outputs / "sub/a.txt", "a");
  Event(paths_.outputs, "m.tmp");
  Event(paths_.outputs, "sub", true);
  Step();
  Settle();
  ASSERT_EQ(Stored().size(), 2u);
  fs::rename(paths_.outputs / "m.tmp", paths_.outputs / "m.json");  // write-then-rename
  Event(paths_.outputs, "m.tmp");
  Event(paths_.outputs, "m.json");
  fs::remove_all(paths_.outputs / "sub");
  Event(paths_.outputs, "sub", true);
  Step();
  Settle();
  EXPECT_EQ(Stored(), (Files{{"outputs/m.json", "model"}}));
}

TEST_F(LiveIngesterTest, LinksAndFifosAreNeverStoredOrFollowed) {
  MakeIngester();
  StartWatching();
  ASSERT_EQ(::symlink("/etc/passwd", (paths_.outputs / "passwd").c_str()), 0);
  ASSERT_EQ(::symlink("/etc", (paths_.outputs / "etc").c_str()), 0);
  ASSERT_EQ(::mkfifo((paths_.outputs / "fifo").c_str(), 0644), 0);
  Event(paths_.outputs, "passwd");
  Event(paths_.outputs, "etc", true);
  Event(paths_.outputs, "fifo");
  Step();
  Settle();
  EXPECT_THAT(Stored(), IsEmpty());
  EXPECT_FALSE(watcher_.Watches("/etc"));
  std::vector<std::string> skipped;
  ASSERT_TRUE(ingester_->Finish(run_id_, paths_, &skipped).ok());
  EXPECT_THAT(skipped, ElementsAre("outputs/etc: symbolic link, not stored",
                                   "outputs/fifo: not a regular file, not stored",
                                   "outputs/passwd: symbolic link, not stored"));
}

TEST_F(LiveIngesterTest, FinishReadsOnlyChangedFilesAndLetsTheWatchesGo) {
  MakeIngester();
  StartWatching();
  WriteFile(paths_.outputs / "keep.bin", std::string(10000, 'k'));
  WriteFile(paths_.outputs / "change.txt", "c1");
  WriteFile(paths_.outputs / "drop.txt", "d");
  for (const char* name : {"keep.bin", "change.txt", "drop.txt"}) Event(paths_.outputs, name);
  Settle();
  ASSERT_EQ(ingester_->stats().files_read, 3);
  // What the run did last, without events reaching the ingester.
  WriteFile(paths_.outputs / "change.txt", "c2, longer");
  fs::remove(paths_.outputs / "drop.txt");
  WriteFile(paths_.std_log, "hello\n");
  const int outputs_watch = watcher_.IdOf(paths_.outputs).value_or(-1);

  std::vector<std::string> skipped;
  ASSERT_TRUE(ingester_->Finish(run_id_, paths_, &skipped).ok());
  EXPECT_THAT(skipped, IsEmpty());
  EXPECT_EQ(ingester_->stats().files_read, 4) << "only change.txt is read again";
  EXPECT_EQ(Stored(), (Files{{"outputs/change.txt", "c2, longer"},
                             {"outputs/keep.bin", std::string(10000, 'k')},
                             {"user_logs/std_log.txt", "hello\n"}}));
  EXPECT_THAT(watcher_.removed(), Contains(outputs_watch));
  // Events the kernel had queued before the watch went are expected.
  ingester_->HandleEvents({WatchEvent{WatchEvent::Kind::kEntry, outputs_watch, "late", false}});
  EXPECT_EQ(ingester_->stats().unknown_watch_events, 0);
  EXPECT_EQ(Step(), absl::InfiniteFuture());
}

TEST_F(LiveIngesterTest, FilesAreRecordedAfterOneSyncPerInterval) {
  LiveIngesterOptions options = Exact();
  options.durable_interval = absl::Seconds(1);
  MakeIngester(options);
  StartWatching();
  WriteFile(paths_.outputs / "a.txt", "a");
  Event(paths_.outputs, "a.txt");
  Settle();
  // The first sync of the ingester's life is due at once.
  EXPECT_EQ(Stored(), (Files{{"outputs/a.txt", "a"}}));
  EXPECT_EQ(ingester_->stats().cas_syncs, 1);
  EXPECT_EQ(cas_->PendingSyncCount(), 0);

  // Within the interval, files are stored without an fsync each and wait
  // (unrecorded) for the next sync.
  for (int i = 0; i < 100; ++i) {
    const std::string name = absl::StrCat("f", i, ".txt");
    WriteFile(paths_.outputs / name, absl::StrCat("content ", i));
    Event(paths_.outputs, name);
  }
  Settle();
  EXPECT_EQ(ingester_->stats().files_read, 101);
  EXPECT_EQ(Stored().size(), 1u) << "recorded only after they are durable";
  EXPECT_EQ(cas_->PendingSyncCount(), 100);
  EXPECT_EQ(ingester_->stats().cas_syncs, 1);
  // The flush is due when the interval ends: one sync for all 100.
  const absl::Time due = Step();
  EXPECT_LE(due, clock_.Now() + absl::Seconds(1));
  clock_.Advance(due - clock_.Now());
  Step();
  EXPECT_EQ(Stored().size(), 101u);
  EXPECT_EQ(Stored().at("outputs/f99.txt"), "content 99");
  EXPECT_EQ(cas_->PendingSyncCount(), 0);
  EXPECT_EQ(ingester_->stats().cas_syncs, 2);

  // A file stored and removed before its sync is never recorded.
  WriteFile(paths_.outputs / "tmp.txt", "t");
  Event(paths_.outputs, "tmp.txt");
  Settle();
  fs::remove(paths_.outputs / "tmp.txt");
  Event(paths_.outputs, "tmp.txt");
  clock_.Advance(absl::Seconds(1));
  Step();
  EXPECT_FALSE(Stored().contains("outputs/tmp.txt"));

  // The end of the run: one more sync covers what Finish stored.
  WriteFile(paths_.outputs / "last.txt", "l");
  WriteFile(paths_.std_log, "bye\n");
  const int64_t syncs = ingester_->stats().cas_syncs;
  ASSERT_TRUE(ingester_->Finish(run_id_, paths_, nullptr).ok());
  EXPECT_EQ(ingester_->stats().cas_syncs, syncs + 1);
  EXPECT_EQ(cas_->PendingSyncCount(), 0);
  EXPECT_EQ(Stored().at("outputs/last.txt"), "l");
  EXPECT_EQ(Stored().at("user_logs/std_log.txt"), "bye\n");
  EXPECT_EQ(Stored().size(), 103u);
}

TEST_F(LiveIngesterTest, RacyStampsAreReadAgain) {
  LiveIngesterOptions options;
  options.racy_window = absl::Hours(1);  // every stamp is "recent"
  MakeIngester(options);
  StartWatching();
  WriteFile(paths_.outputs / "a.txt", "a");
  Event(paths_.outputs, "a.txt");
  Settle();
  ASSERT_EQ(ingester_->stats().files_read, 1);
  ASSERT_TRUE(ingester_->Finish(run_id_, paths_, nullptr).ok());
  EXPECT_EQ(ingester_->stats().files_read, 2);
}

TEST_F(LiveIngesterTest, WithoutAWatcherFinishStoresEverything) {
  ingester_ = std::make_unique<LiveIngester>(
      LiveIngesterDeps{store_.get(), cas_.get(), nullptr, &clock_, nullptr}, Exact());
  ingester_->Watch(run_id_, paths_);  // nothing to watch with
  EXPECT_EQ(Step(), absl::InfiniteFuture());
  WriteFile(paths_.outputs / "a/b.txt", "b");
  WriteFile(paths_.logs / "l.txt", "l");
  AppendMetrics("{\"name\": \"loss\", \"value\": 0.5}");
  ASSERT_TRUE(ingester_->Finish(run_id_, paths_, nullptr).ok());
  EXPECT_EQ(Stored(),
            (Files{{"logs/l.txt", "l"}, {"outputs/a/b.txt", "b"}, {"user_logs/std_log.txt", ""}}));
  EXPECT_THAT(Metrics(), ElementsAre("loss@0=0.5"));
}

TEST_F(LiveIngesterTest, MetricsAreTailedWhileTheRunRunsAndTheRestAtTheEnd) {
  MakeIngester();
  StartWatching();
  AppendMetrics(
      "{\"name\": \"loss\", \"value\": 0.9}\n"
      "{\"name\": \"loss\", \"value\": oops}\n"
      "{\"name\": \"phase\", \"value\": \"train\", \"step\": 7}\n"
      "{\"name\": \"loss\", \"va");
  Event(paths_.root, "metrics.jsonl");
  Event(paths_.root, "exit.json");  // other files of the run folder are not metrics
  EXPECT_EQ(Step(), clock_.Now() + absl::Milliseconds(100));
  clock_.Advance(absl::Milliseconds(100));
  Step();
  EXPECT_THAT(Metrics(), ElementsAre("loss@0=0.9", "phase@7=train"));
  EXPECT_EQ(ingester_->stats().metric_lines_skipped, 1);
  EXPECT_THAT(ReadFile(paths_.system_logs / "amld-metrics.log"),
              HasSubstr("metrics.jsonl line 2: skipped: not JSON"));

  AppendMetrics("lue\": 0.7}\n{\"name\": \"loss\", \"value\": 0.5}");
  Event(paths_.root, "metrics.jsonl");
  clock_.Advance(absl::Milliseconds(100));
  Step();
  EXPECT_THAT(Metrics(), ElementsAre("loss@0=0.9", "loss@1=0.7", "phase@7=train"));
  // The writer is gone: its last line counts without a newline.
  ASSERT_TRUE(ingester_->Finish(run_id_, paths_, nullptr).ok());
  EXPECT_THAT(Metrics(), ElementsAre("loss@0=0.9", "loss@1=0.7", "loss@2=0.5", "phase@7=train"));
  EXPECT_EQ(ingester_->stats().metrics_stored, 4);
}

TEST_F(LiveIngesterTest, KindLinesTagUploadFailAndRegisterAModelAtTheEnd) {
  MakeIngester();
  StartWatching();
  WriteFile(paths_.root / "uploads/notes/n.txt", "notes");
  WriteFile(paths_.outputs / "model.pkl", "weights");
  AppendMetrics(
      "{\"kind\": \"tags\", \"set\": {\"stage\": \"train\"}}\n"
      "{\"kind\": \"upload\", \"name\": \"notes/n.txt\"}\n"
      "{\"kind\": \"upload\", \"name\": \"missing.txt\"}\n"
      "{\"kind\": \"upload\", \"name\": \"user_logs/x\"}\n"
      "{\"kind\": \"register_model\", \"name\": \"clf\", \"path\": \"outputs/model.pkl\"}\n"
      "{\"kind\": \"register_model\", \"name\": \"gone\", \"path\": \"outputs/none\"}\n"
      "{\"kind\": \"fail\", \"error\": \"bad data\"}\n");
  Event(paths_.root, "metrics.jsonl");
  clock_.Advance(absl::Milliseconds(100));
  Step();
  EXPECT_EQ(store_->GetRun(run_id_)->tags().at("stage"), "train");
  EXPECT_EQ(Stored().at("notes/n.txt"), "notes");
  EXPECT_EQ(store_->RequestedFailure(run_id_)->value_or(""), "bad data");
  // Registered only at the end, from the files the run stored.
  EXPECT_EQ(store_->GetModel("clf", 0).status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(ingester_->Finish(run_id_, paths_, nullptr).ok());
  auto model = store_->GetModel("clf", 0);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->run_id(), run_id_);
  // The run's submitter registered it (who may read its files in system mode).
  EXPECT_EQ(model->registered_by_uid(), kSubmitter);
  EXPECT_EQ(*cas_->Read(amld::storage::FromProto(model->files(0).digest())), "weights");
  const std::string log = ReadFile(paths_.system_logs / "amld-metrics.log");
  EXPECT_THAT(log, HasSubstr("line 3: upload of \"missing.txt\""));
  EXPECT_THAT(log, HasSubstr("line 4: upload of \"user_logs/x\" refused"));
  EXPECT_THAT(log, HasSubstr("line 6: register_model(gone): run " + run_id_ + " has no file"));
  // A restarted daemon reads the lines again: nothing changes, no second version.
  LiveIngester again(LiveIngesterDeps{store_.get(), cas_.get(), nullptr, &clock_, nullptr}, Exact());
  ASSERT_TRUE(again.Finish(run_id_, paths_, nullptr).ok());
  EXPECT_EQ(store_->ListModels("clf", false, "")->size(), 1u);
}

TEST_F(LiveIngesterTest, AMetricsFileThatIsALinkIsNotRead) {
  WriteFile(dir_ / "elsewhere.jsonl", "{\"name\": \"secret\", \"value\": 1}\n");
  ASSERT_EQ(::symlink((dir_ / "elsewhere.jsonl").c_str(), paths_.metrics.c_str()), 0);
  MakeIngester();
  StartWatching();
  ASSERT_TRUE(ingester_->Finish(run_id_, paths_, nullptr).ok());
  EXPECT_THAT(Metrics(), IsEmpty());
  EXPECT_THAT(ReadFile(paths_.system_logs / "amld-metrics.log"),
              HasSubstr("metrics.jsonl is a symbolic link"));
}

TEST_F(LiveIngesterTest, ARestartedDaemonResumesWithoutDuplicatesAndRescans) {
  MakeIngester();
  StartWatching();
  WriteFile(paths_.outputs / "a.txt", "a1");
  Event(paths_.outputs, "a.txt");
  AppendMetrics("{\"name\": \"loss\", \"value\": 1}\n{\"name\": \"loss\", \"value\": 2}\n");
  Event(paths_.root, "metrics.jsonl");
  Settle();
  ASSERT_EQ(Metrics().size(), 2u);
  ingester_.reset();  // the daemon stops; the run goes on
  FakeWatcher fresh;
  WriteFile(paths_.outputs / "a.txt", "a2, while down");
  WriteFile(paths_.outputs / "b.txt", "b");
  AppendMetrics("{\"name\": \"loss\", \"value\": 3}\n");

  MakeIngester(Exact(), &fresh);
  ingester_->Watch(run_id_, paths_);
  Step();
  clock_.Advance(kSettle);
  Step();
  EXPECT_EQ(Stored(), (Files{{"outputs/a.txt", "a2, while down"}, {"outputs/b.txt", "b"}}));
  EXPECT_THAT(Metrics(), ElementsAre("loss@0=1", "loss@1=2", "loss@2=3"));
  EXPECT_TRUE(fresh.Watches(paths_.outputs));
}

// SummaryWriter's files under logs/: stored like every log, and their
// scalars read into the run's metrics beside metrics.jsonl's; a restarted
// daemon resumes each source where the last stopped.
TEST_F(LiveIngesterTest, TensorBoardEventFilesScalarsBecomeMetricsAndSurviveARestart) {
  namespace tf = amld::testing::tf_events;
  const fs::path folder = paths_.logs / "tb";
  const fs::path events = folder / "events.out.tfevents.1750000000.host.7.0";
  auto append_events = [&](const std::string& bytes) {
    std::ofstream out(events, std::ios::binary | std::ios::app);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  };
  MakeIngester();
  StartWatching();
  fs::create_directories(folder);
  Event(paths_.logs, "tb", /*is_dir=*/true);
  Step();
  const std::string second = tf::Record(tf::Event(1750000002, 1, {tf::SimpleValue("Loss/train", 0.5f)}));
  append_events(tf::Record(tf::Double(1, 1750000000) + tf::Bytes(3, "brain.Event:2")) +
                tf::Record(tf::Event(1750000001, 0, {tf::SimpleValue("Loss/train", 1.0f)})) +
                second.substr(0, 20));  // the writer is in the middle of a record
  Event(folder, events.filename());
  AppendMetrics("{\"name\": \"lr\", \"value\": 0.1}\n");
  Event(paths_.root, "metrics.jsonl");
  Settle();
  EXPECT_THAT(Metrics(), ElementsAre("Loss/train@0=1", "lr@0=0.1"));
  EXPECT_THAT(Stored(), Contains(Pair("logs/tb/" + events.filename().string(), ::testing::_)));

  append_events(second.substr(20));
  Event(folder, events.filename());
  Settle();
  EXPECT_THAT(Metrics(), ElementsAre("Loss/train@0=1", "Loss/train@1=0.5", "lr@0=0.1"));

  ingester_.reset();  // the daemon stops; the run goes on writing both
  append_events(tf::Record(tf::Event(1750000003, 2, {tf::SimpleValue("Loss/train", 0.25f)})));
  AppendMetrics("{\"name\": \"lr\", \"value\": 0.05}\n");
  FakeWatcher fresh;
  MakeIngester(Exact(), &fresh);
  ingester_->Watch(run_id_, paths_);
  Step();
  clock_.Advance(kSettle);
  Step();
  // Nothing twice (not the events file's first two, not lr's first, whose
  // count is metrics.jsonl's own), nothing lost.
  EXPECT_THAT(Metrics(), ElementsAre("Loss/train@0=1", "Loss/train@1=0.5", "Loss/train@2=0.25",
                                     "lr@0=0.1", "lr@1=0.05"));
  // A torn last record when the run has ended is reported and ignored.
  append_events(tf::Record(tf::Event(1750000004, 3, {tf::SimpleValue("Loss/train", 0.1f)})).substr(0, 9));
  ASSERT_TRUE(ingester_->Finish(run_id_, paths_, nullptr).ok());
  EXPECT_EQ(Metrics().size(), 5u);
  EXPECT_THAT(ReadFile(paths_.system_logs / "amld-metrics.log"),
              HasSubstr("logs/tb/" + events.filename().string() + " byte "));
}

TEST_F(LiveIngesterTest, WhenTheKernelRefusesWatchesTheRunIsRescannedPeriodically) {
  watcher_.set_watch_limit(0);
  MakeIngester();
  ingester_->Watch(run_id_, paths_);
  EXPECT_EQ(Step(), clock_.Now() + absl::Seconds(5));
  WriteFile(paths_.outputs / "x.txt", "x");  // no watch, no event
  clock_.Advance(absl::Seconds(5));
  Step();
  Settle();
  EXPECT_EQ(Stored(), (Files{{"outputs/x.txt", "x"}}));
}

TEST_F(LiveIngesterTest, ForgetStopsEverything) {
  MakeIngester();
  StartWatching();
  WriteFile(paths_.outputs / "x.txt", "x");
  Event(paths_.outputs, "x.txt");
  const size_t watches = 4;  // run folder, wd, outputs, logs
  ingester_->Forget(run_id_);
  EXPECT_EQ(watcher_.removed().size(), watches);
  EXPECT_EQ(Step(), absl::InfiniteFuture());
  Settle();
  EXPECT_THAT(Stored(), IsEmpty());
}

// ---------------------------------------------------------------------------
// The real inotify watcher.

std::vector<WatchEvent> WaitFor(Watcher& watcher, size_t at_least) {
  std::vector<WatchEvent> events;
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  while (events.size() < at_least && absl::Now() < give_up) {
    watcher.Wait(absl::Seconds(1), &events);
  }
  return events;
}

TEST(InotifyWatcherTest, ReportsEntriesOfTheWatchedFolderOnly) {
  TempDir dir;
  fs::create_directories(dir / "watched/old");
  auto watcher = NewInotifyWatcher();
  ASSERT_TRUE(watcher.ok()) << watcher.status();
  amld::base::ScopedFd fd(::open((dir / "watched").c_str(), O_PATH | O_DIRECTORY));
  absl::StatusOr<int> watch = (*watcher)->AddWatch(fd.get(), WatchKind::kFolder);
  ASSERT_TRUE(watch.ok()) << watch.status();
  EXPECT_EQ(*(*watcher)->AddWatch(fd.get(), WatchKind::kFolder), *watch) << "one folder, one watch";

  WriteFile(dir / "watched/old/deeper.txt", "not reported: one level only");
  WriteFile(dir / "watched/f.txt", "x");
  fs::create_directory(dir / "watched/sub");
  std::vector<WatchEvent> events = WaitFor(**watcher, 4);  // create, modify, close, mkdir
  ASSERT_GE(events.size(), 4u);
  for (const WatchEvent& e : events) {
    EXPECT_EQ(e.kind, WatchEvent::Kind::kEntry);
    EXPECT_EQ(e.watch, *watch);
    EXPECT_TRUE(e.name == "f.txt" || (e.name == "sub" && e.is_dir)) << e.name;
  }
  // Wake ends a wait with nothing to report.
  (*watcher)->Wake();
  std::vector<WatchEvent> none;
  (*watcher)->Wait(absl::InfiniteDuration(), &none);
  EXPECT_THAT(none, IsEmpty());

  (*watcher)->RemoveWatch(*watch);
  events = WaitFor(**watcher, 1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, WatchEvent::Kind::kWatchEnded);
}

int MaxQueuedEvents() {
  std::ifstream in("/proc/sys/fs/inotify/max_queued_events");
  int n = 0;
  in >> n;
  return n;
}

// Deterministic: the queue is overflowed before the ingester's thread starts
// reading it — by more modifications than the kernel holds (alternating
// between two files, so none coalesce) — and the changes that matter come
// after the overflow, so none of them produced an event.
TEST_F(LiveIngesterTest, ARealInotifyOverflowLeadsToARescanThatMissesNothing) {
  const int queue = MaxQueuedEvents();
  ASSERT_GT(queue, 0);
  if (queue > 1'000'000) GTEST_SKIP() << "max_queued_events is " << queue << "; too many to fill";
  auto watcher = NewInotifyWatcher();
  ASSERT_TRUE(watcher.ok()) << watcher.status();
  WriteFile(paths_.outputs / "kept.txt", "before");
  WriteFile(paths_.outputs / "doomed.txt", "before");
  LiveIngesterOptions options;
  options.settle = absl::ZeroDuration();
  ingester_ = std::make_unique<LiveIngester>(
      LiveIngesterDeps{store_.get(), cas_.get(), watcher->get(), base::RealClock(), nullptr}, options);
  ingester_->Watch(run_id_, paths_);
  ingester_->RunDue();  // watches, finds both files...
  ingester_->RunDue();  // ...and stores them
  ASSERT_EQ(Stored().size(), 2u);

  {
    amld::base::ScopedFd a(::open((paths_.logs / "noise_a").c_str(), O_WRONLY | O_CREAT, 0644));
    amld::base::ScopedFd b(::open((paths_.logs / "noise_b").c_str(), O_WRONLY | O_CREAT, 0644));
    for (int i = 0; i <= queue / 2 + 10; ++i) {
      ASSERT_EQ(::write(a.get(), "a", 1), 1);
      ASSERT_EQ(::write(b.get(), "b", 1), 1);
    }
  }
  Files expected = {{"outputs/kept.txt", "after"},
                    {"logs/noise_a", std::string(queue / 2 + 11, 'a')},
                    {"logs/noise_b", std::string(queue / 2 + 11, 'b')}};
  WriteFile(paths_.outputs / "kept.txt", "after");
  fs::remove(paths_.outputs / "doomed.txt");
  for (int i = 0; i < 50; ++i) {
    const std::string rel = absl::StrCat("outputs/burst/", i % 5, "/f", i, ".txt");
    WriteFile(paths_.wd / rel, absl::StrCat("content ", i));
    expected[rel] = absl::StrCat("content ", i);
  }

  IngestLoop loop(ingester_.get(), watcher->get(), base::RealClock());
  EXPECT_TRUE(Eventually([&] { return Stored() == expected; }));
  EXPECT_EQ(Stored(), expected);
  EXPECT_EQ(ingester_->stats().overflows, 1);

  // The rescan watched the new folders: what comes next arrives as events.
  WriteFile(paths_.outputs / "burst/3/live.txt", "live");
  // Settle is zero here, so the file may first be stored as created (empty)
  // and then again once written: wait for its final content.
  auto live_stored = [&] {
    Files now = Stored();
    auto it = now.find("outputs/burst/3/live.txt");
    return it != now.end() && it->second == "live";
  };
  EXPECT_TRUE(Eventually(live_stored));
  EXPECT_THAT(Stored(), Contains(Pair("outputs/burst/3/live.txt", "live")));
  EXPECT_EQ(ingester_->stats().overflows, 1);
}

}  // namespace
}  // namespace amld::daemon
