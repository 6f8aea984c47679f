// In-process fakes of the daemon's Cas and Runs services for client unit
// tests. FakeCas stores into a real ContentStore and can fail a Write after
// a number of chunks (as a dropped connection would). FakeRuns serves a log
// and a scripted sequence of run states, and can drop its streams after a
// number of messages, so the follow loops' reconnects are exercised.
//
// Thread-safety: the fakes are thread-safe; tests change their settings
// through the setters (under the fake's mutex).
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "amld/v1/cas.grpc.pb.h"
#include "amld/v1/runs.grpc.pb.h"
#include "storage/cas.h"

namespace amld::client::testing {

class FakeCas final : public amld::v1::Cas::Service {
 public:
  FakeCas(amld::storage::ContentStore* store, int64_t max_batch_bytes)
      : store_(store), max_batch_bytes_(max_batch_bytes) {}

  // The next `times` Write calls end with UNAVAILABLE after `chunks`
  // messages (whose data the store keeps).
  void FailWritesAfter(int chunks, int times);

  struct Record {
    int find_missing_calls = 0;
    std::vector<int64_t> batch_request_bytes;  // ByteSizeLong of each batch request
    std::vector<int> batch_items;
    std::vector<int64_t> write_start_offsets;  // first offset of each Write call
    int write_messages = 0;
  };
  Record record() const;

  grpc::Status FindMissingBlobs(grpc::ServerContext*, const amld::v1::FindMissingBlobsRequest*,
                                amld::v1::FindMissingBlobsResponse*) override;
  grpc::Status BatchUpdateBlobs(grpc::ServerContext*, const amld::v1::BatchUpdateBlobsRequest*,
                                amld::v1::BatchUpdateBlobsResponse*) override;
  grpc::Status Write(grpc::ServerContext*, grpc::ServerReader<amld::v1::WriteRequest>*,
                     amld::v1::WriteResponse*) override;
  grpc::Status QueryWriteStatus(grpc::ServerContext*, const amld::v1::QueryWriteStatusRequest*,
                                amld::v1::QueryWriteStatusResponse*) override;

 private:
  amld::storage::ContentStore* store_;
  const int64_t max_batch_bytes_;
  mutable absl::Mutex mu_;
  Record record_ ABSL_GUARDED_BY(mu_);
  int fail_after_chunks_ ABSL_GUARDED_BY(mu_) = 0;
  int fail_times_ ABSL_GUARDED_BY(mu_) = 0;
};

class FakeRuns final : public amld::v1::Runs::Service {
 public:
  // The run "r1" with `log` as its std_log.txt (absent until SetLogExists).
  explicit FakeRuns(std::string log);

  void SetStatus(amld::v1::RunStatus::Value status);
  void SetLogExists(bool exists);
  void AppendLog(const std::string& more);
  // The next `times` StreamLogs/WaitRun streams end with UNAVAILABLE after
  // `messages` messages.
  void DropLogStreamsAfter(int messages, int times);
  void DropWaitStreamsAfter(int messages, int times);
  // Chunk size of StreamLogs.
  void SetChunkBytes(int n);

  std::vector<int64_t> log_request_offsets() const;
  int wait_calls() const;

  grpc::Status GetRun(grpc::ServerContext*, const amld::v1::GetRunRequest*,
                      amld::v1::Run*) override;
  grpc::Status WaitRun(grpc::ServerContext*, const amld::v1::WaitRunRequest*,
                       grpc::ServerWriter<amld::v1::WaitRunResponse>*) override;
  grpc::Status StreamLogs(grpc::ServerContext*, const amld::v1::StreamLogsRequest*,
                          grpc::ServerWriter<amld::v1::LogChunk>*) override;

 private:
  amld::v1::Run RunLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  std::string log_ ABSL_GUARDED_BY(mu_);
  bool log_exists_ ABSL_GUARDED_BY(mu_) = false;
  amld::v1::RunStatus::Value status_ ABSL_GUARDED_BY(mu_) = amld::v1::RunStatus::QUEUED;
  int chunk_bytes_ ABSL_GUARDED_BY(mu_) = 4;
  int drop_logs_after_ ABSL_GUARDED_BY(mu_) = 0;
  int drop_logs_times_ ABSL_GUARDED_BY(mu_) = 0;
  int drop_wait_after_ ABSL_GUARDED_BY(mu_) = 0;
  int drop_wait_times_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<int64_t> log_offsets_ ABSL_GUARDED_BY(mu_);
  int wait_calls_ ABSL_GUARDED_BY(mu_) = 0;
};

// A server with the given services, reachable in-process.
class InProcessServer {
 public:
  explicit InProcessServer(std::vector<grpc::Service*> services);
  ~InProcessServer();
  std::shared_ptr<grpc::Channel> channel() const { return channel_; }

 private:
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

}  // namespace amld::client::testing
