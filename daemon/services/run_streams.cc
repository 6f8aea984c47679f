// WaitRun and StreamLogs on gRPC's sync API (run_streams.h says why).
#include "daemon/services/run_streams.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <deque>
#include <memory>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "amld/v1/runs.grpc.pb.h"
#include "base/file_names.h"
#include "base/status_macros.h"
#include "daemon/executors/run_folder.h"
#include "daemon/services/grpc_status.h"
#include "daemon/services/sync_stream.h"

namespace amld::daemon {
namespace {

using amld::base::ScopedFd;
using amld::storage::IsTerminal;
using amld::v1::Run;
namespace pb = amld::v1;

constexpr char kDefaultLog[] = "user_logs/std_log.txt";
// user_logs/std_log_process_<rank>.txt (daemon/executors/launch/).
constexpr char kRankLogPrefix[] = "user_logs/std_log_process_";

// ---------------------------------------------------------------------------
// WaitRun: the current state, then every change, until terminal.

class RunWaiter {
 public:
  RunWaiter(RunManager* runs, std::string run_id, const std::atomic<bool>* stopping)
      : runs_(runs), run_id_(std::move(run_id)), stopping_(stopping) {}
  RunWaiter(const RunWaiter&) = delete;
  RunWaiter& operator=(const RunWaiter&) = delete;
  ~RunWaiter() {
    if (listener_id_ != 0) runs_->Unsubscribe(run_id_, listener_id_);
  }

  grpc::Status Serve(const std::function<void(Run*)>& redact, grpc::ServerContext* context,
                     grpc::ServerWriter<pb::WaitRunResponse>* writer) {
    absl::StatusOr<RunManager::Subscription> sub =
        runs_->Subscribe(run_id_, [this](const Run& run) {
          absl::MutexLock lock(&mu_);
          pending_.push_back(run);
        });
    if (!sub.ok()) return ToGrpcStatus(sub.status());
    listener_id_ = sub->listener_id;
    {
      absl::MutexLock lock(&mu_);
      // Changes that raced with Subscribe's return were queued behind it.
      pending_.push_front(std::move(sub->run));
    }
    pb::WaitRunResponse response;
    bool sent_terminal = false;
    while (true) {
      {
        absl::MutexLock lock(&mu_);
        if (sent_terminal && pending_.empty()) return grpc::Status::OK;
        grpc::Status waited =
            AwaitForStream(mu_, absl::Condition(this, &RunWaiter::HasPending), context, stopping_);
        if (!waited.ok()) return waited;
        *response.mutable_run() = std::move(pending_.front());
        pending_.pop_front();
      }
      redact(response.mutable_run());
      sent_terminal = IsTerminal(response.run().status());
      if (!writer->Write(response)) return ClientWentAway();
    }
  }

 private:
  bool HasPending() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !pending_.empty(); }

  RunManager* const runs_;
  const std::string run_id_;
  const std::atomic<bool>* const stopping_;
  uint64_t listener_id_ = 0;
  absl::Mutex mu_;
  std::deque<Run> pending_ ABSL_GUARDED_BY(mu_);
};

// ---------------------------------------------------------------------------
// StreamLogs: bytes of a run's log from an offset; with follow, woken by
// inotify on the open file and by the run's status changes, never by a timer.
//
// It finishes at the end of the file once the run was seen terminal *before*
// that read, so every byte written by the run is sent.

class LogStreamer {
 public:
  LogStreamer(const ServiceDeps& deps, const pb::StreamLogsRequest& request)
      : deps_(deps),
        run_id_(request.run_id()),
        path_(request.path().empty() ? kDefaultLog : request.path()),
        follow_(request.follow()),
        offset_(request.offset()) {}
  LogStreamer(const LogStreamer&) = delete;
  LogStreamer& operator=(const LogStreamer&) = delete;
  ~LogStreamer() {
    if (listener_id_ != 0) deps_.runs->Unsubscribe(run_id_, listener_id_);
    if (watch_id_ != 0) deps_.watcher->Unwatch(watch_id_);  // before file_ closes
  }

  grpc::Status Serve(grpc::ServerContext* context, grpc::ServerWriter<pb::LogChunk>* writer) {
    absl::Status started = Begin();
    if (!started.ok()) return ToGrpcStatus(started);
    pb::LogChunk chunk;
    while (true) {
      bool was_terminal;
      {
        absl::MutexLock lock(&mu_);
        again_ = false;
        was_terminal = terminal_;
      }
      chunk.clear_data();
      if (!file_.valid() && blob_ == nullptr) {
        // The default log did not exist yet (the run was queued). Tried even
        // when the run is terminal: it may have appeared and filled since.
        absl::Status opened = OpenSource();
        if (!opened.ok() && opened.code() != absl::StatusCode::kNotFound) {
          return ToGrpcStatus(opened);
        }
      }
      if (file_.valid() || blob_ != nullptr) {
        absl::Status read = ReadChunk(&chunk);
        if (!read.ok()) return ToGrpcStatus(read);
      }
      if (!chunk.data().empty()) {
        offset_ += static_cast<int64_t>(chunk.data().size());
        if (!writer->Write(chunk)) return ClientWentAway();
        continue;  // more may follow right away
      }
      if (!follow_ || was_terminal || blob_ != nullptr) return grpc::Status::OK;
      absl::MutexLock lock(&mu_);
      // Idle until the file or the run changes (both set again_).
      grpc::Status waited = AwaitForStream(mu_, absl::Condition(&again_), context, deps_.stopping);
      if (!waited.ok()) return waited;
    }
  }

 private:
  absl::Status Begin() {
    AMLD_RETURN_IF_ERROR(CheckStreamOffset(offset_));
    AMLD_RETURN_IF_ERROR(RunFileLocation(path_).status());
    AMLD_ASSIGN_OR_RETURN(
        RunManager::Subscription sub,
        deps_.runs->Subscribe(run_id_, [this](const Run& run) { OnRunChanged(run); }));
    listener_id_ = sub.listener_id;
    {
      absl::MutexLock lock(&mu_);
      terminal_ = terminal_ || IsTerminal(sub.run.status());
    }
    absl::Status opened = OpenSource();
    // Every run has this log, empty until it is prepared (a queued run, or
    // one that failed before it started), and a distributed run one per
    // rank, made before it starts. With follow on a live run, each status
    // change retries the open.
    if (opened.code() == absl::StatusCode::kNotFound &&
        (path_ == kDefaultLog || (absl::StartsWith(path_, kRankLogPrefix) && !IsTerminalNow()))) {
      if (offset_ > 0 && IsTerminalNow()) {
        return absl::OutOfRangeError(
            absl::StrCat("offset ", offset_, " is past the end of ", path_, " (0 bytes)"));
      }
      return absl::OkStatus();
    }
    return opened;
  }

  bool IsTerminalNow() {
    absl::MutexLock lock(&mu_);
    return terminal_;
  }

  // The file in the run's folder, or — for a finished run whose folder is
  // gone — the stored artifact.
  absl::Status OpenSource() {
    absl::StatusOr<ScopedFd> fd = OpenRunFile(deps_.runs->PathsFor(run_id_), path_);
    if (fd.ok()) {
      struct stat st;
      if (::fstat(fd->get(), &st) == 0 && offset_ > st.st_size && IsTerminalNow()) {
        return absl::OutOfRangeError(absl::StrCat("offset ", offset_, " is past the end of ", path_,
                                                  " (", st.st_size, " bytes)"));
      }
      file_ = std::move(*fd);
      if (follow_ && !IsTerminalNow()) {
        AMLD_ASSIGN_OR_RETURN(watch_id_, deps_.watcher->Watch(file_.get(), [this] { Wake(); }));
      }
      return absl::OkStatus();
    }
    if (fd.status().code() != absl::StatusCode::kNotFound) return fd.status();
    absl::StatusOr<amld::storage::Artifact> artifact = deps_.store->GetArtifact(run_id_, path_);
    if (!artifact.ok()) {
      return absl::NotFoundError(absl::StrCat("run ", run_id_, " has no log ", path_));
    }
    AMLD_ASSIGN_OR_RETURN(blob_, deps_.cas->OpenBlob(artifact->digest));
    if (offset_ > blob_->size()) {
      return absl::OutOfRangeError(absl::StrCat("offset ", offset_, " is past the end of ", path_,
                                                " (", blob_->size(), " bytes)"));
    }
    return blob_->Seek(offset_);
  }

  // The run manager's listener and the file watcher's callback: both only
  // mark that something changed; the serving thread reads.
  void OnRunChanged(const Run& run) {
    absl::MutexLock lock(&mu_);
    if (IsTerminal(run.status())) terminal_ = true;
    again_ = true;
  }

  void Wake() {
    absl::MutexLock lock(&mu_);
    again_ = true;
  }

  // Reads the next chunk (empty at the end of the file).
  absl::Status ReadChunk(pb::LogChunk* chunk) {
    std::string* data = chunk->mutable_data();
    data->resize(kStreamChunkBytes);
    size_t got = 0;
    if (blob_ != nullptr) {
      AMLD_ASSIGN_OR_RETURN(got, blob_->Read(data->data(), data->size()));
    } else {
      ssize_t n;
      do {
        n = ::pread(file_.get(), data->data(), data->size(), offset_);
      } while (n < 0 && errno == EINTR);
      if (n < 0) return amld::base::ErrnoStatus(errno, "read", path_);
      got = static_cast<size_t>(n);
    }
    data->resize(got);
    chunk->set_offset(offset_);
    return absl::OkStatus();
  }

  const ServiceDeps& deps_;
  const std::string run_id_;
  const std::string path_;
  const bool follow_;
  // Owned by the serving thread.
  int64_t offset_;
  ScopedFd file_;
  std::unique_ptr<amld::storage::BlobReader> blob_;
  uint64_t listener_id_ = 0;
  uint64_t watch_id_ = 0;

  absl::Mutex mu_;
  bool again_ ABSL_GUARDED_BY(mu_) = false;
  bool terminal_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

absl::Status CheckStreamOffset(int64_t offset) {
  if (offset < 0) {
    return absl::InvalidArgumentError(absl::StrCat("offset must be >= 0, got ", offset));
  }
  return absl::OkStatus();
}

grpc::Status ServeWaitRun(const ServiceDeps& deps, const std::string& run_id,
                          const std::function<void(Run*)>& redact, grpc::ServerContext* context,
                          grpc::ServerWriter<pb::WaitRunResponse>* writer) {
  RunWaiter waiter(deps.runs, run_id, deps.stopping);
  return waiter.Serve(redact, context, writer);
}

grpc::Status ServeLogStream(const ServiceDeps& deps, const pb::StreamLogsRequest& request,
                            grpc::ServerContext* context, grpc::ServerWriter<pb::LogChunk>* writer) {
  LogStreamer streamer(deps, request);
  return streamer.Serve(context, writer);
}

}  // namespace amld::daemon
