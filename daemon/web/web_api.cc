#include "daemon/web/web_api.h"

#include <google/protobuf/util/json_util.h>
#include <grpcpp/client_context.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <type_traits>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "base/user_names.h"
#include "base/viewer_metadata.h"
#include "amld/v1/daemon.grpc.pb.h"
#include "amld/v1/experiments.grpc.pb.h"
#include "amld/v1/runs.grpc.pb.h"

namespace amld::daemon {
namespace {

namespace pb = amld::v1;
using nlohmann::json;

// Most runs one page asks for; ListRuns gives at most 1000 per call.
constexpr int kMaxRuns = 10000;
constexpr int kRunsPerCall = 1000;

int HttpStatusOf(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::NOT_FOUND: return 404;
    case grpc::StatusCode::PERMISSION_DENIED: return 403;
    case grpc::StatusCode::INVALID_ARGUMENT: return 400;
    case grpc::StatusCode::OUT_OF_RANGE: return 416;
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::CANCELLED: return 503;
    default: return 500;
  }
}

const char* CodeName(grpc::StatusCode code) {
  static const char* const kNames[] = {
      "OK",        "CANCELLED",         "UNKNOWN",           "INVALID_ARGUMENT",
      "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",    "PERMISSION_DENIED",
      "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
      "UNIMPLEMENTED", "INTERNAL",      "UNAVAILABLE",       "DATA_LOSS",
      "UNAUTHENTICATED"};
  const int i = static_cast<int>(code);
  return i >= 0 && i <= 16 ? kNames[i] : "UNKNOWN";
}

WebReply ErrorReply(const grpc::Status& status) {
  WebReply reply;
  reply.status = HttpStatusOf(status.error_code());
  reply.body = json{{"error", {{"code", CodeName(status.error_code())},
                               {"message", status.error_message()}}}}
                   .dump();
  return reply;
}

WebReply JsonReply(const json& j) {
  WebReply reply;
  // Run output (logs, tags) may hold bytes that are not UTF-8: replaced,
  // never a failed page.
  reply.body = j.dump(-1, ' ', false, json::error_handler_t::replace);
  return reply;
}

double Seconds(const google::protobuf::Timestamp& t) {
  return static_cast<double>(t.seconds()) + t.nanos() / 1e9;
}

json RunRow(const pb::Run& run, std::map<uid_t, std::string>* users) {
  json started = nullptr, ended = nullptr;
  for (const pb::StatusTransition& t : run.history()) {
    if (t.status() == pb::RunStatus::RUNNING && started.is_null()) started = Seconds(t.time());
    if (t.status() == pb::RunStatus::COMPLETED || t.status() == pb::RunStatus::FAILED ||
        t.status() == pb::RunStatus::CANCELED) {
      ended = Seconds(t.time());
    }
  }
  auto user = users->find(run.submitter_uid());
  if (user == users->end()) {
    user = users->emplace(run.submitter_uid(), base::NameOrUid(run.submitter_uid())).first;
  }
  json tags = json::object();
  for (const auto& [k, v] : run.config().tags()) tags[k] = v;
  const std::string& target = run.config().compute_target();
  return json{{"id", run.id()},
              {"name", run.config().display_name()},
              {"experiment", run.config().experiment_name()},
              {"status", pb::RunStatus::Value_Name(run.status())},
              {"uid", run.submitter_uid()},
              {"user", user->second},
              {"target", target.empty() ? "local" : target},
              {"placement", run.placement()},
              {"parent", run.parent_run_id()},
              {"created", Seconds(run.created_time())},
              {"started", started},
              {"ended", ended},
              {"error", run.error()},
              {"tags", tags}};
}

// One server stream whose messages have offset and data, read by a
// WebStream. The reader goes before the context it uses; a stream the
// browser abandons is cancelled and finished, never left half open.
template <typename Chunk>
struct StreamCall {
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReader<Chunk>> reader;
  std::optional<Chunk> pending;  // read before the reply started
  bool finished = false;

  ~StreamCall() {
    if (reader == nullptr || finished) return;
    context.TryCancel();
    Chunk drain;
    while (reader->Read(&drain)) {
    }
    reader->Finish();
  }
};

template <typename Chunk>
WebStream StreamOf(std::shared_ptr<StreamCall<Chunk>> call, int64_t total_size) {
  WebStream stream;
  stream.total_size = total_size;
  stream.next = [call](std::string* out) {
    Chunk chunk;
    if (call->pending.has_value()) {
      chunk = std::move(*call->pending);
      call->pending.reset();
    } else if (!call->reader->Read(&chunk)) {
      call->finished = true;
      call->reader->Finish();  // an error ends the reply short: the browser sees it fail
      return false;
    }
    out->append(chunk.data());
    return true;
  };
  return stream;
}

// Reads the first message before the reply starts, so a call that fails
// at once (no such run or file) is an error reply, not a cut download. A
// file's first message says its size; a log's size is unknown (it may grow).
template <typename Chunk>
std::variant<WebStream, WebReply> StartStream(std::shared_ptr<StreamCall<Chunk>> call) {
  Chunk first;
  if (!call->reader->Read(&first)) {
    call->finished = true;
    grpc::Status s = call->reader->Finish();
    if (!s.ok()) return ErrorReply(s);
    return WebStream{0, [](std::string*) { return false; }};  // empty
  }
  int64_t size = -1;
  if constexpr (std::is_same_v<Chunk, pb::FileChunk>) size = first.total_size();
  call->pending = std::move(first);
  return StreamOf(std::move(call), size);
}

}  // namespace

WebApi::WebApi(std::shared_ptr<grpc::Channel> channel, uid_t viewer)
    : channel_(std::move(channel)), viewer_(viewer) {}

void WebApi::AsViewer(grpc::ClientContext* context) const {
  context->AddMetadata(base::kViewerUidMetadata, absl::StrCat(viewer_));
}

WebReply WebApi::Info() const {
  grpc::ClientContext context;
  AsViewer(&context);
  pb::DaemonInfo info;
  grpc::Status s = pb::Daemon::NewStub(channel_)->GetInfo(&context, pb::GetInfoRequest(), &info);
  if (!s.ok()) return ErrorReply(s);
  return JsonReply({{"version", info.version()}, {"user", base::NameOrUid(viewer_)}, {"uid", viewer_}});
}

WebReply WebApi::Experiments() const {
  grpc::ClientContext context;
  AsViewer(&context);
  pb::ListExperimentsResponse response;
  grpc::Status s = pb::Experiments::NewStub(channel_)->ListExperiments(
      &context, pb::ListExperimentsRequest(), &response);
  if (!s.ok()) return ErrorReply(s);
  json list = json::array();
  for (const pb::Experiment& e : response.experiments()) {
    list.push_back({{"name", e.name()},
                    {"run_count", e.run_count()},
                    {"last_run", e.has_last_run_time() ? json(Seconds(e.last_run_time())) : json()}});
  }
  return JsonReply({{"experiments", list}});
}

WebReply WebApi::Runs(const std::string& experiment, const std::vector<std::string>& statuses,
                      int limit) const {
  limit = std::clamp(limit, 1, kMaxRuns);
  pb::ListRunsRequest request;
  request.set_experiment_name(experiment);
  for (const std::string& name : statuses) {
    pb::RunStatus::Value v;
    if (!pb::RunStatus::Value_Parse(name, &v) || v == pb::RunStatus::UNKNOWN) {
      return ErrorReply(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                     absl::StrCat("unknown status \"", name, "\"")));
    }
    request.add_statuses(v);
  }
  auto stub = pb::Runs::NewStub(channel_);
  std::map<uid_t, std::string> users;
  json rows = json::array();
  bool more = false;
  while (true) {
    request.set_page_size(std::min(kRunsPerCall, limit - static_cast<int>(rows.size())));
    grpc::ClientContext context;
    AsViewer(&context);
    pb::ListRunsResponse page;
    grpc::Status s = stub->ListRuns(&context, request, &page);
    if (!s.ok()) return ErrorReply(s);
    for (const pb::Run& run : page.runs()) rows.push_back(RunRow(run, &users));
    more = !page.next_page_token().empty();
    if (!more || static_cast<int>(rows.size()) >= limit) break;
    request.set_page_token(page.next_page_token());
  }
  return JsonReply({{"runs", std::move(rows)}, {"more", more}});
}

WebReply WebApi::Run(const std::string& run_id) const {
  grpc::ClientContext context;
  AsViewer(&context);
  pb::GetRunRequest request;
  request.set_run_id(run_id);
  pb::Run run;
  grpc::Status s = pb::Runs::NewStub(channel_)->GetRun(&context, request, &run);
  if (!s.ok()) return ErrorReply(s);
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  std::string run_json;
  if (!google::protobuf::util::MessageToJsonString(run, &run_json, options).ok()) {
    return ErrorReply(grpc::Status(grpc::StatusCode::INTERNAL, "run is not printable as JSON"));
  }
  WebReply reply;
  reply.body = absl::StrCat(R"({"run":)", run_json, R"(,"user":)",
                            json(base::NameOrUid(run.submitter_uid())).dump(), "}");
  return reply;
}

WebReply WebApi::Metrics(const std::string& run_id) const {
  grpc::ClientContext context;
  AsViewer(&context);
  pb::GetMetricsRequest request;
  request.set_run_id(run_id);
  pb::GetMetricsResponse response;
  grpc::Status s = pb::Runs::NewStub(channel_)->GetMetrics(&context, request, &response);
  if (!s.ok()) return ErrorReply(s);
  json metrics = json::object();
  for (const pb::Metric& m : response.metrics()) {
    json& series = metrics[m.name()];
    if (series.is_null()) series = {{"steps", json::array()}, {"times", json::array()},
                                    {"values", json::array()}};
    series["steps"].push_back(m.step());
    series["times"].push_back(Seconds(m.time()));
    if (m.has_text()) {
      series["values"].push_back(m.text());
    } else {
      series["values"].push_back(std::isfinite(m.number()) ? json(m.number()) : json());
    }
  }
  return JsonReply({{"metrics", std::move(metrics)}});
}

WebReply WebApi::LastMetrics(const std::vector<std::string>& run_ids) const {
  auto stub = pb::Runs::NewStub(channel_);
  json all = json::object();
  for (const std::string& id : run_ids) {
    grpc::ClientContext context;
    AsViewer(&context);
    pb::GetMetricsRequest request;
    request.set_run_id(id);
    pb::GetMetricsResponse response;
    grpc::Status s = stub->GetMetrics(&context, request, &response);
    // A run gone meanwhile, or another user's (its metrics are theirs):
    // no columns for it.
    if (s.error_code() == grpc::StatusCode::NOT_FOUND ||
        s.error_code() == grpc::StatusCode::PERMISSION_DENIED) {
      continue;
    }
    if (!s.ok()) return ErrorReply(s);
    json last = json::object();
    // Ordered by name, then step: the last number of each name wins.
    for (const pb::Metric& m : response.metrics()) {
      if (m.has_number() && std::isfinite(m.number())) last[m.name()] = m.number();
    }
    all[id] = std::move(last);
  }
  return JsonReply(all);
}

WebReply WebApi::Log(const std::string& run_id, const std::string& path, int64_t offset,
                     int64_t max_bytes) const {
  grpc::ClientContext context;
  AsViewer(&context);
  pb::StreamLogsRequest request;
  request.set_run_id(run_id);
  request.set_path(path);
  request.set_offset(offset);
  std::unique_ptr<grpc::ClientReader<pb::LogChunk>> reader =
      pb::Runs::NewStub(channel_)->StreamLogs(&context, request);
  WebReply reply;
  reply.content_type = "text/plain; charset=utf-8";
  pb::LogChunk chunk;
  int64_t next = offset;
  bool ended = false;  // the service closed the stream: Finish has its status
  while (static_cast<int64_t>(reply.body.size()) < max_bytes) {
    if (!reader->Read(&chunk)) {
      ended = true;
      break;
    }
    const size_t take =
        std::min<size_t>(chunk.data().size(), static_cast<size_t>(max_bytes) - reply.body.size());
    reply.body.append(chunk.data(), 0, take);
    next = chunk.offset() + static_cast<int64_t>(take);
  }
  // The rest, if any, comes with the next request. Not cancelled when the
  // stream already ended: a refusal (another user's run) must stay one.
  if (!ended) context.TryCancel();
  grpc::Status s = reader->Finish();
  if (!s.ok() && s.error_code() != grpc::StatusCode::CANCELLED) return ErrorReply(s);
  reply.headers["X-Log-Offset"] = absl::StrCat(offset);
  reply.headers["X-Log-Next"] = absl::StrCat(next);
  return reply;
}

WebReply WebApi::Files(const std::string& run_id) const {
  grpc::ClientContext context;
  AsViewer(&context);
  pb::ListFilesRequest request;
  request.set_run_id(run_id);
  pb::ListFilesResponse response;
  grpc::Status s = pb::Runs::NewStub(channel_)->ListFiles(&context, request, &response);
  if (!s.ok()) return ErrorReply(s);
  json files = json::array();
  for (const pb::RunFile& f : response.files()) {
    files.push_back({{"path", f.path()}, {"size", f.digest().size_bytes()}});
  }
  return JsonReply({{"files", std::move(files)}});
}

std::variant<WebStream, WebReply> WebApi::OpenFile(const std::string& run_id,
                                                   const std::string& path) const {
  auto call = std::make_shared<StreamCall<pb::FileChunk>>();
  pb::DownloadFileRequest request;
  request.set_run_id(run_id);
  request.set_path(path);
  AsViewer(&call->context);
  call->reader = pb::Runs::NewStub(channel_)->DownloadFile(&call->context, request);
  return StartStream(std::move(call));
}

std::variant<WebStream, WebReply> WebApi::OpenLog(const std::string& run_id,
                                                  const std::string& path) const {
  auto call = std::make_shared<StreamCall<pb::LogChunk>>();
  pb::StreamLogsRequest request;
  request.set_run_id(run_id);
  request.set_path(path);
  AsViewer(&call->context);
  call->reader = pb::Runs::NewStub(channel_)->StreamLogs(&call->context, request);
  return StartStream(std::move(call));
}

}  // namespace amld::daemon
