#include "daemon/web/web_service.h"

#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "amld/v1/web.grpc.pb.h"
#include "daemon/web/web_server.h"

namespace amld::daemon {
namespace {

namespace pb = amld::v1;

class WebViewService final : public pb::WebView::Service {
 public:
  WebViewService(WebServer* web,
                 std::function<std::optional<uid_t>(const std::string&)> uid_of_peer)
      : web_(web), uid_of_peer_(std::move(uid_of_peer)) {}

  grpc::Status OpenWebView(grpc::ServerContext* context, const pb::OpenWebViewRequest*,
                           pb::OpenWebViewResponse* response) override {
    const uid_t uid =
        uid_of_peer_ ? uid_of_peer_(context->peer()).value_or(::geteuid()) : ::geteuid();
    absl::Status serving = web_->EnsureServing();
    if (!serving.ok()) {
      return grpc::Status(static_cast<grpc::StatusCode>(serving.code()),
                          std::string(serving.message()));
    }
    const std::string token = web_->tokens().TokenFor(uid);
    response->set_base_url(web_->BaseUrl());
    response->set_url(absl::StrCat(response->base_url(), "?token=", token));
    response->set_token(token);
    return grpc::Status::OK;
  }

 private:
  WebServer* const web_;
  const std::function<std::optional<uid_t>(const std::string&)> uid_of_peer_;
};

}  // namespace

std::unique_ptr<grpc::Service> NewWebViewService(
    WebServer* web, std::function<std::optional<uid_t>(const std::string&)> uid_of_peer) {
  return std::make_unique<WebViewService>(web, std::move(uid_of_peer));
}

}  // namespace amld::daemon
