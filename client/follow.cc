#include "client/follow.h"

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <algorithm>
#include <optional>

#include "absl/strings/str_cat.h"
#include "amld/v1/runs.grpc.pb.h"
#include "client/grpc_status.h"

namespace amld::client {

using amld::v1::Run;
using amld::v1::RunStatus;

namespace {

// Codes after which reopening the stream can help.
bool IsTransient(grpc::StatusCode code) {
  return code == grpc::StatusCode::UNAVAILABLE || code == grpc::StatusCode::CANCELLED ||
         code == grpc::StatusCode::ABORTED || code == grpc::StatusCode::INTERNAL ||
         code == grpc::StatusCode::UNKNOWN || code == grpc::StatusCode::DEADLINE_EXCEEDED;
}

absl::Status Interrupted() { return absl::CancelledError("interrupted"); }

// Reconnect pacing: exponential backoff, and a deadline that moves forward
// whenever the daemon answers.
class Reconnector {
 public:
  explicit Reconnector(const FollowOptions& o) : options_(o) { Answered(); }
  // Data arrived: the next pause starts short again.
  void Answered() {
    Alive();
    backoff_ = options_.initial_backoff;
  }
  // The daemon answers but there is nothing new: keep backing off.
  void Alive() { give_up_at_ = absl::Now() + options_.reconnect_timeout; }
  // Sleeps before the next try. False when it is time to give up.
  bool Pause() {
    if (absl::Now() >= give_up_at_) return false;
    const absl::Duration d = std::min(backoff_, give_up_at_ - absl::Now());
    backoff_ = std::min(backoff_ * 2, absl::Seconds(1));
    if (options_.interrupt != nullptr) return !options_.interrupt->SleepFor(d);
    absl::SleepFor(d);
    return true;
  }

 private:
  const FollowOptions& options_;
  absl::Time give_up_at_;
  absl::Duration backoff_;
};

bool WasInterrupted(const FollowOptions& o) {
  return o.interrupt != nullptr && o.interrupt->triggered();
}

absl::StatusOr<Run> GetRunOnce(amld::v1::Runs::Stub& stub, const Connection& conn,
                               const std::string& run_id, grpc::StatusCode* code) {
  grpc::ClientContext ctx;
  amld::v1::GetRunRequest req;
  req.set_run_id(run_id);
  Run run;
  grpc::Status st = stub.GetRun(&ctx, req, &run);
  *code = st.error_code();
  if (!st.ok()) return FromGrpcStatus(st, "look up run " + run_id, conn.socket_path, true);
  return run;
}

}  // namespace

absl::StatusOr<Connection> ConnectWhenUp(const std::filesystem::path& socket,
                                         const FollowOptions& options,
                                         const std::function<void(const absl::Status&)>& on_wait) {
  Reconnector reconnector(options);
  bool told = false;
  while (true) {
    if (WasInterrupted(options)) return Interrupted();
    absl::StatusOr<Connection> conn = Connect(socket);
    if (conn.ok() || !absl::IsUnavailable(conn.status())) return conn;
    if (!told && on_wait) on_wait(conn.status());
    told = true;
    if (!reconnector.Pause()) return WasInterrupted(options) ? Interrupted() : conn.status();
  }
}

absl::StatusOr<Run> FollowRun(const Connection& conn, const std::string& run_id,
                              const std::function<void(const Run&)>& on_change,
                              const FollowOptions& options) {
  auto stub = amld::v1::Runs::NewStub(conn.channel);
  Reconnector reconnector(options);
  RunStatus::Value reported = RunStatus::UNKNOWN;
  while (true) {
    if (WasInterrupted(options)) return Interrupted();
    grpc::ClientContext ctx;
    Interrupt::CallGuard guard(options.interrupt, &ctx);
    amld::v1::WaitRunRequest req;
    req.set_run_id(run_id);
    auto reader = stub->WaitRun(&ctx, req);
    amld::v1::WaitRunResponse resp;
    std::optional<Run> terminal;
    while (reader->Read(&resp)) {
      reconnector.Answered();
      const Run& run = resp.run();
      if (run.status() != reported) {
        reported = run.status();
        if (on_change) on_change(run);
      }
      if (IsTerminal(run.status())) {
        terminal = run;
        ctx.TryCancel();  // nothing more is needed from this stream
        break;
      }
    }
    grpc::Status st = reader->Finish();
    if (terminal) return *terminal;
    if (WasInterrupted(options)) return Interrupted();
    if (!st.ok() && !IsTransient(st.error_code())) {
      return FromGrpcStatus(st, "wait for run " + run_id, conn.socket_path);
    }
    if (!reconnector.Pause()) {
      if (WasInterrupted(options)) return Interrupted();
      return FromGrpcStatus(st.ok() ? grpc::Status(grpc::StatusCode::UNAVAILABLE, "") : st,
                            "wait for run " + run_id, conn.socket_path, /*mid_stream=*/true);
    }
  }
}

absl::StatusOr<int64_t> FollowLogs(const Connection& conn, const std::string& run_id,
                                   const std::string& path, int64_t offset, bool follow,
                                   const std::function<void(std::string_view)>& sink,
                                   const FollowOptions& options) {
  auto stub = amld::v1::Runs::NewStub(conn.channel);
  Reconnector reconnector(options);
  const std::string doing = "read the log of run " + run_id;
  // The last read does not follow. When following, it comes after the run
  // was seen terminal, so it catches whatever a stream that ended (or a log
  // that did not exist yet) may have missed.
  bool final_pass = !follow;
  while (true) {
    if (WasInterrupted(options)) return Interrupted();
    grpc::ClientContext ctx;
    Interrupt::CallGuard guard(options.interrupt, &ctx);
    amld::v1::StreamLogsRequest req;
    req.set_run_id(run_id);
    req.set_path(path);
    req.set_offset(offset);
    req.set_follow(!final_pass);
    auto reader = stub->StreamLogs(&ctx, req);
    amld::v1::LogChunk chunk;
    while (reader->Read(&chunk)) {
      reconnector.Answered();
      const int64_t begin = chunk.offset();
      const int64_t end = begin + static_cast<int64_t>(chunk.data().size());
      if (end <= offset) continue;  // already handed out before a reconnect
      std::string_view data = chunk.data();
      if (begin < offset) data.remove_prefix(offset - begin);
      sink(data);
      offset = end;
    }
    grpc::Status st = reader->Finish();
    if (WasInterrupted(options)) return Interrupted();
    const bool log_missing = st.error_code() == grpc::StatusCode::NOT_FOUND;
    if (st.ok() && final_pass) return offset;
    if (!st.ok() && !log_missing) {
      if (!IsTransient(st.error_code())) return FromGrpcStatus(st, doing, conn.socket_path);
      if (!reconnector.Pause()) {
        if (WasInterrupted(options)) return Interrupted();
        return FromGrpcStatus(st, doing, conn.socket_path, /*mid_stream=*/true);
      }
      continue;
    }
    // A followed stream ended, or the run or its log is missing: ask the run.
    grpc::StatusCode code;
    auto run = GetRunOnce(*stub, conn, run_id, &code);
    if (!run.ok() && log_missing && code == grpc::StatusCode::NOT_FOUND) {
      return FromGrpcStatus(st, doing, conn.socket_path);
    }
    if (!run.ok() && !IsTransient(code)) return run.status();
    if (run.ok()) {
      reconnector.Alive();
      if (log_missing && final_pass) {
        // The run's own log may never have been written; a log asked for
        // by name (--path, --rank) that the ended run lacks is an error.
        if (path.empty() || path == "user_logs/std_log.txt") return offset;
        return FromGrpcStatus(st, doing, conn.socket_path);
      }
      if (IsTerminal(run->status())) {
        final_pass = true;
        continue;
      }
    }
    if (!reconnector.Pause()) {
      if (WasInterrupted(options)) return Interrupted();
      return run.ok() ? absl::DeadlineExceededError(
                            absl::StrCat("run ", run_id, " has no log yet after waiting ",
                                         absl::FormatDuration(options.reconnect_timeout)))
                      : run.status();
    }
  }
}

void TailKeeper::Append(std::string_view data) {
  text_.append(data);
  if (lines_ <= 0) {
    text_.clear();
    return;
  }
  // Walk back over `lines_` line ends (a trailing newline ends the last line).
  size_t pos = text_.size();
  if (pos > 0 && text_[pos - 1] == '\n') --pos;
  for (int seen = 0; pos > 0; --pos) {
    if (text_[pos - 1] == '\n' && ++seen == lines_) break;
  }
  if (pos > 0) text_.erase(0, pos);
}

absl::StatusOr<LogTail> ReadLogTail(const Connection& conn, const std::string& run_id,
                                    const std::string& path, int lines,
                                    const FollowOptions& options) {
  TailKeeper keeper(lines);
  absl::StatusOr<int64_t> end = FollowLogs(
      conn, run_id, path, 0, /*follow=*/false,
      [&keeper](std::string_view data) { keeper.Append(data); }, options);
  if (!end.ok()) return end.status();
  return LogTail{keeper.text(), *end};
}

}  // namespace amld::client
