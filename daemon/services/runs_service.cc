// Runs service: submit, read, watch, cancel runs and read their files.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <deque>
#include <functional>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "amld/v1/runs.grpc.pb.h"
#include "daemon/services/blob_stream.h"
#include "daemon/services/content_proof.h"
#include "daemon/services/grpc_status.h"
#include "daemon/services/run_ids.h"
#include "daemon/executors/run_folder.h"
#include "daemon/services/services.h"
#include "daemon/runs/submit_validation.h"
#include "daemon/sweeps/sweep_controller.h"
#include "base/file_names.h"
#include "base/status_macros.h"

namespace amld::daemon {
namespace {

using amld::storage::IsTerminal;
using amld::base::ScopedFd;
using amld::v1::Run;
namespace pb = amld::v1;

constexpr char kDefaultLog[] = "user_logs/std_log.txt";
// user_logs/std_log_process_<rank>.txt (daemon/executors/launch/).
constexpr char kRankLogPrefix[] = "user_logs/std_log_process_";

absl::Status CheckOffset(int64_t offset) {
  if (offset < 0) {
    return absl::InvalidArgumentError(absl::StrCat("offset must be >= 0, got ", offset));
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// WaitRun: the current state, then every change, until terminal.

class RunWaiter final : public grpc::ServerWriteReactor<pb::WaitRunResponse> {
 public:
  // `redact` removes what the caller may not see (AccessPolicy).
  RunWaiter(RunManager* runs, const std::string& run_id, std::function<void(Run*)> redact)
      : runs_(runs), run_id_(run_id), redact_(std::move(redact)) {
    absl::StatusOr<RunManager::Subscription> sub =
        runs_->Subscribe(run_id_, [this](const Run& run) { OnChange(run); });
    absl::MutexLock lock(&mu_);
    if (!sub.ok()) {
      FinishLocked(ToGrpcStatus(sub.status()));
      return;
    }
    listener_id_ = sub->listener_id;
    // Changes that raced with the constructor were queued behind this one.
    pending_.push_front(std::move(sub->run));
    started_ = true;
    WriteNextLocked();
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) return FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "client went away"));
    WriteNextLocked();
  }

  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "WaitRun canceled"));
  }

  void OnDone() override {
    runs_->Unsubscribe(run_id_, listener_id_);
    delete this;
  }

 private:
  void OnChange(const Run& run) {
    absl::MutexLock lock(&mu_);
    pending_.push_back(run);
    WriteNextLocked();
  }

  void WriteNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!started_ || writing_ || done_) return;
    if (pending_.empty()) {
      if (sent_terminal_) FinishLocked(grpc::Status::OK);
      return;
    }
    *current_.mutable_run() = std::move(pending_.front());
    pending_.pop_front();
    redact_(current_.mutable_run());
    sent_terminal_ = IsTerminal(current_.run().status());
    writing_ = true;
    StartWrite(&current_);
  }

  // StartWrite/Finish never run this reactor's callbacks inline (gRPC
  // schedules them), so they are safe under mu_.
  void FinishLocked(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (done_) return;
    done_ = true;
    Finish(status);
  }

  RunManager* const runs_;
  const std::string run_id_;
  const std::function<void(Run*)> redact_;
  uint64_t listener_id_ = 0;
  absl::Mutex mu_;
  std::deque<Run> pending_ ABSL_GUARDED_BY(mu_);
  pb::WaitRunResponse current_ ABSL_GUARDED_BY(mu_);
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool sent_terminal_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
};

// ---------------------------------------------------------------------------
// StreamLogs: bytes of a run's log from an offset; with follow, woken by
// inotify on the open file and by the run's status changes, never by a timer.
//
// One reader at a time: whoever finds the streamer idle claims it (busy_),
// reads outside the lock, and either starts a write (busy_ until
// OnWriteDone) or, at the end of the file, goes idle unless something
// happened meanwhile (again_). It finishes at the end of the file once the
// run was seen terminal *before* that read, so every byte written by the
// run is sent.

class LogStreamer final : public grpc::ServerWriteReactor<pb::LogChunk> {
 public:
  LogStreamer(const ServiceDeps& deps, const pb::StreamLogsRequest& request)
      : deps_(deps),
        run_id_(request.run_id()),
        path_(request.path().empty() ? kDefaultLog : request.path()),
        follow_(request.follow()),
        offset_(request.offset()) {
    absl::Status started = Begin();
    {
      absl::MutexLock lock(&mu_);
      if (!started.ok()) {
        FinishLocked(ToGrpcStatus(started));
        return;
      }
      started_ = true;
      again_ = true;
    }
    Pump();
  }

  void OnWriteDone(bool ok) override {
    {
      absl::MutexLock lock(&mu_);
      busy_ = false;
      if (!ok) return FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "client went away"));
    }
    Pump();
  }

  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "StreamLogs canceled"));
  }

  void OnDone() override {
    // Unsubscribe first: it waits out a status-change Pump that may still be
    // opening the log (and creating the watch); then no callback is left.
    deps_.runs->Unsubscribe(run_id_, listener_id_);
    if (watch_id_ != 0) deps_.watcher->Unwatch(watch_id_);
    delete this;
  }

 private:
  absl::Status Begin() {
    AMLD_RETURN_IF_ERROR(CheckOffset(offset_));
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

  void OnRunChanged(const Run& run) {
    {
      absl::MutexLock lock(&mu_);
      if (IsTerminal(run.status())) terminal_ = true;
    }
    Wake();
  }

  void Wake() {
    {
      absl::MutexLock lock(&mu_);
      again_ = true;
    }
    Pump();
  }

  // Reads the next chunk into chunk_ (empty at the end of the file).
  absl::Status ReadChunk() {
    std::string* data = chunk_.mutable_data();
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
    chunk_.set_offset(offset_);
    return absl::OkStatus();
  }

  void Pump() {
    {
      absl::MutexLock lock(&mu_);
      if (!started_ || busy_ || done_ || !again_) return;
      busy_ = true;
    }
    while (true) {
      bool was_terminal;
      {
        absl::MutexLock lock(&mu_);
        again_ = false;
        was_terminal = terminal_;
      }
      chunk_.clear_data();
      if (!file_.valid() && blob_ == nullptr) {
        // The default log did not exist yet (the run was queued). Tried even
        // when the run is terminal: it may have appeared and filled since.
        absl::Status opened = OpenSource();
        if (!opened.ok() && opened.code() != absl::StatusCode::kNotFound) {
          absl::MutexLock lock(&mu_);
          return FinishLocked(ToGrpcStatus(opened));
        }
      }
      absl::Status read = (file_.valid() || blob_ != nullptr) ? ReadChunk() : absl::OkStatus();
      absl::MutexLock lock(&mu_);
      if (done_) return;
      if (!read.ok()) return FinishLocked(ToGrpcStatus(read));
      if (!chunk_.data().empty()) {
        offset_ += static_cast<int64_t>(chunk_.data().size());
        again_ = true;               // more may follow right away
        return StartWrite(&chunk_);  // busy_ until OnWriteDone
      }
      if (!follow_ || was_terminal || blob_ != nullptr) return FinishLocked(grpc::Status::OK);
      if (!again_ && terminal_ == was_terminal) {
        busy_ = false;
        return;  // idle until the file or the run changes
      }
    }
  }

  void FinishLocked(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (done_) return;
    done_ = true;
    Finish(status);
  }

  const ServiceDeps& deps_;
  const std::string run_id_;
  const std::string path_;
  const bool follow_;
  // Owned by whoever holds busy_ (or the constructor).
  int64_t offset_;
  ScopedFd file_;
  std::unique_ptr<amld::storage::BlobReader> blob_;
  pb::LogChunk chunk_;
  uint64_t listener_id_ = 0;
  uint64_t watch_id_ = 0;

  absl::Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool busy_ ABSL_GUARDED_BY(mu_) = false;
  bool again_ ABSL_GUARDED_BY(mu_) = false;
  bool terminal_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
};

// A stream that ends at once with `status` (a run id that resolves to no run).
template <typename T>
class FailedStream final : public grpc::ServerWriteReactor<T> {
 public:
  explicit FailedStream(const absl::Status& status) { this->Finish(ToGrpcStatus(status)); }
  void OnDone() override { delete this; }
};

// ---------------------------------------------------------------------------

using RunsBase = pb::Runs::WithCallbackMethod_WaitRun<
    pb::Runs::WithCallbackMethod_StreamLogs<pb::Runs::Service>>;

class RunsService final : public RunsBase {
 public:
  explicit RunsService(const ServiceDeps& deps) : deps_(deps) {}

  grpc::Status SubmitRun(grpc::ServerContext* context, const pb::SubmitRunRequest* request,
                         pb::SubmitRunResponse* response) override {
    const uid_t uid = CallerUid(context);
    if (request->config().has_snapshot_root()) {
      // System mode: only content the caller sent (content_proof.h).
      absl::Status proved = CheckSnapshotProof(
          deps_, uid, amld::storage::FromProto(request->config().snapshot_root()));
      if (!proved.ok()) return ToGrpcStatus(proved);
    }
    absl::StatusOr<Run> run = absl::UnimplementedError("this daemon runs no sweeps");
    if (!request->parent_run_id().empty() && !request->config().interactive()) {
      run = absl::InvalidArgumentError(
          "parent_run_id is for interactive runs (child_run); a sweep makes its own children");
    } else if (!request->config().has_sweep()) {
      RunManager::SubmitOptions options;
      if (!request->parent_run_id().empty()) {
        absl::StatusOr<std::string> parent = Resolve(context, request->parent_run_id());
        if (!parent.ok()) return ToGrpcStatus(parent.status());
        options.parent_run_id = *parent;
      }
      run = deps_.runs->Submit(request->config(), uid, options);
    } else if (deps_.sweeps != nullptr) {
      run = deps_.sweeps->Submit(request->config(), uid);
    }
    if (!run.ok()) return ToGrpcStatus(run.status());
    *response->mutable_run() = std::move(*run);
    return grpc::Status::OK;
  }

  grpc::Status GetRun(grpc::ServerContext* context, const pb::GetRunRequest* request,
                      Run* response) override {
    absl::StatusOr<std::string> id =
        Resolve(context, request->run_id(), request->experiment_name());
    if (!id.ok()) return ToGrpcStatus(id.status());
    absl::StatusOr<Run> run = deps_.store->GetRun(*id);
    if (!run.ok()) return ToGrpcStatus(run.status());
    const uid_t caller = CallerUid(context);
    deps_.access.RedactForCaller(caller, deps_.access.IsAdmin(caller), &*run);
    *response = std::move(*run);
    return grpc::Status::OK;
  }

  grpc::Status ListRuns(grpc::ServerContext* context, const pb::ListRunsRequest* request,
                        pb::ListRunsResponse* response) override {
    if (request->page_size() < 0) {
      return ToGrpcStatus(absl::InvalidArgumentError(
          absl::StrCat("page_size must be >= 0, got ", request->page_size())));
    }
    amld::storage::RunFilter filter;
    filter.experiment_name = request->experiment_name();
    for (int s : request->statuses())
      filter.statuses.push_back(static_cast<amld::storage::RunStatus>(s));
    if (request->has_submitter_uid()) filter.submitter_uid = request->submitter_uid();
    filter.parent_run_id = request->parent_run_id();
    filter.page_size = request->page_size() == 0 ? 50 : std::min(request->page_size(), 1000);
    filter.page_token = request->page_token();
    absl::StatusOr<amld::storage::RunPage> page = deps_.store->ListRuns(filter);
    if (!page.ok()) return ToGrpcStatus(page.status());
    const uid_t caller = CallerUid(context);
    const bool admin = deps_.access.IsAdmin(caller);
    for (Run& run : page->runs) {
      deps_.access.RedactForCaller(caller, admin, &run);
      *response->add_runs() = std::move(run);
    }
    response->set_next_page_token(page->next_page_token);
    return grpc::Status::OK;
  }

  grpc::ServerWriteReactor<pb::WaitRunResponse>* WaitRun(
      grpc::CallbackServerContext* context, const pb::WaitRunRequest* request) override {
    absl::StatusOr<std::string> id = Resolve(context, request->run_id());
    if (!id.ok()) return new FailedStream<pb::WaitRunResponse>(id.status());
    const uid_t caller = CallerUid(context);
    const bool admin = deps_.access.IsAdmin(caller);
    return new RunWaiter(deps_.runs, *id, [access = deps_.access, caller, admin](Run* run) {
      access.RedactForCaller(caller, admin, run);
    });
  }

  grpc::Status CancelRun(grpc::ServerContext* context, const pb::CancelRunRequest* request,
                         Run* response) override {
    absl::StatusOr<std::string> id = ResolveOwned(context, request->run_id(), "cancel");
    if (!id.ok()) return ToGrpcStatus(id.status());
    absl::StatusOr<Run> run = deps_.runs->Cancel(*id, request->reason());
    if (!run.ok()) return ToGrpcStatus(run.status());
    *response = std::move(*run);
    return grpc::Status::OK;
  }

  grpc::Status DeleteRun(grpc::ServerContext* context, const pb::DeleteRunRequest* request,
                         pb::DeleteRunResponse* response) override {
    absl::StatusOr<std::string> id = Resolve(context, request->run_id());
    if (!id.ok()) return ToGrpcStatus(id.status());
    absl::StatusOr<std::vector<std::string>> deleted = deps_.runs->Delete(*id, CallerUid(context));
    if (!deleted.ok()) return ToGrpcStatus(deleted.status());
    for (std::string& d : *deleted) response->add_deleted_run_ids(std::move(d));
    return grpc::Status::OK;
  }

  grpc::ServerWriteReactor<pb::LogChunk>* StreamLogs(
      grpc::CallbackServerContext* context, const pb::StreamLogsRequest* request) override {
    pb::StreamLogsRequest resolved = *request;
    absl::StatusOr<std::string> id = ResolveOwned(context, request->run_id(), "read the logs of");
    if (!id.ok()) return new FailedStream<pb::LogChunk>(id.status());
    resolved.set_run_id(*id);
    return new LogStreamer(deps_, resolved);
  }

  grpc::Status ListFiles(grpc::ServerContext* context, const pb::ListFilesRequest* request,
                         pb::ListFilesResponse* response) override {
    pb::ListFilesRequest resolved = *request;
    absl::StatusOr<std::string> id = ResolveOwned(context, request->run_id(), "list the files of");
    if (!id.ok()) return ToGrpcStatus(id.status());
    resolved.set_run_id(*id);
    absl::Status s = ListFilesImpl(resolved, response);
    return ToGrpcStatus(s);
  }

  grpc::Status DownloadFile(grpc::ServerContext* context, const pb::DownloadFileRequest* request,
                            grpc::ServerWriter<pb::FileChunk>* writer) override {
    pb::DownloadFileRequest resolved = *request;
    absl::StatusOr<std::string> id = ResolveOwned(context, request->run_id(), "download from");
    if (!id.ok()) return ToGrpcStatus(id.status());
    resolved.set_run_id(*id);
    return ToGrpcStatus(DownloadFileImpl(resolved, writer));
  }

  grpc::Status UpdateRun(grpc::ServerContext* context, const pb::UpdateRunRequest* request,
                         Run* response) override {
    absl::StatusOr<std::string> id = Resolve(context, request->run_id());
    if (!id.ok()) return ToGrpcStatus(id.status());
    absl::StatusOr<Run> run = ApplyRunUpdate(deps_, *id, *request);
    if (!run.ok()) return ToGrpcStatus(run.status());
    *response = std::move(*run);
    return grpc::Status::OK;
  }

  grpc::Status GetMetrics(grpc::ServerContext* context, const pb::GetMetricsRequest* request,
                          pb::GetMetricsResponse* response) override {
    absl::StatusOr<std::string> id = ResolveOwned(context, request->run_id(), "read the metrics of");
    if (!id.ok()) return ToGrpcStatus(id.status());
    absl::StatusOr<Run> run = deps_.store->GetRun(*id);
    if (!run.ok()) return ToGrpcStatus(run.status());
    std::vector<std::string> names(request->names().begin(), request->names().end());
    absl::StatusOr<std::vector<pb::Metric>> metrics = deps_.store->GetMetrics(run->id(), names);
    if (!metrics.ok()) return ToGrpcStatus(metrics.status());
    for (pb::Metric& m : *metrics) *response->add_metrics() = std::move(m);
    return grpc::Status::OK;
  }

 private:
  uid_t CallerUid(const grpc::ServerContextBase* context) const {
    return amld::daemon::CallerUid(deps_, *context);
  }

  // Resolve, then PERMISSION_DENIED unless the caller may `action` the run
  // (its submitter or an admin in system mode; access.h).
  absl::StatusOr<std::string> ResolveOwned(const grpc::ServerContextBase* context,
                                           const std::string& typed, std::string_view action) {
    AMLD_ASSIGN_OR_RETURN(std::string id, Resolve(context, typed));
    if (!deps_.access.system_mode()) return id;
    AMLD_ASSIGN_OR_RETURN(Run run, deps_.store->GetRun(id));
    AMLD_RETURN_IF_ERROR(deps_.access.CheckRunOwner(CallerUid(context), run, action));
    return id;
  }

  // The full id of the run a request names, however it was typed (run_ids.h).
  absl::StatusOr<std::string> Resolve(const grpc::ServerContextBase* context,
                                      const std::string& typed,
                                      const std::string& experiment = "") {
    return ResolveRunId(*deps_.store, typed, CallerUid(context), experiment);
  }

  absl::Status ListFilesImpl(const pb::ListFilesRequest& request, pb::ListFilesResponse* response) {
    AMLD_RETURN_IF_ERROR(deps_.store->GetRun(request.run_id()).status());
    const std::string& prefix =
        request.prefix_bytes().empty() ? request.prefix() : request.prefix_bytes();
    AMLD_ASSIGN_OR_RETURN(std::vector<amld::storage::Artifact> artifacts,
                          deps_.store->ListArtifacts(request.run_id(), prefix));
    for (const amld::storage::Artifact& a : artifacts) {
      pb::RunFile* f = response->add_files();
      // A run names its files with any bytes; a proto3 string holds only
      // UTF-8 (one bad name would make the whole response unreadable).
      if (base::IsValidUtf8(a.path)) {
        f->set_path(a.path);
      } else {
        f->set_path(base::EscapeName(a.path));
        f->set_path_bytes(a.path);
      }
      amld::storage::ToProto(a.digest, f->mutable_digest());
    }
    return absl::OkStatus();
  }

  absl::StatusOr<amld::storage::Artifact> FindArtifact(const std::string& run_id,
                                                       const std::string& path) {
    AMLD_RETURN_IF_ERROR(base::ValidateRelativePath(path, "path"));
    const std::string shown = base::EscapeName(path);
    AMLD_RETURN_IF_ERROR(deps_.store->GetRun(run_id).status());
    absl::StatusOr<amld::storage::Artifact> artifact = deps_.store->GetArtifact(run_id, path);
    if (artifact.ok() || artifact.status().code() != absl::StatusCode::kNotFound) return artifact;
    if (IsSymlinkInRun(deps_.runs->PathsFor(run_id), path)) {
      return absl::InvalidArgumentError(
          absl::StrCat(shown,
                       " is or passes through a symbolic link; links in a run are never stored or "
                       "served"));
    }
    return absl::NotFoundError(absl::StrCat("run ", run_id, " has no stored file ", shown,
                                            "; files are stored shortly after they are written (aml run files ",
                                            run_id, " lists them)"));
  }

  absl::Status DownloadFileImpl(const pb::DownloadFileRequest& request,
                                grpc::ServerWriter<pb::FileChunk>* writer) {
    AMLD_RETURN_IF_ERROR(CheckOffset(request.offset()));
    const std::string& path = request.path_bytes().empty() ? request.path() : request.path_bytes();
    AMLD_ASSIGN_OR_RETURN(amld::storage::Artifact artifact, FindArtifact(request.run_id(), path));
    return StreamBlob(*deps_.cas, artifact.digest, request.offset(), base::EscapeName(path),
                      writer);
  }

  ServiceDeps deps_;
};

}  // namespace

std::unique_ptr<grpc::Service> NewRunsService(const ServiceDeps& deps) {
  return std::make_unique<RunsService>(deps);
}

}  // namespace amld::daemon
