// `aml snapshot list`: the source folders amld watches, their state (a
// DEGRADED or ERROR root is listed with what to do about it), their size
// and the last full rescan with its reason. On a daemon shared by several
// users (system mode) an OWNER column says whose each folder is: users see
// only their own, root and admin_group members see everyone's.
#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "amld/v1/snapshots.grpc.pb.h"
#include "base/user_names.h"
#include "client/commands/command.h"
#include "client/commands/output.h"
#include "client/grpc_status.h"

namespace amld::client::commands {
namespace {

namespace pb = amld::v1;

int RunSnapshotList(const GlobalOptions& global) {
  auto conn = ConnectFromOptions(global);
  if (!conn.ok()) return ReportError(global, conn.status());
  auto stub = pb::Snapshots::NewStub(conn->channel);
  grpc::ClientContext ctx;
  pb::ListWatchedRootsResponse resp;
  grpc::Status st = stub->ListWatchedRoots(&ctx, pb::ListWatchedRootsRequest(), &resp);
  if (!st.ok()) {
    return ReportError(global, FromGrpcStatus(st, "list watched folders", conn->socket_path));
  }
  if (global.json()) {
    std::cout << ProtoToJson(resp) << std::endl;
    return kExitOk;
  }
  if (resp.roots().empty()) {
    std::cout << "no watched folders (add one with `aml snapshot watch DIR`)" << std::endl;
    return kExitOk;
  }
  const bool shared = conn->info.mode() == pb::DaemonInfo::SYSTEM;
  std::vector<std::string> header = {"FOLDER",  "STATE",   "FILES",   "SIZE",
                                     "WATCHES", "PENDING", "RESCANS", "LAST RESCAN"};
  if (shared) header.insert(header.begin() + 1, "OWNER");
  std::vector<std::vector<std::string>> rows;
  for (const pb::WatchedRoot& r : resp.roots()) {
    std::string rescan = "-";
    if (r.has_last_rescan()) {
      rescan = absl::StrCat(FormatTimestamp(r.last_rescan().time()), " (", r.last_rescan().reason(),
                            ")");
    }
    rows.push_back({r.path(), pb::WatchedRoot::State::Value_Name(r.state()),
                    std::to_string(r.file_count()), HumanBytes(r.total_bytes()),
                    std::to_string(r.directories_watched()), std::to_string(r.pending_changes()),
                    std::to_string(r.rescan_count()), rescan});
    if (shared) {
      rows.back().insert(rows.back().begin() + 1, base::NameOrUid(r.owner_uid()));
    }
  }
  PrintTable(std::cout, header, rows);
  for (const pb::WatchedRoot& r : resp.roots()) {
    if (!r.detail().empty()) std::cout << "\n" << r.path() << ":\n  " << r.detail() << "\n";
  }
  return kExitOk;
}

}  // namespace

void AddSnapshotListCommand(CLI::App& snapshot, CommandContext& ctx) {
  auto* cmd = snapshot.add_subcommand("list", "list the source folders amld watches");
  cmd->callback([&ctx] { ctx.action = [&ctx] { return RunSnapshotList(ctx.global); }; });
}

}  // namespace amld::client::commands
