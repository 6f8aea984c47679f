// The whole daemon in this process, on a temp dir, driven through a real
// gRPC channel on its Unix socket, running real processes under the real
// supervisor (amld-shim).
#include "daemon/daemon.h"

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "amld/v1/cas.grpc.pb.h"
#include "amld/v1/daemon.grpc.pb.h"
#include "amld/v1/experiments.grpc.pb.h"
#include "amld/v1/runs.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "storage/digest.h"
#include "base/file_util.h"
#include "storage/snapshot/snapshot.h"
#include "tests/testing/in_process_daemon.h"
#include "tests/testing/test_util.h"

namespace amld::daemon {
namespace {

namespace fs = std::filesystem;
namespace pb = amld::v1;
using amld::storage::Digest;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::TempDir;
using testing::WriteFile;

constexpr char kTrainPy[] = R"(import json, os
print("epoch 1 loss 0.5", flush=True)
with open("outputs/model.json", "w") as f:
    json.dump({"w": [1, 2, 3]}, f)
with open(os.path.join(os.environ["AMLD_LOGS_DIR"], "train.log"), "w") as f:
    f.write("log line\n")
with open(os.path.join(os.environ["AMLD_OUTPUTS_DIR"], "big.bin"), "wb") as f:
    f.write(bytes(range(256)) * 10000)
os.symlink("/etc/passwd", "outputs/passwd_link")
print("done", os.environ["AMLD_RUN_ID"], os.environ["AMLD_EXPERIMENT"], os.environ["SEED"])
)";

std::string BigBin() {
  std::string block;
  for (int i = 0; i < 256; ++i) block.push_back(static_cast<char>(i));
  std::string all;
  for (int i = 0; i < 10000; ++i) all += block;
  return all;
}

std::vector<pb::RunStatus::Value> Statuses(const std::vector<pb::Run>& runs) {
  std::vector<pb::RunStatus::Value> out;
  for (const pb::Run& r : runs) out.push_back(r.status());
  return out;
}

class DaemonTest : public testing::InProcessDaemonTest {
 protected:
  void SetUp() override {
    InProcessDaemonTest::SetUp();
    WriteFile(dir_ / "src/train.py", kTrainPy);
    WriteFile(dir_ / "src/lib/util.py", "X = 1\n");
  }

  // Uploads the folder like a client: FindMissingBlobs, then small blobs in
  // one batch and the largest file through a resumable Write.
  Digest Upload(const fs::path& src) {
    auto snapshot = amld::storage::BuildSnapshot(src);
    EXPECT_TRUE(snapshot.ok()) << snapshot.status();
    std::map<Digest, std::string> blobs(snapshot->directories.begin(), snapshot->directories.end());
    for (const auto& f : snapshot->files) blobs[f.digest] = testing::ReadFile(f.abs_path);
    pb::FindMissingBlobsRequest find;
    for (const auto& [d, _] : blobs) amld::storage::ToProto(d, find.add_blob_digests());
    pb::FindMissingBlobsResponse missing;
    grpc::ClientContext ctx;
    EXPECT_TRUE(cas_->FindMissingBlobs(&ctx, find, &missing).ok());
    pb::BatchUpdateBlobsRequest batch;
    for (const pb::Digest& m : missing.missing_blob_digests()) {
      auto* r = batch.add_requests();
      *r->mutable_digest() = m;
      r->set_data(blobs.at(amld::storage::FromProto(m)));
    }
    pb::BatchUpdateBlobsResponse stored;
    grpc::ClientContext ctx2;
    EXPECT_TRUE(cas_->BatchUpdateBlobs(&ctx2, batch, &stored).ok());
    for (const auto& r : stored.responses()) EXPECT_EQ(r.code(), 0) << r.message();
    return snapshot->root;
  }

  pb::RunConfig Config(const Digest& root) {
    pb::RunConfig c;
    c.set_experiment_name("exp");
    amld::storage::ToProto(root, c.mutable_snapshot_root());
    return c;
  }
  pb::RunConfig Command(const std::string& command) {
    WriteFile(dir_ / "cmd/empty.txt", "");
    pb::RunConfig c = Config(Upload(dir_ / "cmd"));
    c.set_command(command);
    return c;
  }

  grpc::Status Submit(const pb::RunConfig& config, pb::Run* run) {
    pb::SubmitRunRequest req;
    *req.mutable_config() = config;
    pb::SubmitRunResponse resp;
    grpc::ClientContext ctx;
    grpc::Status s = runs_->SubmitRun(&ctx, req, &resp);
    *run = resp.run();
    return s;
  }
  std::string MustSubmit(const pb::RunConfig& config) {
    pb::Run run;
    grpc::Status s = Submit(config, &run);
    EXPECT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(run.status(), pb::RunStatus::QUEUED);
    return run.id();
  }

  // Every state WaitRun sends until it ends (or until `stop_at`).
  std::vector<pb::Run> Wait(const std::string& id,
                            pb::RunStatus::Value stop_at = pb::RunStatus::UNKNOWN) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
    pb::WaitRunRequest req;
    req.set_run_id(id);
    auto reader = runs_->WaitRun(&ctx, req);
    std::vector<pb::Run> seen;
    pb::WaitRunResponse msg;
    while (reader->Read(&msg)) {
      seen.push_back(msg.run());
      if (msg.run().status() == stop_at) {
        ctx.TryCancel();
        break;
      }
    }
    grpc::Status s = reader->Finish();
    if (stop_at == pb::RunStatus::UNKNOWN) {
      EXPECT_TRUE(s.ok()) << s.error_message();
    }
    return seen;
  }
  pb::Run WaitEnd(const std::string& id) {
    std::vector<pb::Run> seen = Wait(id);
    return seen.empty() ? pb::Run() : seen.back();
  }

  grpc::Status Logs(const std::string& id, int64_t offset, bool follow, std::string* out,
                    const std::string& path = "") {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
    pb::StreamLogsRequest req;
    req.set_run_id(id);
    req.set_offset(offset);
    req.set_follow(follow);
    req.set_path(path);
    auto reader = runs_->StreamLogs(&ctx, req);
    pb::LogChunk chunk;
    int64_t expected = offset;
    while (reader->Read(&chunk)) {
      EXPECT_EQ(chunk.offset(), expected);
      expected += static_cast<int64_t>(chunk.data().size());
      *out += chunk.data();
    }
    return reader->Finish();
  }

  grpc::Status Download(const std::string& id, const std::string& path, int64_t offset,
                        std::string* out) {
    grpc::ClientContext ctx;
    pb::DownloadFileRequest req;
    req.set_run_id(id);
    req.set_path(path);
    req.set_offset(offset);
    auto reader = runs_->DownloadFile(&ctx, req);
    pb::FileChunk chunk;
    while (reader->Read(&chunk)) {
      EXPECT_LE(chunk.data().size(), 1u << 20);
      *out += chunk.data();
    }
    return reader->Finish();
  }

  pb::DaemonInfo Info() {
    grpc::ClientContext ctx;
    pb::DaemonInfo info;
    grpc::Status s = info_->GetInfo(&ctx, pb::GetInfoRequest(), &info);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return info;
  }

};

TEST_F(DaemonTest, ScriptRunsEndToEndAndItsOutputsDownloadByteIdentical) {
  pb::RunConfig config = Config(Upload(dir_ / "src"));
  config.set_script("train.py");
  (*config.mutable_environment()->mutable_environment_variables())["SEED"] = "42";
  std::string id = MustSubmit(config);

  pb::Run end = WaitEnd(id);
  ASSERT_EQ(end.status(), pb::RunStatus::COMPLETED) << end.error();
  EXPECT_EQ(end.submitter_uid(), ::geteuid());
  EXPECT_EQ(end.placement(), "local");

  std::string log;
  ASSERT_TRUE(Logs(id, 0, /*follow=*/true, &log).ok());
  EXPECT_EQ(log, absl::StrCat("epoch 1 loss 0.5\ndone ", id, " exp 42\n"));
  std::string tail;
  ASSERT_TRUE(Logs(id, 8, false, &tail).ok());
  EXPECT_EQ(tail, log.substr(8));

  pb::ListFilesRequest list;
  list.set_run_id(id);
  pb::ListFilesResponse files;
  grpc::ClientContext ctx;
  ASSERT_TRUE(runs_->ListFiles(&ctx, list, &files).ok());
  std::vector<std::string> paths;
  for (const auto& f : files.files()) paths.push_back(f.path());
  // system_logs/ is stored at the end too (aml run files --all shows it).
  EXPECT_THAT(paths, ElementsAre("logs/train.log", "outputs/big.bin", "outputs/model.json",
                                 "system_logs/amld-shim.log", "user_logs/std_log.txt"));

  std::string model, big, big_tail, train_log;
  ASSERT_TRUE(Download(id, "outputs/model.json", 0, &model).ok());
  EXPECT_EQ(model, testing::ReadFile(options_.data_dir / "runs" / id / "wd/outputs/model.json"));
  EXPECT_EQ(model, "{\"w\": [1, 2, 3]}");
  ASSERT_TRUE(Download(id, "outputs/big.bin", 0, &big).ok());
  EXPECT_TRUE(big == BigBin()) << big.size();
  ASSERT_TRUE(Download(id, "outputs/big.bin", 2000000, &big_tail).ok());
  EXPECT_TRUE(big_tail == BigBin().substr(2000000));
  ASSERT_TRUE(Download(id, "logs/train.log", 0, &train_log).ok());
  EXPECT_EQ(train_log, "log line\n");

  pb::DaemonInfo info = Info();
  EXPECT_EQ(info.counters().at("runs_submitted"), 1);
  EXPECT_GE(info.counters().at("cas_blobs_uploaded"), 4);  // 2 files, 2 folders
  EXPECT_EQ(info.run_counts().size(), 0u);
}

TEST_F(DaemonTest, DownloadRefusesPathsOutOfTheRunAndKeepsAnswering) {
  pb::RunConfig config = Config(Upload(dir_ / "src"));
  config.set_script("train.py");
  (*config.mutable_environment()->mutable_environment_variables())["SEED"] = "1";
  std::string id = MustSubmit(config);
  ASSERT_EQ(WaitEnd(id).status(), pb::RunStatus::COMPLETED);

  struct Case {
    std::string path;
    int64_t offset;
    grpc::StatusCode code;
  };
  for (const Case& c : std::vector<Case>{
           {"../../amld.db", 0, grpc::StatusCode::INVALID_ARGUMENT},
           {"outputs/../../../amld.db", 0, grpc::StatusCode::INVALID_ARGUMENT},
           {"/etc/passwd", 0, grpc::StatusCode::INVALID_ARGUMENT},
           {"outputs/passwd_link", 0, grpc::StatusCode::INVALID_ARGUMENT},
           {"outputs/none.txt", 0, grpc::StatusCode::NOT_FOUND},
           {"outputs/model.json", 1000, grpc::StatusCode::OUT_OF_RANGE},
           {"outputs/model.json", -1, grpc::StatusCode::INVALID_ARGUMENT},
       }) {
    std::string data;
    grpc::Status s = Download(id, c.path, c.offset, &data);
    EXPECT_EQ(s.error_code(), c.code) << c.path << ": " << s.error_message();
    EXPECT_TRUE(data.empty()) << c.path;
    EXPECT_EQ(Info().pid(), ::getpid());  // still answering
  }
  std::string data;
  EXPECT_EQ(Download("nope_1_00000000", "outputs/model.json", 0, &data).error_code(),
            grpc::StatusCode::NOT_FOUND);
  // The same rules hold for logs.
  EXPECT_EQ(Logs(id, 0, false, &data, "../amld.db").error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Logs(id, 0, false, &data, "outputs/passwd_link").error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Logs(id, 100000, false, &data).error_code(), grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_EQ(Logs("nope_1_00000000", 0, false, &data).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(data.empty());
}

TEST_F(DaemonTest, SubmitRefusesBadConfigsWithTheDocumentedCodes) {
  Digest root = Upload(dir_ / "src");
  pb::Run run;

  pb::RunConfig missing_script = Config(root);
  missing_script.set_script("nope.py");
  grpc::Status s = Submit(missing_script, &run);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("nope.py"));

  pb::RunConfig unknown_target = Config(root);
  unknown_target.set_script("train.py");
  unknown_target.set_compute_target("gpu-cluster");
  s = Submit(unknown_target, &run);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(s.error_message(), HasSubstr("compute target \"gpu-cluster\" does not exist"));

  pb::RunConfig distributed = Config(root);
  distributed.set_script("train.py");
  distributed.mutable_distributed()->mutable_mpi()->set_node_count(2);
  distributed.mutable_distributed()->mutable_mpi()->set_process_count_per_node(1);
  s = Submit(distributed, &run);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_THAT(s.error_message(), HasSubstr("distributed run on 2 nodes"));

  pb::RunConfig escaping = Config(root);
  escaping.set_script("../train.py");
  EXPECT_EQ(Submit(escaping, &run).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  // A snapshot whose blobs were never uploaded: the message lists them.
  WriteFile(dir_ / "other/a.py", "a = 1\n");
  auto snapshot = amld::storage::BuildSnapshot(dir_ / "other");
  pb::RunConfig not_uploaded = Config(snapshot->root);
  not_uploaded.set_script("a.py");
  s = Submit(not_uploaded, &run);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr(snapshot->root.ToString()));

  pb::ListRunsRequest list;
  pb::ListRunsResponse listed;
  grpc::ClientContext ctx;
  ASSERT_TRUE(runs_->ListRuns(&ctx, list, &listed).ok());
  EXPECT_EQ(listed.runs_size(), 0);  // nothing was accepted
  list.set_page_size(-1);
  grpc::ClientContext ctx2;
  EXPECT_EQ(runs_->ListRuns(&ctx2, list, &listed).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(DaemonTest, FailingScriptEndsFailedWithItsExitCode) {
  std::string id = MustSubmit(Command("echo about to fail; exit 3"));
  pb::Run end = WaitEnd(id);
  EXPECT_EQ(end.status(), pb::RunStatus::FAILED);
  EXPECT_EQ(end.error(), "exit code 3");
  EXPECT_EQ(end.exit_code(), 3);
  std::string log;
  ASSERT_TRUE(Logs(id, 0, true, &log).ok());
  EXPECT_EQ(log, "about to fail\n");
}

TEST_F(DaemonTest, CancelOfASleepingRunEndsCanceled) {
  std::string id = MustSubmit(Command("echo started; exec sleep 600"));
  std::vector<pb::Run> seen = Wait(id, pb::RunStatus::RUNNING);
  ASSERT_FALSE(seen.empty());
  ASSERT_EQ(seen.back().status(), pb::RunStatus::RUNNING);
  pb::CancelRunRequest cancel;
  cancel.set_run_id(id);
  cancel.set_reason("test");
  pb::Run after;
  grpc::ClientContext ctx;
  ASSERT_TRUE(runs_->CancelRun(&ctx, cancel, &after).ok());
  EXPECT_EQ(after.status(), pb::RunStatus::CANCEL_REQUESTED);
  pb::Run end = WaitEnd(id);
  EXPECT_EQ(end.status(), pb::RunStatus::CANCELED);
  EXPECT_THAT(end.error(), HasSubstr("canceled"));
  // WaitRun on a finished run: its state once, then the end.
  std::vector<pb::Run> again = Wait(id);
  EXPECT_THAT(Statuses(again), ElementsAre(pb::RunStatus::CANCELED));
}

TEST_F(DaemonTest, WaitRunStreamsEveryStatusChangeInOrder) {
  std::string id = MustSubmit(Command("true"));
  std::vector<pb::Run> seen = Wait(id);
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.back().status(), pb::RunStatus::COMPLETED);
  // Whatever it joined at, it saw each later status once, in order.
  std::vector<pb::RunStatus::Value> all = {pb::RunStatus::QUEUED,     pb::RunStatus::PREPARING,
                                           pb::RunStatus::STARTING,   pb::RunStatus::RUNNING,
                                           pb::RunStatus::FINALIZING, pb::RunStatus::COMPLETED};
  std::vector<pb::RunStatus::Value> got = Statuses(seen);
  auto first = std::find(all.begin(), all.end(), got.front());
  ASSERT_NE(first, all.end());
  EXPECT_EQ(got, std::vector<pb::RunStatus::Value>(first, all.end()));
}

TEST_F(DaemonTest, FollowedLogCanBeDroppedAndReopenedWithoutLossOrRepeat) {
  const fs::path flag = dir_ / "flag";
  pb::RunConfig config =
      Command("echo first; while [ ! -e \"$FLAG\" ]; do sleep 0.02; done; echo second; echo third");
  (*config.mutable_environment()->mutable_environment_variables())["FLAG"] = flag.string();
  std::string id = MustSubmit(config);

  // Follow until "first" arrives, then drop the stream mid-run.
  std::string got;
  {
    grpc::ClientContext ctx;
    pb::StreamLogsRequest req;
    req.set_run_id(id);
    req.set_follow(true);
    auto reader = runs_->StreamLogs(&ctx, req);
    pb::LogChunk chunk;
    while (got.find('\n') == std::string::npos && reader->Read(&chunk)) got += chunk.data();
    ctx.TryCancel();
    while (reader->Read(&chunk)) {
    }
    reader->Finish();
  }
  EXPECT_EQ(got, "first\n");
  WriteFile(flag, "");
  ASSERT_TRUE(Logs(id, static_cast<int64_t>(got.size()), true, &got).ok());
  EXPECT_EQ(got, "first\nsecond\nthird\n");
  EXPECT_EQ(WaitEnd(id).status(), pb::RunStatus::COMPLETED);
}

TEST_F(DaemonTest, FollowingAQueuedRunWaitsForItsLog) {
  options_.runs.max_concurrent_runs = 1;
  daemon_->Shutdown();
  StartDaemon();
  const fs::path flag = dir_ / "flag";
  pb::RunConfig blocker = Command("while [ ! -e \"$FLAG\" ]; do sleep 0.02; done");
  (*blocker.mutable_environment()->mutable_environment_variables())["FLAG"] = flag.string();
  std::string first = MustSubmit(blocker);
  std::string second = MustSubmit(Command("echo from the queued run"));
  std::string log;
  std::thread release([&] {
    Wait(first, pb::RunStatus::RUNNING);
    WriteFile(flag, "");
  });
  EXPECT_TRUE(Logs(second, 0, true, &log).ok());
  release.join();
  EXPECT_EQ(log, "from the queued run\n");
}

TEST_F(DaemonTest, CasVerifiesDigestsAndResumesWrites) {
  const std::string good = "good blob", bad = "bad blob";
  pb::BatchUpdateBlobsRequest batch;
  auto* r1 = batch.add_requests();
  amld::storage::ToProto(amld::storage::DigestOf(good), r1->mutable_digest());
  r1->set_data(good);
  auto* r2 = batch.add_requests();
  amld::storage::ToProto(amld::storage::DigestOf("something else"), r2->mutable_digest());
  r2->set_data(bad);
  auto* r3 = batch.add_requests();
  r3->mutable_digest()->set_hash("NOT-HEX");
  pb::BatchUpdateBlobsResponse resp;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(cas_->BatchUpdateBlobs(&ctx, batch, &resp).ok());
  }
  ASSERT_EQ(resp.responses_size(), 3);
  EXPECT_EQ(resp.responses(0).code(), grpc::StatusCode::OK);
  EXPECT_EQ(resp.responses(1).code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(resp.responses(2).code(), grpc::StatusCode::INVALID_ARGUMENT);

  // A large blob, sent half, interrupted, then resumed.
  const std::string large = BigBin();
  const Digest d = amld::storage::DigestOf(large);
  const int64_t half = static_cast<int64_t>(large.size() / 2);
  auto write = [&](int64_t from, int64_t to, bool finish, pb::WriteResponse* out) {
    grpc::ClientContext ctx;
    auto writer = cas_->Write(&ctx, out);
    for (int64_t off = from; off < to; off += 1 << 20) {
      pb::WriteRequest req;
      if (off == from) amld::storage::ToProto(d, req.mutable_digest());
      req.set_write_offset(off);
      req.set_data(large.substr(off, std::min<int64_t>(1 << 20, to - off)));
      req.set_finish_write(finish && off + (1 << 20) >= to);
      if (!writer->Write(req)) break;
    }
    writer->WritesDone();
    return writer->Finish();
  };
  pb::WriteResponse wr;
  ASSERT_TRUE(write(0, half, false, &wr).ok());
  EXPECT_EQ(wr.committed_size(), half);
  pb::QueryWriteStatusRequest q;
  amld::storage::ToProto(d, q.mutable_digest());
  pb::QueryWriteStatusResponse qs;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(cas_->QueryWriteStatus(&ctx, q, &qs).ok());
  }
  EXPECT_EQ(qs.committed_size(), half);
  EXPECT_FALSE(qs.complete());
  EXPECT_EQ(write(half + 1, half + 10, true, &wr).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);  // not the next offset
  ASSERT_TRUE(write(half, static_cast<int64_t>(large.size()), true, &wr).ok());
  EXPECT_EQ(wr.committed_size(), d.size);
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(cas_->QueryWriteStatus(&ctx, q, &qs).ok());
  }
  EXPECT_TRUE(qs.complete());
  pb::FindMissingBlobsRequest find;
  amld::storage::ToProto(d, find.add_blob_digests());
  amld::storage::ToProto(amld::storage::DigestOf("never sent"), find.add_blob_digests());
  pb::FindMissingBlobsResponse missing;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(cas_->FindMissingBlobs(&ctx, find, &missing).ok());
  }
  ASSERT_EQ(missing.missing_blob_digests_size(), 1);
  EXPECT_EQ(missing.missing_blob_digests(0).hash(), amld::storage::DigestOf("never sent").hash);

  pb::DaemonInfo info = Info();
  EXPECT_EQ(info.counters().at("cas_blobs_uploaded"), 2);
  EXPECT_EQ(info.counters().at("cas_bytes_uploaded"),
            static_cast<int64_t>(good.size() + large.size()));
  EXPECT_EQ(info.max_batch_bytes(), 4 << 20);
  EXPECT_EQ(info.max_concurrent_runs(), 2);
  EXPECT_EQ(info.mode(), pb::DaemonInfo::USER);
  EXPECT_EQ(info.data_dir(), options_.data_dir.string());
  EXPECT_EQ(info.socket_path(), options_.socket_path.string());
  EXPECT_THAT(info.executors(), ElementsAre("local", "ssh", "slurm"));
}

TEST_F(DaemonTest, ExperimentsAreCreatedOnSubmitAndListed) {
  std::string id = MustSubmit(Command("true"));
  WaitEnd(id);
  pb::ListExperimentsResponse all;
  grpc::ClientContext ctx;
  ASSERT_TRUE(experiments_->ListExperiments(&ctx, pb::ListExperimentsRequest(), &all).ok());
  ASSERT_EQ(all.experiments_size(), 1);
  EXPECT_EQ(all.experiments(0).name(), "exp");
  EXPECT_EQ(all.experiments(0).run_count(), 1);
  pb::CreateExperimentRequest bad;
  bad.set_name("no spaces");
  pb::Experiment e;
  grpc::ClientContext ctx2;
  EXPECT_EQ(experiments_->CreateExperiment(&ctx2, bad, &e).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  pb::GetExperimentRequest get;
  get.set_name("unknown");
  grpc::ClientContext ctx3;
  EXPECT_EQ(experiments_->GetExperiment(&ctx3, get, &e).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(DaemonTest, ASecondDaemonOnTheSameDataDirIsRefusedNamingThePid) {
  DaemonOptions second = options_;
  second.socket_path = dir_ / "sock2/amld.sock";
  absl::StatusOr<std::unique_ptr<Daemon>> d = Daemon::Start(second);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(d.status().message()),
              HasSubstr(absl::StrCat("another amld (pid ", ::getpid(), ") is already using ",
                                     options_.data_dir.string())));
  EXPECT_EQ(Info().pid(), ::getpid());  // the first one is unharmed
  // Nor may a daemon with another data dir take over a live socket.
  DaemonOptions same_socket = options_;
  same_socket.data_dir = dir_ / "data2";
  d = Daemon::Start(same_socket);
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(std::string(d.status().message()), HasSubstr("another daemon is listening"));
  EXPECT_EQ(Info().pid(), ::getpid());
}

TEST_F(DaemonTest, SocketIsPrivateToItsOwner) {
  struct stat st;
  ASSERT_EQ(::stat(options_.socket_path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  ASSERT_EQ(::stat(options_.socket_path.parent_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  ASSERT_EQ(::stat(options_.data_dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  daemon_->Shutdown();
  EXPECT_FALSE(fs::exists(options_.socket_path));  // removed on clean shutdown
}

TEST_F(DaemonTest, AStaleSocketFromADeadDaemonIsReplaced) {
  daemon_->Shutdown();
  // A socket file nobody listens on, as a killed daemon leaves it.
  {
    amld::base::ScopedFd fd(::socket(AF_UNIX, SOCK_STREAM, 0));
    sockaddr_un addr = {};
    addr.sun_family = AF_UNIX;
    std::strcpy(addr.sun_path, options_.socket_path.c_str());
    ASSERT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  }
  ASSERT_TRUE(fs::exists(options_.socket_path));
  StartDaemon();
  EXPECT_EQ(Info().pid(), ::getpid());
}

// Issue 19: an experiment named like a spare run folder (runs/.spare*) was
// accepted and the spare clean-up then removed its run's folder. Names
// start with a letter or digit, so no run id can start with '.'.
TEST_F(DaemonTest, AnExperimentNamedLikeASpareFolderIsRefused) {
  pb::RunConfig config = Command("true");
  for (const char* name : {".spare-with-x", ".spare-tmp-x", ".spare", "-x", "_x"}) {
    config.set_experiment_name(name);
    pb::Run run;
    grpc::Status s = Submit(config, &run);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << name;
    EXPECT_THAT(s.error_message(), HasSubstr("must start with a letter or digit")) << name;
  }
  config.set_experiment_name("x.spare-with-x");
  std::string id = MustSubmit(config);
  EXPECT_EQ(WaitEnd(id).status(), pb::RunStatus::COMPLETED);
  EXPECT_TRUE(fs::exists(dir_ / "data/runs" / id));
}

TEST_F(DaemonTest, ARestartedDaemonReadoptsARunningRun) {
  const fs::path flag = dir_ / "flag";
  pb::RunConfig config =
      Command("echo before; while [ ! -e \"$FLAG\" ]; do sleep 0.02; done; echo after");
  (*config.mutable_environment()->mutable_environment_variables())["FLAG"] = flag.string();
  std::string id = MustSubmit(config);
  ASSERT_EQ(Wait(id, pb::RunStatus::RUNNING).back().status(), pb::RunStatus::RUNNING);
  daemon_->Shutdown();  // the run goes on under its supervisor
  daemon_.reset();
  StartDaemon();
  WriteFile(flag, "");
  pb::Run end = WaitEnd(id);
  EXPECT_EQ(end.status(), pb::RunStatus::COMPLETED) << end.error();
  std::string log;
  ASSERT_TRUE(Logs(id, 0, true, &log).ok());
  EXPECT_EQ(log, "before\nafter\n");
  // It ran once: one RUNNING in its history.
  int running = 0;
  for (const auto& t : end.history()) running += t.status() == pb::RunStatus::RUNNING;
  EXPECT_EQ(running, 1);
}

TEST_F(DaemonTest, HealthIsServingUntilTheDaemonStopsAndWatchersAreTold) {
  namespace health = grpc::health::v1;
  auto channel = grpc::CreateChannel("unix:" + daemon_->socket_path().string(),
                                     grpc::InsecureChannelCredentials());
  std::unique_ptr<health::Health::Stub> stub = health::Health::NewStub(channel);
  health::HealthCheckRequest whole;
  health::HealthCheckResponse response;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub->Check(&ctx, whole, &response).ok());
    EXPECT_EQ(response.status(), health::HealthCheckResponse::SERVING);
  }
  {
    grpc::ClientContext ctx;
    health::HealthCheckRequest other;
    other.set_service("amld.v1.Runs");
    grpc::Status s = stub->Check(&ctx, other, &response);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
    EXPECT_THAT(s.error_message(), HasSubstr("ask for service \"\""));
  }
  grpc::ClientContext watch_ctx;
  auto watch = stub->Watch(&watch_ctx, whole);
  ASSERT_TRUE(watch->Read(&response));
  EXPECT_EQ(response.status(), health::HealthCheckResponse::SERVING);
  // A follower waiting on a running run must not hold the daemon's stop
  // until the server's deadline: it ends as soon as the daemon stops, with
  // UNAVAILABLE (a client that follows resumes once the daemon is back).
  std::string id = MustSubmit(Command("sleep 30"));
  grpc::ClientContext follow_ctx;
  pb::StreamLogsRequest follow;
  follow.set_run_id(id);
  follow.set_follow(true);
  auto follower = runs_->StreamLogs(&follow_ctx, follow);
  Wait(id, pb::RunStatus::RUNNING);

  daemon_->Shutdown();
  ASSERT_TRUE(watch->Read(&response));
  EXPECT_EQ(response.status(), health::HealthCheckResponse::NOT_SERVING);
  EXPECT_FALSE(watch->Read(&response));
  EXPECT_EQ(watch->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  pb::LogChunk chunk;
  while (follower->Read(&chunk)) {
  }
  grpc::Status followed = follower->Finish();
  EXPECT_EQ(followed.error_code(), grpc::StatusCode::UNAVAILABLE) << followed.error_message();
  EXPECT_THAT(followed.error_message(), HasSubstr("amld is stopping"));
  daemon_.reset();
  StartDaemon();  // the run goes on; stop it so the test leaves nothing behind
  grpc::ClientContext cancel_ctx;
  pb::CancelRunRequest cancel;
  cancel.set_run_id(id);
  pb::Run canceled;
  ASSERT_TRUE(runs_->CancelRun(&cancel_ctx, cancel, &canceled).ok());
  EXPECT_EQ(WaitEnd(id).status(), pb::RunStatus::CANCELED);
}

}  // namespace
}  // namespace amld::daemon
