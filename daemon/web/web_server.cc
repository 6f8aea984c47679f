#include "daemon/web/web_server.h"

#include <httplib.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "daemon/web/web_api.h"
#include "daemon/web/web_assets.h"
#include "spdlog/spdlog.h"

namespace amld::daemon {
namespace {

// Request threads. A browser keeps up to 6 connections to a host open;
// with fewer threads its polls would queue behind each other's keep-alive.
constexpr int kThreads = 8;
// An idle keep-alive connection holds its thread this long (httplib polls
// it meanwhile), and Stop waits for it at most this long.
constexpr time_t kKeepAliveSeconds = 2;
constexpr int64_t kDefaultLogBytes = 256 << 10;
constexpr int64_t kMaxLogBytes = 4 << 20;

const char kUnauthorizedPage[] =
    "<!doctype html><meta charset=utf-8><title>amld: 401</title>"
    "<p>401: this page needs your token. Run <code>aml ui</code> and open the link it "
    "prints.</p>\n";
const char kForbiddenHostPage[] =
    "<!doctype html><meta charset=utf-8><title>amld: 403</title>"
    "<p>403: amld's web view answers only to the address it listens on.</p>\n";

void SendReply(const WebReply& reply, httplib::Response& res) {
  res.status = reply.status;
  for (const auto& [name, value] : reply.headers) res.set_header(name, value);
  res.set_content(reply.body, reply.content_type.c_str());
}

void SendStream(WebStream stream, const std::string& filename, httplib::Response& res) {
  std::string safe;
  for (char c : filename) safe += (c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20) ? '_' : c;
  res.set_header("Content-Disposition", absl::StrCat("attachment; filename=\"", safe, "\""));
  auto next = std::make_shared<std::function<bool(std::string*)>>(std::move(stream.next));
  auto buffer = std::make_shared<std::string>();
  if (stream.total_size >= 0) {
    res.set_content_provider(
        static_cast<size_t>(stream.total_size), "application/octet-stream",
        [next, buffer](size_t, size_t, httplib::DataSink& sink) {
          buffer->clear();
          if (!(*next)(buffer.get())) return false;
          return sink.write(buffer->data(), buffer->size());
        });
  } else {
    res.set_chunked_content_provider(
        "application/octet-stream", [next, buffer](size_t, httplib::DataSink& sink) {
          buffer->clear();
          if (!(*next)(buffer.get())) {
            sink.done();
            return true;
          }
          return sink.write(buffer->data(), buffer->size());
        });
  }
}

std::string Basename(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

int64_t IntParam(const httplib::Request& req, const char* name, int64_t fallback) {
  int64_t v;
  if (!req.has_param(name) || !absl::SimpleAtoi(req.get_param_value(name), &v)) return fallback;
  return v;
}

std::vector<std::string> ListParam(const httplib::Request& req, const char* name) {
  if (!req.has_param(name)) return {};
  return absl::StrSplit(req.get_param_value(name), ',', absl::SkipEmpty());
}

WebRequestFacts FactsOf(const httplib::Request& req) {
  WebRequestFacts facts;
  facts.host = req.get_header_value("Host");
  facts.cookie_header = req.get_header_value("Cookie");
  facts.query_token = req.get_param_value("token");
  // The pages route after '#', so the path alone is where to go back to.
  facts.target_without_token = req.path;
  return facts;
}

void ServeAsset(const std::string& path, httplib::Response& res) {
  const WebAsset* asset = FindWebAsset(path);
  if (asset == nullptr) {
    res.status = 404;
    res.set_content("no such page\n", "text/plain");
    return;
  }
  res.set_content(asset->data.data(), asset->data.size(), std::string(asset->content_type).c_str());
}

void Route(httplib::Server& http, std::shared_ptr<grpc::Channel> channel, WebTokens* tokens,
           int port, std::vector<std::string> hosts) {
  http.set_default_headers({
      {"X-Content-Type-Options", "nosniff"},
      {"X-Frame-Options", "DENY"},
      {"Referrer-Policy", "no-referrer"},
      {"Cache-Control", "no-store"},
      {"Content-Security-Policy",
       "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "frame-ancestors 'none'"},
  });
  // Every request passes here first; nothing is routed without a token.
  http.set_pre_routing_handler([tokens, port, hosts](const httplib::Request& req,
                                                     httplib::Response& res) {
    const WebAccess access = CheckWebAccess(*tokens, FactsOf(req), port, hosts);
    switch (access.kind) {
      case WebAccess::Kind::kAllow:
        return httplib::Server::HandlerResponse::Unhandled;
      case WebAccess::Kind::kSetCookie:
        res.status = 303;
        res.set_header("Set-Cookie", access.set_cookie);
        res.set_header("Location", access.location);
        return httplib::Server::HandlerResponse::Handled;
      case WebAccess::Kind::kForbiddenHost:
        res.status = 403;
        res.set_content(kForbiddenHostPage, "text/html; charset=utf-8");
        return httplib::Server::HandlerResponse::Handled;
      case WebAccess::Kind::kUnauthorized:
        break;
    }
    res.status = 401;
    res.set_content(kUnauthorizedPage, "text/html; charset=utf-8");
    return httplib::Server::HandlerResponse::Handled;
  });

  http.Get("/", [](const httplib::Request&, httplib::Response& res) {
    ServeAsset("index.html", res);
  });
  http.Get(R"(/static/([A-Za-z0-9._-]+))", [](const httplib::Request& req, httplib::Response& res) {
    ServeAsset(req.matches[1], res);
  });
  // Each endpoint reads as the viewer whose token the request carried (the
  // pre-routing handler let only such requests through).
  auto as_viewer = [channel, tokens, port, hosts](const httplib::Request& req) {
    return WebApi(channel, CheckWebAccess(*tokens, FactsOf(req), port, hosts).uid);
  };
  http.Get("/api/info", [as_viewer](const httplib::Request& req, httplib::Response& res) {
    SendReply(as_viewer(req).Info(), res);
  });
  http.Get("/api/experiments", [as_viewer](const httplib::Request& req, httplib::Response& res) {
    SendReply(as_viewer(req).Experiments(), res);
  });
  http.Get("/api/runs", [as_viewer](const httplib::Request& req, httplib::Response& res) {
    SendReply(as_viewer(req).Runs(req.get_param_value("experiment"), ListParam(req, "status"),
                                  static_cast<int>(IntParam(req, "limit", 1000))),
              res);
  });
  http.Get("/api/metrics/last", [as_viewer](const httplib::Request& req, httplib::Response& res) {
    SendReply(as_viewer(req).LastMetrics(ListParam(req, "runs")), res);
  });
  const std::string run = R"(/api/runs/([A-Za-z0-9._-]+))";
  http.Get(run, [as_viewer](const httplib::Request& req, httplib::Response& res) {
    SendReply(as_viewer(req).Run(req.matches[1]), res);
  });
  http.Get(run + "/metrics", [as_viewer](const httplib::Request& req, httplib::Response& res) {
    SendReply(as_viewer(req).Metrics(req.matches[1]), res);
  });
  http.Get(run + "/files", [as_viewer](const httplib::Request& req, httplib::Response& res) {
    SendReply(as_viewer(req).Files(req.matches[1]), res);
  });
  http.Get(run + "/file", [as_viewer](const httplib::Request& req, httplib::Response& res) {
    const std::string path = req.get_param_value("path");
    auto opened = as_viewer(req).OpenFile(req.matches[1], path);
    if (auto* reply = std::get_if<WebReply>(&opened)) return SendReply(*reply, res);
    SendStream(std::get<WebStream>(std::move(opened)), Basename(path), res);
  });
  http.Get(run + "/log", [as_viewer](const httplib::Request& req, httplib::Response& res) {
    const std::string path = req.get_param_value("path");
    const WebApi api = as_viewer(req);
    if (req.get_param_value("download") == "1") {
      auto opened = api.OpenLog(req.matches[1], path);
      if (auto* reply = std::get_if<WebReply>(&opened)) return SendReply(*reply, res);
      return SendStream(std::get<WebStream>(std::move(opened)),
                        Basename(path.empty() ? "std_log.txt" : path), res);
    }
    const int64_t max = std::clamp<int64_t>(IntParam(req, "max", kDefaultLogBytes), 1, kMaxLogBytes);
    SendReply(api.Log(req.matches[1], path, IntParam(req, "offset", 0), max), res);
  });
}

}  // namespace

WebServer::WebServer(WebOptions options, std::shared_ptr<spdlog::logger> log)
    : options_(std::move(options)), log_(std::move(log)) {}

WebServer::~WebServer() { Stop(); }

void WebServer::SetChannel(std::shared_ptr<grpc::Channel> channel) {
  absl::MutexLock lock(&mu_);
  channel_ = std::move(channel);
}

absl::Status WebServer::EnsureServing() {
  absl::MutexLock lock(&mu_);
  if (http_ != nullptr) return absl::OkStatus();
  if (stopped_ || channel_ == nullptr) {
    return absl::FailedPreconditionError("the web view is not available: the daemon is stopping");
  }
  auto http = std::make_unique<httplib::Server>();
  http->new_task_queue = [] { return new httplib::ThreadPool(kThreads); };
  http->set_keep_alive_timeout(kKeepAliveSeconds);
  int port = options_.port;
  errno = 0;
  const bool bound = port == 0 ? (port = http->bind_to_any_port(options_.address)) > 0
                               : http->bind_to_port(options_.address, port);
  if (!bound) {
    return absl::UnavailableError(absl::StrCat(
        "the web view cannot listen on ", options_.address, ":", options_.port, ": ",
        errno != 0 ? std::strerror(errno) : "bind failed",
        "; set web.address and web.port in amld.yaml to a free local address"));
  }
  Route(*http, channel_, &tokens_, port,
        WebHostsFor(options_.address, port));
  httplib::Server* raw = http.get();
  thread_ = std::thread([raw] { raw->listen_after_bind(); });
  http_ = std::move(http);
  port_ = port;
  if (log_ != nullptr) log_->info("web view serving on {}", BaseUrlLocked());
  return absl::OkStatus();
}

std::string WebServer::BaseUrl() const {
  absl::MutexLock lock(&mu_);
  return BaseUrlLocked();
}

std::string WebServer::BaseUrlLocked() const {
  if (http_ == nullptr) return "";
  const std::string& a = options_.address;
  const std::string host = a == "0.0.0.0" ? "127.0.0.1"
                           : a == "::"    ? "[::1]"
                           : a.find(':') != std::string::npos ? absl::StrCat("[", a, "]")
                                                              : a;
  return absl::StrCat("http://", host, ":", port_, "/");
}

void WebServer::Stop() {
  std::unique_ptr<httplib::Server> http;
  std::thread thread;
  {
    absl::MutexLock lock(&mu_);
    stopped_ = true;
    http = std::move(http_);
    thread = std::move(thread_);
  }
  if (http == nullptr) return;
  http->stop();
  if (thread.joinable()) thread.join();
}

}  // namespace amld::daemon
