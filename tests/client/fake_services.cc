#include "tests/client/fake_services.h"

#include "client/follow.h"
#include "storage/digest.h"

namespace amld::client::testing {

using amld::storage::Digest;
using amld::storage::FromProto;

void FakeCas::FailWritesAfter(int chunks, int times) {
  absl::MutexLock lock(&mu_);
  fail_after_chunks_ = chunks;
  fail_times_ = times;
}

FakeCas::Record FakeCas::record() const {
  absl::MutexLock lock(&mu_);
  return record_;
}

grpc::Status FakeCas::FindMissingBlobs(grpc::ServerContext*,
                                       const amld::v1::FindMissingBlobsRequest* req,
                                       amld::v1::FindMissingBlobsResponse* resp) {
  std::vector<Digest> digests;
  for (const auto& d : req->blob_digests()) digests.push_back(FromProto(d));
  for (const Digest& d : store_->FindMissing(digests)) {
    amld::storage::ToProto(d, resp->add_missing_blob_digests());
  }
  absl::MutexLock lock(&mu_);
  ++record_.find_missing_calls;
  return grpc::Status::OK;
}

grpc::Status FakeCas::BatchUpdateBlobs(grpc::ServerContext*,
                                       const amld::v1::BatchUpdateBlobsRequest* req,
                                       amld::v1::BatchUpdateBlobsResponse* resp) {
  const int64_t bytes = static_cast<int64_t>(req->ByteSizeLong());
  {
    absl::MutexLock lock(&mu_);
    record_.batch_request_bytes.push_back(bytes);
    record_.batch_items.push_back(req->requests_size());
  }
  if (bytes > max_batch_bytes_) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "batch over max_batch_bytes");
  }
  for (const auto& item : req->requests()) {
    auto* r = resp->add_responses();
    *r->mutable_digest() = item.digest();
    absl::Status st = store_->PutVerified(FromProto(item.digest()), item.data());
    r->set_code(static_cast<int>(st.code()));
    r->set_message(std::string(st.message()));
  }
  return grpc::Status::OK;
}

grpc::Status FakeCas::Write(grpc::ServerContext*,
                            grpc::ServerReader<amld::v1::WriteRequest>* reader,
                            amld::v1::WriteResponse* resp) {
  amld::v1::WriteRequest req;
  if (!reader->Read(&req)) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "empty");
  const Digest digest = FromProto(req.digest());
  auto upload = store_->BeginUpload(digest);
  if (!upload.ok()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, std::string(upload.status().message()));
  }
  int fail_after = 0;
  {
    absl::MutexLock lock(&mu_);
    record_.write_start_offsets.push_back(req.write_offset());
    if (fail_times_ > 0) {
      --fail_times_;
      fail_after = fail_after_chunks_;
    }
  }
  int chunks = 0;
  do {
    {
      absl::MutexLock lock(&mu_);
      ++record_.write_messages;
    }
    absl::Status st = (*upload)->Append(req.write_offset(), req.data());
    if (!st.ok())
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, std::string(st.message()));
    if (fail_after > 0 && ++chunks == fail_after) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "injected connection drop");
    }
    if (req.finish_write()) {
      st = (*upload)->Commit();
      if (!st.ok()) {
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, std::string(st.message()));
      }
      resp->set_committed_size(digest.size);
      return grpc::Status::OK;
    }
  } while (reader->Read(&req));
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "stream ended without finish_write");
}

grpc::Status FakeCas::QueryWriteStatus(grpc::ServerContext*,
                                       const amld::v1::QueryWriteStatusRequest* req,
                                       amld::v1::QueryWriteStatusResponse* resp) {
  const Digest d = FromProto(req->digest());
  resp->set_complete(store_->Contains(d));
  resp->set_committed_size(store_->UploadedSize(d));
  return grpc::Status::OK;
}

FakeRuns::FakeRuns(std::string log) : log_(std::move(log)) {}

void FakeRuns::SetStatus(amld::v1::RunStatus::Value status) {
  absl::MutexLock lock(&mu_);
  status_ = status;
}
void FakeRuns::SetLogExists(bool exists) {
  absl::MutexLock lock(&mu_);
  log_exists_ = exists;
}
void FakeRuns::AppendLog(const std::string& more) {
  absl::MutexLock lock(&mu_);
  log_ += more;
}
void FakeRuns::DropLogStreamsAfter(int messages, int times) {
  absl::MutexLock lock(&mu_);
  drop_logs_after_ = messages;
  drop_logs_times_ = times;
}
void FakeRuns::DropWaitStreamsAfter(int messages, int times) {
  absl::MutexLock lock(&mu_);
  drop_wait_after_ = messages;
  drop_wait_times_ = times;
}
void FakeRuns::SetChunkBytes(int n) {
  absl::MutexLock lock(&mu_);
  chunk_bytes_ = n;
}
std::vector<int64_t> FakeRuns::log_request_offsets() const {
  absl::MutexLock lock(&mu_);
  return log_offsets_;
}
int FakeRuns::wait_calls() const {
  absl::MutexLock lock(&mu_);
  return wait_calls_;
}

amld::v1::Run FakeRuns::RunLocked() const {
  amld::v1::Run run;
  run.set_id("r1");
  run.set_status(status_);
  return run;
}

grpc::Status FakeRuns::GetRun(grpc::ServerContext*, const amld::v1::GetRunRequest* req,
                              amld::v1::Run* run) {
  if (req->run_id() != "r1") return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such run");
  absl::MutexLock lock(&mu_);
  *run = RunLocked();
  return grpc::Status::OK;
}

grpc::Status FakeRuns::WaitRun(grpc::ServerContext* ctx, const amld::v1::WaitRunRequest* req,
                               grpc::ServerWriter<amld::v1::WaitRunResponse>* writer) {
  if (req->run_id() != "r1") return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such run");
  int drop_after = 0;
  {
    absl::MutexLock lock(&mu_);
    ++wait_calls_;
    if (drop_wait_times_ > 0) {
      --drop_wait_times_;
      drop_after = drop_wait_after_;
    }
  }
  int sent = 0;
  auto last = amld::v1::RunStatus::UNKNOWN;
  while (!ctx->IsCancelled()) {
    amld::v1::WaitRunResponse resp;
    {
      absl::MutexLock lock(&mu_);
      auto changed = [this, last]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return status_ != last; };
      mu_.AwaitWithTimeout(absl::Condition(&changed), absl::Milliseconds(20));
      if (status_ == last) continue;
      last = status_;
      *resp.mutable_run() = RunLocked();
    }
    if (drop_after > 0 && sent == drop_after) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "injected drop");
    }
    if (!writer->Write(resp)) return grpc::Status::CANCELLED;
    ++sent;
    if (amld::client::IsTerminal(last)) return grpc::Status::OK;
  }
  return grpc::Status::CANCELLED;
}

grpc::Status FakeRuns::StreamLogs(grpc::ServerContext* ctx, const amld::v1::StreamLogsRequest* req,
                                  grpc::ServerWriter<amld::v1::LogChunk>* writer) {
  if (req->run_id() != "r1") return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such run");
  int drop_after = 0;
  {
    absl::MutexLock lock(&mu_);
    log_offsets_.push_back(req->offset());
    if (!log_exists_) return grpc::Status(grpc::StatusCode::NOT_FOUND, "no log yet");
    if (drop_logs_times_ > 0) {
      --drop_logs_times_;
      drop_after = drop_logs_after_;
    }
  }
  int64_t offset = req->offset();
  int sent = 0;
  while (!ctx->IsCancelled()) {
    amld::v1::LogChunk chunk;
    bool done = false;
    {
      absl::MutexLock lock(&mu_);
      const int64_t size = static_cast<int64_t>(log_.size());
      if (offset < size) {
        chunk.set_offset(offset);
        chunk.set_data(log_.substr(offset, chunk_bytes_));
      } else if (!req->follow() || amld::client::IsTerminal(status_)) {
        done = true;
      } else {
        auto grew = [this, size]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return static_cast<int64_t>(log_.size()) > size || amld::client::IsTerminal(status_);
        };
        mu_.AwaitWithTimeout(absl::Condition(&grew), absl::Milliseconds(20));
        continue;
      }
    }
    if (done) return grpc::Status::OK;
    if (drop_after > 0 && sent == drop_after) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "injected drop");
    }
    if (!writer->Write(chunk)) return grpc::Status::CANCELLED;
    offset += static_cast<int64_t>(chunk.data().size());
    ++sent;
  }
  return grpc::Status::CANCELLED;
}

InProcessServer::InProcessServer(std::vector<grpc::Service*> services) {
  grpc::ServerBuilder builder;
  builder.SetMaxReceiveMessageSize(64 << 20);
  for (auto* s : services) builder.RegisterService(s);
  server_ = builder.BuildAndStart();
  channel_ = server_->InProcessChannel(grpc::ChannelArguments());
}

InProcessServer::~InProcessServer() { server_->Shutdown(); }

}  // namespace amld::client::testing
