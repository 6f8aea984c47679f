// The JSON endpoints behind the web view's pages. Each is a translation of
// one or a few calls of the daemon's own gRPC services (Runs, Experiments,
// Daemon), made through an in-process channel: the pages show exactly what
// `aml` and the SDK are told, and nothing here keeps state of its own.
// docs/web.md lists the endpoints and their JSON.
//
// Errors keep the service's meaning: NOT_FOUND → 404, PERMISSION_DENIED →
// 403, INVALID_ARGUMENT → 400, OUT_OF_RANGE → 416, UNAVAILABLE (the daemon is stopping) → 503,
// anything else → 500; the body is {"error": {"code", "message"}}.
//
// Thread-safety: thread-safe (gRPC stubs are).
#pragma once

#include <grpcpp/channel.h>
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

namespace grpc {
class ClientContext;
}

namespace amld::daemon {

struct WebReply {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::map<std::string, std::string> headers;
};

// A file or log streamed to the browser chunk by chunk (never all in
// memory): `next` appends the next chunk to `out` and returns false at the
// end or on an error (the connection is then cut short).
struct WebStream {
  int64_t total_size = -1;  // -1: unknown (a log still growing)
  std::function<bool(std::string* out)> next;
};

// The endpoints as seen by one viewer: the uid whose token the request
// carried. Every call says so to the services (base/viewer_metadata.h), so
// in system mode a user sees what `aml` would show them — everyone's runs
// and status, but only their own runs' logs, files and metrics (403
// otherwise, naming the owner) — and root or admin_group see all.
class WebApi {
 public:
  WebApi(std::shared_ptr<grpc::Channel> channel, uid_t viewer);

  // {"version", "user", "uid"}: the daemon and who is looking.
  WebReply Info() const;
  // {"experiments": [{"name", "run_count", "last_run"}]}.
  WebReply Experiments() const;
  // {"runs": [row...], "more": bool}: the newest `limit` runs (1..10000) of
  // `experiment` (all when empty) in `statuses` (names; all when empty).
  // A row: id, name, experiment, status, uid, user, target, placement,
  // parent, created, started, ended (Unix seconds or null), error, tags.
  WebReply Runs(const std::string& experiment, const std::vector<std::string>& statuses,
                int limit) const;
  // {"run": Run as proto JSON (field names as in runs.proto), "user"}.
  WebReply Run(const std::string& run_id) const;
  // {"metrics": {name: {"steps": [], "times": [], "values": []}}}; a text
  // value is a string in values, a NaN or infinity null.
  WebReply Metrics(const std::string& run_id) const;
  // {run_id: {name: last numeric value}} for the runs table's columns.
  WebReply LastMetrics(const std::vector<std::string>& run_ids) const;
  // Up to `max_bytes` of a log from `offset` as text/plain; headers
  // X-Log-Offset (where the bytes start) and X-Log-Next (the offset to ask
  // for next).
  WebReply Log(const std::string& run_id, const std::string& path, int64_t offset,
               int64_t max_bytes) const;
  // {"files": [{"path", "size"}]}.
  WebReply Files(const std::string& run_id) const;

  // A stored file (Runs.DownloadFile) or a whole log (Runs.StreamLogs), to
  // stream; an error reply instead when it cannot be opened.
  std::variant<WebStream, WebReply> OpenFile(const std::string& run_id,
                                             const std::string& path) const;
  std::variant<WebStream, WebReply> OpenLog(const std::string& run_id,
                                            const std::string& path) const;

 private:
  void AsViewer(grpc::ClientContext* context) const;

  std::shared_ptr<grpc::Channel> channel_;
  uid_t viewer_;
};

}  // namespace amld::daemon
