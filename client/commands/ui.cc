// `aml ui [RUN]`: the web view's link (daemon/web/web_server.h). The daemon
// starts serving on first use and hands out this user's token over the
// socket; the link carries it once, then the browser keeps it as a cookie.
// Opens the link with xdg-open where a desktop session is there (DISPLAY or
// WAYLAND_DISPLAY); prints it always.
#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>

#include "amld/v1/web.grpc.pb.h"
#include "client/commands/command.h"
#include "client/grpc_status.h"

namespace amld::client::commands {

namespace {

struct UiOptions {
  RunRef run;
  bool no_open = false;
};

int RunUi(const GlobalOptions& global, const UiOptions& options) {
  auto conn = ConnectFromOptions(global);
  if (!conn.ok()) return ReportError(global, conn.status());
  std::string fragment;
  if (!options.run.typed.empty()) {
    absl::StatusOr<amld::v1::Run> run = ResolveRun(*conn, options.run);
    if (!run.ok()) return ReportError(global, run.status());
    fragment = "#/run/" + run->id();
  }
  grpc::ClientContext ctx;
  amld::v1::OpenWebViewResponse view;
  grpc::Status st = amld::v1::WebView::NewStub(conn->channel)
                        ->OpenWebView(&ctx, amld::v1::OpenWebViewRequest(), &view);
  if (!st.ok()) return ReportError(global, FromGrpcStatus(st, "open the web view", conn->socket_path));
  const std::string url = view.url() + fragment;
  if (global.json()) {
    std::cout << nlohmann::json{{"url", url}, {"base_url", view.base_url()}}.dump(2) << std::endl;
  } else {
    std::cout << url << std::endl;
  }
  if (!options.no_open && OpenInBrowser(url)) std::cerr << "aml: opened it in your browser" << std::endl;
  return kExitOk;
}

}  // namespace

void AddUiCommand(CLI::App& app, CommandContext& ctx) {
  auto options = std::make_shared<UiOptions>();
  auto* cmd = app.add_subcommand(
      "ui", "print the link to the web view (runs, live logs, metric charts) and open it");
  cmd->add_option("run", options->run.typed, "open this run's page (an id, part of one, or last)");
  cmd->add_option("-e,--experiment", options->run.experiment, "with `last`: of this experiment");
  cmd->add_flag("--no-open", options->no_open, "only print the link, even where a browser exists");
  cmd->callback([&ctx, options] { ctx.action = [&ctx, options] { return RunUi(ctx.global, *options); }; });
}

}  // namespace amld::client::commands
