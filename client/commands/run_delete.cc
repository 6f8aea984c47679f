// `aml run delete RUN...`: delete ended runs — their records, metrics, list
// of stored files and run folders, and a sweep's children with it
// (Runs.DeleteRun). Every id is resolved before anything is deleted, so a
// typo deletes nothing. The stored objects (CAS) only they referred to go
// at the daemon's next garbage collection (storage/state/gc.h: every
// gc_interval_seconds, those older than gc_grace_seconds), or at once with
// `aml daemon gc`; the note on stderr says when.
#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "amld/v1/runs.grpc.pb.h"
#include "client/commands/command.h"
#include "client/commands/output.h"
#include "client/grpc_status.h"

namespace amld::client::commands {
namespace {

struct DeleteOptions {
  RunRefs runs;
};

// When the objects of deleted runs leave the store.
std::string CollectionNote(const amld::v1::DaemonInfo& info) {
  if (info.gc_interval_seconds() <= 0) {
    return "stored objects only the deleted runs used stay until `aml daemon gc` (the daemon "
           "collects none on its own: gc_interval_seconds is 0)";
  }
  return absl::StrCat("stored objects only the deleted runs used go at the daemon's next garbage "
                      "collection (every ",
                      HumanDuration(absl::Seconds(info.gc_interval_seconds())),
                      ", once older than ",
                      HumanDuration(absl::Seconds(info.gc_grace_seconds())),
                      "), or now with `aml daemon gc`");
}

int RunDelete(const GlobalOptions& global, const DeleteOptions& o) {
  auto conn = ConnectFromOptions(global);
  if (!conn.ok()) return ReportError(global, conn.status());
  auto runs = ResolveRuns(*conn, o.runs);
  if (!runs.ok()) return ReportError(global, runs.status());
  std::vector<std::string> ids;
  for (const amld::v1::Run& run : *runs) {
    if (!amld::storage::IsTerminal(run.status())) {
      return ReportError(
          global, absl::FailedPreconditionError(absl::StrCat(
                      "run ", run.id(), " is ", StatusName(run.status()),
                      ": only ended runs are deleted; cancel it first (aml run cancel ", run.id(),
                      "); nothing was deleted")));
    }
    ids.push_back(run.id());
  }
  auto stub = amld::v1::Runs::NewStub(conn->channel);
  nlohmann::json deleted = nlohmann::json::array();
  for (const std::string& id : ids) {
    grpc::ClientContext ctx;
    amld::v1::DeleteRunRequest req;
    req.set_run_id(id);
    amld::v1::DeleteRunResponse resp;
    grpc::Status st = stub->DeleteRun(&ctx, req, &resp);
    if (!st.ok()) return ReportError(global, FromGrpcStatus(st, "delete run " + id, conn->socket_path));
    for (const std::string& d : resp.deleted_run_ids()) deleted.push_back(d);
    if (!global.json()) {
      std::cout << "deleted run " << id;
      if (resp.deleted_run_ids_size() > 1) {
        std::cout << " and its " << resp.deleted_run_ids_size() - 1 << " child runs";
      }
      std::cout << std::endl;
    }
  }
  if (global.json()) std::cout << nlohmann::json{{"deleted", deleted}}.dump(2) << std::endl;
  std::cerr << CollectionNote(conn->info) << std::endl;
  return kExitOk;
}

}  // namespace

void AddRunDeleteCommand(CLI::App& run, CommandContext& ctx) {
  auto o = std::make_shared<DeleteOptions>();
  auto* cmd = run.add_subcommand(
      "delete",
      "delete ended runs: records, metrics, stored file lists and run folders (a sweep's children "
      "with it); the stored objects only they used go at the next garbage collection");
  AddRunsArgument(*cmd, o->runs);
  cmd->callback([&ctx, o] { ctx.action = [&ctx, o] { return RunDelete(ctx.global, *o); }; });
}

}  // namespace amld::client::commands
