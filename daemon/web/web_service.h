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
// only it can connect in user mode). `may_open` says whether a caller may
// have the view: its pages read through the services as the daemon, so on a
// daemon shared by several users (system mode) only those who may read every
// run (root, admin_group) may open it, until the pages read as their user.
std::unique_ptr<grpc::Service> NewWebViewService(
    WebServer* web, std::function<std::optional<uid_t>(const std::string& peer)> uid_of_peer,
    std::function<bool(uid_t)> may_open);

}  // namespace amld::daemon
