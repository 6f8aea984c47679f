// `aml env list`: curated and registered environments, latest version each.
#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "amld/v1/environments.grpc.pb.h"
#include "client/commands/command.h"
#include "client/commands/output.h"
#include "client/grpc_status.h"

namespace amld::client::commands {
namespace {

// "user-managed", "pip: 2 requirements", "conda: python=3.11, 3 pip".
std::string Kind(const amld::v1::Environment& env) {
  if (env.user_managed_dependencies()) {
    return env.interpreter_path().empty() ? "user-managed (python3)"
                                          : "user-managed (" + env.interpreter_path() + ")";
  }
  std::vector<std::string> parts;
  if (!env.python_version().empty()) parts.push_back("python " + env.python_version());
  if (env.conda_packages_size() > 0) {
    parts.push_back(absl::StrCat(env.conda_packages_size(), " conda"));
  }
  parts.push_back(absl::StrCat(env.pip_requirements_size(), " pip"));
  return "managed: " + absl::StrJoin(parts, ", ");
}

int RunEnvList(const GlobalOptions& global) {
  auto conn = ConnectFromOptions(global);
  if (!conn.ok()) return ReportError(global, conn.status());
  auto stub = amld::v1::Environments::NewStub(conn->channel);
  grpc::ClientContext ctx;
  amld::v1::ListEnvironmentsResponse resp;
  grpc::Status st = stub->ListEnvironments(&ctx, amld::v1::ListEnvironmentsRequest(), &resp);
  if (!st.ok()) {
    return ReportError(global, FromGrpcStatus(st, "list environments", conn->socket_path));
  }
  if (global.json()) {
    std::cout << ProtoToJson(resp) << std::endl;
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& e : resp.environments()) {
    rows.push_back({e.environment().name(), e.environment().version(),
                    e.curated() ? "curated" : "registered", Kind(e.environment())});
  }
  PrintTable(std::cout, {"NAME", "VERSION", "SOURCE", "KIND"}, rows);
  return kExitOk;
}

// `aml env show NAME[:VERSION]`: one version in full.
int RunEnvShow(const GlobalOptions& global, const std::string& spec) {
  auto conn = ConnectFromOptions(global);
  if (!conn.ok()) return ReportError(global, conn.status());
  auto stub = amld::v1::Environments::NewStub(conn->channel);
  amld::v1::GetEnvironmentRequest req;
  const size_t colon = spec.rfind(':');
  req.set_name(colon == std::string::npos ? spec : spec.substr(0, colon));
  if (colon != std::string::npos) req.set_version(spec.substr(colon + 1));
  grpc::ClientContext ctx;
  amld::v1::RegisteredEnvironment found;
  grpc::Status st = stub->GetEnvironment(&ctx, req, &found);
  if (!st.ok()) {
    return ReportError(global, FromGrpcStatus(st, "show environment " + spec, conn->socket_path));
  }
  if (global.json()) {
    std::cout << ProtoToJson(found) << std::endl;
    return kExitOk;
  }
  const amld::v1::Environment& env = found.environment();
  std::cout << "name:       " << env.name() << "\nversion:    " << env.version() << " (of "
            << absl::StrJoin(found.versions(), ", ")
            << ")\nsource:     " << (found.curated() ? "curated (ships with amld)" : "registered")
            << "\nkind:       " << Kind(env) << "\n";
  if (!env.python_version().empty()) std::cout << "python:     " << env.python_version() << "\n";
  for (const auto& c : env.conda_channels()) std::cout << "channel:    " << c << "\n";
  for (const auto& p : env.conda_packages()) std::cout << "conda:      " << p << "\n";
  for (const auto& p : env.pip_requirements()) std::cout << "pip:        " << p << "\n";
  for (const auto& [k, v] : env.environment_variables()) {
    std::cout << "variable:   " << k << "=" << v << "\n";
  }
  return kExitOk;
}

}  // namespace

void AddEnvCommands(CLI::App& app, CommandContext& ctx) {
  auto* env = app.add_subcommand("env", "registered and curated environments");
  env->require_subcommand(1);
  auto* list = env->add_subcommand("list", "list environments, latest version each");
  list->callback([&ctx] { ctx.action = [&ctx] { return RunEnvList(ctx.global); }; });
  auto name = std::make_shared<std::string>();
  auto* show = env->add_subcommand("show", "show one environment version (NAME or NAME:VERSION)");
  show->add_option("name", *name, "NAME or NAME:VERSION (default: the latest)")->required();
  show->callback(
      [&ctx, name] { ctx.action = [&ctx, name] { return RunEnvShow(ctx.global, *name); }; });
  AddEnvCreateCommand(*env, ctx);
  AddEnvCacheCommands(*env, ctx);
}

}  // namespace amld::client::commands
