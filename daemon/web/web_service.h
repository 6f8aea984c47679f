// The WebView gRPC service (proto/amld/v1/web.proto): hands the caller the
// link to the web view, starting it on first use. The caller is whoever the
// Unix socket says connected (`uid_of_peer`, as services.h's ServiceDeps),
// so the token it gets is that user's.
//
// Thread-safety: thread-safe; `web` must outlive the grpc::Server.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace grpc {
class Service;
}

namespace amld::daemon {

class WebServer;

// `uid_of_peer` may return nullopt (the daemon's own uid is then assumed:
// only it can connect in user mode). Every user may open the view: its pages
// read as the token's user (web_api.h), so on a shared daemon each sees what
// `aml` would show them.
std::unique_ptr<grpc::Service> NewWebViewService(
    WebServer* web, std::function<std::optional<uid_t>(const std::string& peer)> uid_of_peer);

}  // namespace amld::daemon
