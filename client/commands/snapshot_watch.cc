// `aml snapshot watch [DIR]`: registers a source folder with the daemon,
// which scans it now and from then on keeps its tree hashed and stored as
// files change (daemon/watch/watched_roots.h), so `aml run submit` of that folder
// neither walks nor uploads it. Exit 1 when the folder cannot be watched
// fully (out of inotify watches: the message says which sysctl to raise).
#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "amld/v1/snapshots.grpc.pb.h"
#include "client/commands/command.h"
#include "client/commands/output.h"
#include "client/grpc_status.h"

namespace amld::client::commands {
namespace {

namespace pb = amld::v1;

int RunSnapshotWatch(const GlobalOptions& global, const std::filesystem::path& dir) {
  std::error_code ec;
  const std::filesystem::path path = std::filesystem::canonical(dir, ec);
  if (ec || !std::filesystem::is_directory(path, ec)) {
    return ReportError(global, absl::NotFoundError(absl::StrCat("cannot watch ", dir.string(),
                                                                ": not an existing folder")));
  }
  auto conn = ConnectFromOptions(global);
  if (!conn.ok()) return ReportError(global, conn.status());
  auto stub = pb::Snapshots::NewStub(conn->channel);
  grpc::ClientContext ctx;
  pb::WatchRootRequest req;
  req.set_path(path.string());
  pb::WatchedRoot root;
  std::cerr << "aml: scanning " << path.string() << " ..." << std::endl;
  grpc::Status st = stub->WatchRoot(&ctx, req, &root);
  if (!st.ok()) {
    return ReportError(global, FromGrpcStatus(st, "watch " + path.string(), conn->socket_path));
  }
  const bool full = root.state() == pb::WatchedRoot::State::WATCHING;
  if (global.json()) {
    std::cout << ProtoToJson(root) << std::endl;
  } else {
    std::cout << "watching " << root.path() << ": " << root.file_count() << " files ("
              << HumanBytes(root.total_bytes()) << "), " << root.directories_watched()
              << " folders watched" << std::endl;
  }
  if (!full) {
    std::cerr << "aml: " << pb::WatchedRoot::State::Value_Name(root.state()) << ": "
              << root.detail() << std::endl;
    return kExitFailure;
  }
  return kExitOk;
}

}  // namespace

void AddSnapshotWatchCommand(CLI::App& snapshot, CommandContext& ctx) {
  auto dir = std::make_shared<std::filesystem::path>(".");
  auto* cmd = snapshot.add_subcommand(
      "watch",
      "have amld watch a source folder and keep its snapshot current, so submits of it send "
      "nothing (remembered across daemon restarts)");
  cmd->add_option("dir", *dir, "the source folder (default: .)");
  cmd->callback(
      [&ctx, dir] { ctx.action = [&ctx, dir] { return RunSnapshotWatch(ctx.global, *dir); }; });
}

}  // namespace amld::client::commands
