// `aml env build NAME[:VERSION]`: build a registered or curated environment
// into the daemon's cache ahead of the runs that use it, with its output
// as it comes; `aml env prune`: remove the cached environments no run uses.
#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "amld/v1/environments.grpc.pb.h"
#include "client/commands/command.h"
#include "client/commands/output.h"
#include "client/grpc_status.h"

namespace amld::client::commands {
namespace {

int RunEnvBuild(const GlobalOptions& global, const std::string& spec) {
  auto conn = ConnectFromOptions(global);
  if (!conn.ok()) return ReportError(global, conn.status());
  auto stub = amld::v1::Environments::NewStub(conn->channel);
  amld::v1::BuildEnvironmentRequest req;
  const size_t colon = spec.rfind(':');
  req.set_name(colon == std::string::npos ? spec : spec.substr(0, colon));
  if (colon != std::string::npos) req.set_version(spec.substr(colon + 1));
  grpc::ClientContext ctx;
  auto reader = stub->BuildEnvironment(&ctx, req);
  amld::v1::BuildEnvironmentProgress piece, last;
  // The output goes to stderr with --output json, so stdout stays one
  // JSON object.
  std::ostream& out = global.json() ? std::cerr : std::cout;
  while (reader->Read(&piece)) {
    if (!piece.output().empty()) out << piece.output() << std::flush;
    if (!piece.digest().empty()) last = piece;
  }
  grpc::Status st = reader->Finish();
  if (!st.ok()) {
    return ReportError(global, FromGrpcStatus(st, "build environment " + spec, conn->socket_path));
  }
  if (global.json()) {
    last.clear_output();
    std::cout << ProtoToJson(last) << std::endl;
  } else if (!last.digest().empty()) {
    std::cout << "environment " << spec << " " << (last.built_now() ? "built" : "already built")
              << ": " << last.digest().substr(0, 12) << " at " << last.prefix() << std::endl;
  }
  return kExitOk;
}

int RunEnvPrune(const GlobalOptions& global) {
  auto conn = ConnectFromOptions(global);
  if (!conn.ok()) return ReportError(global, conn.status());
  auto stub = amld::v1::Environments::NewStub(conn->channel);
  grpc::ClientContext ctx;
  amld::v1::PruneEnvironmentsResponse resp;
  grpc::Status st = stub->PruneEnvironments(&ctx, amld::v1::PruneEnvironmentsRequest(), &resp);
  if (!st.ok()) {
    return ReportError(global, FromGrpcStatus(st, "prune environments", conn->socket_path));
  }
  if (global.json()) {
    std::cout << ProtoToJson(resp) << std::endl;
    return kExitOk;
  }
  for (const auto& e : resp.removed()) {
    std::cout << "removed " << e.digest().substr(0, 12) << "  " << HumanBytes(e.bytes())
              << "  last used " << HumanDuration(absl::Now() - ToAbslTime(e.last_used()))
              << " ago\n";
  }
  std::cout << resp.removed_size() << " environment(s) removed, " << HumanBytes(resp.bytes_freed())
            << " freed; " << resp.kept() << " kept (" << HumanBytes(resp.kept_bytes())
            << ", in use or being built)" << std::endl;
  return kExitOk;
}

}  // namespace

void AddEnvCacheCommands(CLI::App& env, CommandContext& ctx) {
  auto name = std::make_shared<std::string>();
  auto* build = env.add_subcommand(
      "build", "build a registered or curated environment into the cache now (NAME[:VERSION])");
  build->add_option("name", *name, "NAME or NAME:VERSION (default: the latest)")->required();
  build->callback(
      [&ctx, name] { ctx.action = [&ctx, name] { return RunEnvBuild(ctx.global, *name); }; });
  auto* prune = env.add_subcommand("prune", "remove the cached environments no run uses now");
  prune->callback([&ctx] { ctx.action = [&ctx] { return RunEnvPrune(ctx.global); }; });
}

}  // namespace amld::client::commands
