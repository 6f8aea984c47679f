// The web view: amld's pages for a browser (experiments, a runs table, a
// run's status history, config, live log, files and metric charts), served
// over HTTP by the daemon itself.
//
// Off until asked for: amld.yaml's `web.enabled: true` starts it with the
// daemon, WebView.OpenWebView (`aml ui`) starts it on first use. Until then
// nothing listens and no thread runs. Serving, it costs one thread blocked
// in accept(2) while nobody looks; the pages poll small JSON endpoints
// (web_api.h) only while they are open and visible.
//
// It listens on 127.0.0.1 (another address only when amld.yaml's
// `web.address` names one) and lets a request in only with its user's token
// (web_access.h). Everything it shows it reads through the daemon's own gRPC
// services over an in-process channel (SetChannel), so it holds no state of
// its own and shows what `aml` shows. The pages and Chart.js are compiled
// into the binary (web_assets.h).
//
// Thread-safety: thread-safe. Stop before the gRPC server shuts down.
#pragma once

#include <grpcpp/channel.h>

#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "daemon/web/web_access.h"

namespace spdlog {
class logger;
}
namespace httplib {
class Server;
}

namespace amld::daemon {

// amld.yaml's `web:` section.
struct WebOptions {
  // Serve from the daemon's start; otherwise from the first OpenWebView.
  bool enabled = false;
  // The address to listen on. Anything but a loopback address exposes the
  // pages (behind their token) to the network: amld.yaml must say so.
  std::string address = "127.0.0.1";
  // 0: a free port, chosen when the view starts (kept until the daemon stops).
  int port = 0;
};

class WebServer {
 public:
  WebServer(WebOptions options, std::shared_ptr<spdlog::logger> log);
  ~WebServer();  // Stop()

  // The channel to the daemon's services; set once, before EnsureServing.
  void SetChannel(std::shared_ptr<grpc::Channel> channel);
  // Starts listening unless it already does. UNAVAILABLE when the address
  // or port cannot be bound, saying which; FAILED_PRECONDITION before
  // SetChannel or after Stop.
  absl::Status EnsureServing();
  // "http://127.0.0.1:PORT/"; empty while not serving.
  std::string BaseUrl() const;
  WebTokens& tokens() { return tokens_; }
  // Stops listening, ends open requests; idempotent.
  void Stop();

 private:
  std::string BaseUrlLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const WebOptions options_;
  std::shared_ptr<spdlog::logger> log_;
  WebTokens tokens_;
  mutable absl::Mutex mu_;
  std::shared_ptr<grpc::Channel> channel_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<httplib::Server> http_ ABSL_GUARDED_BY(mu_);
  std::thread thread_ ABSL_GUARDED_BY(mu_);
  int port_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace amld::daemon
