// `aml daemon gc`: collect the CAS's garbage now — every object no run, no
// stored file and no watched folder refers to, older than the grace period
// (storage/state/gc.h) — and say what it freed.
#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "amld/v1/daemon.grpc.pb.h"
#include "base/parse_duration.h"
#include "client/commands/command.h"
#include "client/commands/output.h"
#include "client/grpc_status.h"

namespace amld::client::commands {
namespace {

int RunDaemonGc(const GlobalOptions& global, const std::string& grace) {
  amld::v1::CollectGarbageRequest req;
  if (!grace.empty()) {
    auto seconds = amld::base::ParseDurationSeconds(grace);
    if (!seconds.ok()) {
      return ReportUsageError(global, absl::StrCat("--grace: ", seconds.status().message()),
                              "aml daemon gc");
    }
    req.set_grace_seconds(*seconds);
  }
  auto conn = ConnectFromOptions(global);
  if (!conn.ok()) return ReportError(global, conn.status());
  auto stub = amld::v1::Daemon::NewStub(conn->channel);
  grpc::ClientContext ctx;
  amld::v1::GcReport report;
  grpc::Status st = stub->CollectGarbage(&ctx, req, &report);
  if (!st.ok()) {
    return ReportError(global, FromGrpcStatus(st, "collect garbage", conn->socket_path));
  }
  if (global.json()) {
    std::cout << ProtoToJson(report) << std::endl;
  } else {
    std::cout << GcSummary(report) << std::endl;
  }
  return kExitOk;
}

}  // namespace

std::string GcSummary(const amld::v1::GcReport& r) {
  return absl::StrCat(r.objects_removed(), " objects removed (", HumanBytes(r.bytes_removed()),
                      " freed), ", r.objects_kept(), " kept, ", r.temp_files_removed(),
                      " stale uploads removed; grace ", HumanDuration(absl::Seconds(r.grace_seconds())),
                      ", took ", HumanDuration(absl::Milliseconds(r.duration_ms())));
}

void AddDaemonGcCommand(CLI::App& daemon, CommandContext& ctx) {
  auto grace = std::make_shared<std::string>();
  auto* cmd = daemon.add_subcommand(
      "gc",
      "remove stored objects nothing refers to (no run, stored file or watched folder) and\n"
      "  stale partial uploads, older than the grace period; the daemon also does so on its own\n"
      "  (gc_interval_seconds in amld.yaml)");
  cmd->add_option("--grace", *grace,
                  "keep objects younger than this (e.g. 1h, 10m; default: the daemon's "
                  "gc_grace_seconds). Below 10m, blobs a client is uploading for a submit may go");
  cmd->callback(
      [&ctx, grace] { ctx.action = [&ctx, grace] { return RunDaemonGc(ctx.global, *grace); }; });
}

}  // namespace amld::client::commands
