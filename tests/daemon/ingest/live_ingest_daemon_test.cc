// Live ingestion in the whole daemon (in this process, on a temp dir, over
// its Unix socket, with real runs under the real supervisor): files and
// metrics a run writes are served while it still runs, files it removes are
// gone at its end, and a restarted daemon catches up with what the run did
// while it was down. Each script waits for a marker file the test creates
// once it has seen what it came for, so nothing here depends on timing.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "amld/v1/runs.grpc.pb.h"
#include "daemon/daemon.h"
#include "storage/cas.h"
#include "storage/snapshot/snapshot.h"
#include "tests/testing/in_process_daemon.h"
#include "tests/testing/test_util.h"

namespace amld::daemon {
namespace {

namespace fs = std::filesystem;
namespace pb = amld::v1;
using ::testing::ElementsAre;
using testing::Eventually;
using ::testing::HasSubstr;
using testing::ReadFile;
using testing::TempDir;
using testing::WriteFile;

class LiveIngestDaemonTest : public testing::InProcessDaemonTest {
 protected:
  // Submits `command` with MARK (and MARK2) naming marker files of this test.
  std::string SubmitCommand(const std::string& command) {
    WriteFile(dir_ / "src/empty.txt", "");
    auto snapshot = amld::storage::BuildSnapshot(dir_ / "src");
    EXPECT_TRUE(snapshot.ok()) << snapshot.status();
    auto cas = amld::storage::ContentStore::Open(options_.data_dir / "cas");
    EXPECT_TRUE(amld::storage::StoreSnapshot(*snapshot, **cas).ok());
    pb::SubmitRunRequest req;
    pb::RunConfig* config = req.mutable_config();
    config->set_experiment_name("live");
    amld::storage::ToProto(snapshot->root, config->mutable_snapshot_root());
    config->set_command(command);
    auto& env = *config->mutable_environment()->mutable_environment_variables();
    env["MARK"] = (dir_ / "mark").string();
    env["MARK2"] = (dir_ / "mark2").string();
    pb::SubmitRunResponse resp;
    grpc::ClientContext ctx;
    grpc::Status s = runs_->SubmitRun(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.run().id();
  }

  pb::Run GetRun(const std::string& id) {
    pb::GetRunRequest req;
    req.set_run_id(id);
    pb::Run run;
    grpc::ClientContext ctx;
    EXPECT_TRUE(runs_->GetRun(&ctx, req, &run).ok());
    return run;
  }
  pb::Run WaitEnd(const std::string& id) {
    pb::Run run;
    EXPECT_TRUE(Eventually([&] {
      run = GetRun(id);
      return run.status() == pb::RunStatus::COMPLETED || run.status() == pb::RunStatus::FAILED ||
             run.status() == pb::RunStatus::CANCELED;
    }));
    return run;
  }

  // path → size of the run's stored files.
  std::map<std::string, int64_t> Files(const std::string& id) {
    pb::ListFilesRequest req;
    req.set_run_id(id);
    pb::ListFilesResponse resp;
    grpc::ClientContext ctx;
    EXPECT_TRUE(runs_->ListFiles(&ctx, req, &resp).ok());
    std::map<std::string, int64_t> out;
    for (const pb::RunFile& f : resp.files()) out[f.path()] = f.digest().size_bytes();
    return out;
  }
  std::string Download(const std::string& id, const std::string& path) {
    pb::DownloadFileRequest req;
    req.set_run_id(id);
    req.set_path(path);
    grpc::ClientContext ctx;
    auto reader = runs_->DownloadFile(&ctx, req);
    std::string data;
    pb::FileChunk chunk;
    while (reader->Read(&chunk)) data += chunk.data();
    grpc::Status s = reader->Finish();
    EXPECT_TRUE(s.ok()) << path << ": " << s.error_message();
    return data;
  }
  std::vector<std::string> Metrics(const std::string& id) {
    pb::GetMetricsRequest req;
    req.set_run_id(id);
    pb::GetMetricsResponse resp;
    grpc::ClientContext ctx;
    EXPECT_TRUE(runs_->GetMetrics(&ctx, req, &resp).ok());
    std::vector<std::string> out;
    for (const pb::Metric& m : resp.metrics()) {
      out.push_back(absl::StrCat(m.name(), "@", m.step(), "=",
                                 m.has_text() ? m.text() : absl::StrCat(m.number())));
    }
    return out;
  }
  fs::path RunDir(const std::string& id) { return options_.data_dir / "runs" / id; }

};

TEST_F(LiveIngestDaemonTest, AnOutputWrittenMidRunIsDownloadableBeforeTheRunEnds) {
  const std::string id = SubmitCommand(
      "head -c 300000 /dev/urandom > outputs/model.bin.tmp && "
      "mv outputs/model.bin.tmp outputs/model.bin && "
      "mkdir -p logs/epoch1 && echo 'epoch 1 done' > logs/epoch1/progress.txt && "
      "while [ ! -e \"$MARK\" ]; do sleep 0.02; done");
  ASSERT_TRUE(Eventually([&] {
    auto files = Files(id);
    return files["outputs/model.bin"] == 300000 && files.count("logs/epoch1/progress.txt") > 0;
  })) << "the files were not listed while the run ran";
  const std::string model = Download(id, "outputs/model.bin");
  EXPECT_EQ(GetRun(id).status(), pb::RunStatus::RUNNING) << "the run waits for the marker";
  EXPECT_TRUE(model == ReadFile(RunDir(id) / "wd/outputs/model.bin")) << "not byte-identical";
  EXPECT_EQ(Download(id, "logs/epoch1/progress.txt"), "epoch 1 done\n");

  WriteFile(dir_ / "mark", "");
  pb::Run end = WaitEnd(id);
  EXPECT_EQ(end.status(), pb::RunStatus::COMPLETED) << end.error();
  std::vector<std::string> paths;
  for (const auto& [path, size] : Files(id)) paths.push_back(path);
  EXPECT_THAT(paths, ElementsAre("logs/epoch1/progress.txt", "outputs/model.bin",
                                 "system_logs/amld-shim.log", "user_logs/std_log.txt"));
  EXPECT_TRUE(Download(id, "outputs/model.bin") == model);
}

TEST_F(LiveIngestDaemonTest, MetricsLoggedByARunningScriptAreVisibleWhileItRuns) {
  const std::string id = SubmitCommand(
      R"(echo '{"name": "loss", "value": 0.5, "step": 1}' >> "$AMLD_METRICS_FILE"; )"
      R"(echo '{"name": "loss", "value": 0.25, "step": 2, "time": 1750000000.5}' >> "$AMLD_METRICS_FILE"; )"
      R"(echo '{"name": "loss", "value": }' >> "$AMLD_METRICS_FILE"; )"
      R"(echo '{"name": "optimizer", "value": "adam"}' >> "$AMLD_METRICS_FILE"; )"
      R"(while [ ! -e "$MARK" ]; do sleep 0.02; done; )"
      R"(printf '{"name": "accuracy", "value": 0.9}' >> "$AMLD_METRICS_FILE")");
  ASSERT_TRUE(Eventually([&] { return Metrics(id).size() == 3; }));
  EXPECT_EQ(GetRun(id).status(), pb::RunStatus::RUNNING);
  EXPECT_THAT(Metrics(id), ElementsAre("loss@1=0.5", "loss@2=0.25", "optimizer@0=adam"));
  EXPECT_THAT(ReadFile(RunDir(id) / "system_logs/amld-metrics.log"),
              HasSubstr("metrics.jsonl line 3: skipped: not JSON"));

  WriteFile(dir_ / "mark", "");
  EXPECT_EQ(WaitEnd(id).status(), pb::RunStatus::COMPLETED);
  // The last line, written without a newline just before the end, too.
  EXPECT_THAT(Metrics(id),
              ElementsAre("accuracy@0=0.9", "loss@1=0.5", "loss@2=0.25", "optimizer@0=adam"));
}

TEST_F(LiveIngestDaemonTest, FilesRemovedDuringTheRunAreNotListedAtItsEnd) {
  const std::string id = SubmitCommand(
      "echo old > outputs/old.txt; mkdir outputs/ckpt-1; echo w > outputs/ckpt-1/w; "
      "while [ ! -e \"$MARK\" ]; do sleep 0.02; done; "
      "rm outputs/old.txt; rm -r outputs/ckpt-1; echo new > outputs/new.txt");
  ASSERT_TRUE(Eventually([&] {
    auto files = Files(id);
    return files.count("outputs/old.txt") > 0 && files.count("outputs/ckpt-1/w") > 0;
  }));
  WriteFile(dir_ / "mark", "");
  ASSERT_EQ(WaitEnd(id).status(), pb::RunStatus::COMPLETED);
  std::vector<std::string> paths;
  for (const auto& [path, size] : Files(id)) paths.push_back(path);
  EXPECT_THAT(paths,
              ElementsAre("outputs/new.txt", "system_logs/amld-shim.log", "user_logs/std_log.txt"));
}

TEST_F(LiveIngestDaemonTest, ARestartedDaemonCatchesUpWithWhatTheRunDidWhileItWasDown) {
  const std::string id = SubmitCommand(
      R"(echo a > outputs/a.txt; echo '{"name": "loss", "value": 1}' >> "$AMLD_METRICS_FILE"; )"
      R"(while [ ! -e "$MARK" ]; do sleep 0.02; done; )"
      R"(echo b > outputs/b.txt; echo '{"name": "loss", "value": 2}' >> "$AMLD_METRICS_FILE"; )"
      R"(touch outputs/written; )"
      R"(while [ ! -e "$MARK2" ]; do sleep 0.02; done)");
  ASSERT_TRUE(Eventually([&] { return Files(id).count("outputs/a.txt") > 0; }));
  ASSERT_TRUE(Eventually([&] { return Metrics(id).size() == 1; }));
  daemon_->Shutdown();  // the run goes on under its supervisor
  daemon_.reset();
  WriteFile(dir_ / "mark", "");
  ASSERT_TRUE(Eventually([&] { return fs::exists(RunDir(id) / "wd/outputs/written"); }));

  StartDaemon();
  ASSERT_TRUE(Eventually([&] { return Files(id).count("outputs/b.txt") > 0; }))
      << "the re-adopted run was not rescanned";
  EXPECT_EQ(GetRun(id).status(), pb::RunStatus::RUNNING);
  EXPECT_EQ(Download(id, "outputs/b.txt"), "b\n");
  ASSERT_TRUE(Eventually([&] { return Metrics(id).size() >= 2; }));
  EXPECT_THAT(Metrics(id), ElementsAre("loss@0=1", "loss@1=2")) << "nothing stored twice";

  WriteFile(dir_ / "mark2", "");
  EXPECT_EQ(WaitEnd(id).status(), pb::RunStatus::COMPLETED);
  EXPECT_THAT(Metrics(id), ElementsAre("loss@0=1", "loss@1=2"));
}

}  // namespace
}  // namespace amld::daemon
