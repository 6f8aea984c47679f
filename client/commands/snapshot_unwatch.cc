// `aml snapshot unwatch [DIR]`: the daemon stops watching a source folder;
// submits of it walk and upload it on the client again.
#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "amld/v1/snapshots.grpc.pb.h"
#include "client/commands/command.h"
#include "client/commands/output.h"
#include "client/grpc_status.h"

namespace amld::client::commands {
namespace {

namespace pb = amld::v1;

int RunSnapshotUnwatch(const GlobalOptions& global, const std::filesystem::path& dir) {
  // A folder that is gone can still be unwatched by the path it had.
  std::error_code ec;
  std::filesystem::path path = std::filesystem::canonical(dir, ec);
  if (ec) path = std::filesystem::absolute(dir, ec).lexically_normal();
  auto conn = ConnectFromOptions(global);
  if (!conn.ok()) return ReportError(global, conn.status());
  auto stub = pb::Snapshots::NewStub(conn->channel);
  grpc::ClientContext ctx;
  pb::UnwatchRootRequest req;
  req.set_path(path.string());
  pb::UnwatchRootResponse resp;
  grpc::Status st = stub->UnwatchRoot(&ctx, req, &resp);
  if (!st.ok()) {
    return ReportError(global, FromGrpcStatus(st, "unwatch " + path.string(), conn->socket_path));
  }
  if (global.json()) {
    std::cout << ProtoToJson(resp) << std::endl;
  } else {
    std::cout << "stopped watching " << resp.root().path() << std::endl;
  }
  return kExitOk;
}

}  // namespace

void AddSnapshotUnwatchCommand(CLI::App& snapshot, CommandContext& ctx) {
  auto dir = std::make_shared<std::filesystem::path>(".");
  auto* cmd = snapshot.add_subcommand("unwatch", "stop watching a source folder");
  cmd->add_option("dir", *dir, "the watched folder (default: .)");
  cmd->callback(
      [&ctx, dir] { ctx.action = [&ctx, dir] { return RunSnapshotUnwatch(ctx.global, *dir); }; });
}

}  // namespace amld::client::commands
