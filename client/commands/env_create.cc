// `aml env create -f env.yml`: register an environment from Azure ML's
// environment YAML:
//
//   $schema: https://azuremlschemas.azureedge.net/latest/environment.schema.json
//   name: train-env
//   version: 2            (optional; amld numbers versions 1, 2, ...: a given
//                          version must be an existing one with the same
//                          spec, or the next one)
//   description: ...      (read, not kept)
//   conda_file: conda.yml (relative to the YAML file)
//
// image and build are refused (amld runs no containers yet); os_type must
// be linux. Registering the spec of an existing version returns that version.
#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "amld/v1/environments.grpc.pb.h"
#include "base/status_macros.h"
#include "client/commands/command.h"
#include "client/commands/job_submit.h"
#include "client/commands/output.h"
#include "client/commands/yaml_reader.h"
#include "client/grpc_status.h"

namespace amld::client::commands {
namespace {

struct EnvironmentFile {
  amld::v1::Environment env;
  std::string version;  // as the file gives it; empty when absent
};

absl::StatusOr<EnvironmentFile> ParseEnvironmentFile(const std::string& text,
                                                     const std::filesystem::path& file) {
  YamlReader r(file);
  AMLD_ASSIGN_OR_RETURN(YAML::Node root, r.Load(text));
  EnvironmentFile out;
  std::string conda_file, os_type;
  AMLD_RETURN_IF_ERROR(r.ForEachKey(
      root, root, "",
      {{"$schema", YamlReader::Ignore()},
       {"description", YamlReader::Ignore()},
       {"tags", YamlReader::Ignore()},
       {"name", r.TextInto(out.env.mutable_name(), "name")},
       {"version", r.TextInto(&out.version, "version")},
       {"conda_file", r.TextInto(&conda_file, "conda_file")},
       {"os_type", r.TextInto(&os_type, "os_type")},
       {"image", RefuseImageKey(r, "image")},
       {"build", RefuseImageKey(r, "build")}}));
  if (out.env.name().empty()) return r.Error(root, "name is required");
  if (!os_type.empty() && absl::AsciiStrToLower(os_type) != "linux") {
    return r.Error(root["os_type"], "amld runs on Linux only: os_type must be linux");
  }
  if (conda_file.empty()) return r.Error(root, "conda_file is required (the packages)");
  AMLD_RETURN_IF_ERROR(ReadCondaFile(r.Resolve(conda_file), out.env));
  return out;
}

int RunEnvCreate(const GlobalOptions& global, const std::string& path) {
  absl::StatusOr<std::string> text = ReadJobFile(path);
  if (!text.ok()) return ReportError(global, text.status());
  absl::StatusOr<EnvironmentFile> file = ParseEnvironmentFile(*text, path);
  if (!file.ok()) return ReportError(global, file.status());
  auto conn = ConnectFromOptions(global);
  if (!conn.ok()) return ReportError(global, conn.status());
  auto stub = amld::v1::Environments::NewStub(conn->channel);
  const std::string& name = file->env.name();
  if (!file->version.empty()) {
    // A version the file names must be the one the daemon would give it.
    grpc::ClientContext ctx;
    amld::v1::GetEnvironmentRequest req;
    req.set_name(name);
    amld::v1::RegisteredEnvironment latest;
    grpc::Status st = stub->GetEnvironment(&ctx, req, &latest);
    int64_t next = 1;
    if (st.ok()) {
      absl::SimpleAtoi(latest.environment().version(), &next);
      ++next;
    } else if (st.error_code() != grpc::StatusCode::NOT_FOUND) {
      return ReportError(global, FromGrpcStatus(st, "get environment " + name, conn->socket_path));
    }
    int64_t asked = 0;
    const bool existing =
        st.ok() && absl::SimpleAtoi(file->version, &asked) && asked >= 1 && asked < next;
    if (!existing && file->version != absl::StrCat(next)) {
      return ReportError(global, absl::InvalidArgumentError(absl::StrCat(
                                     path, ": version ", file->version, " of ", name,
                                     ": amld numbers versions 1, 2, ...; the next is ", next,
                                     ": set version: ", next, " or leave version out")));
    }
  }
  grpc::ClientContext ctx;
  amld::v1::RegisterEnvironmentRequest req;
  *req.mutable_environment() = file->env;
  amld::v1::RegisteredEnvironment registered;
  grpc::Status st = stub->RegisterEnvironment(&ctx, req, &registered);
  if (!st.ok()) {
    return ReportError(global, FromGrpcStatus(st, "register environment " + name,
                                              conn->socket_path));
  }
  if (!file->version.empty() && registered.environment().version() != file->version) {
    return ReportError(global, absl::FailedPreconditionError(absl::StrCat(
                                   path, ": version ", file->version, " of ", name,
                                   " holds another spec; this spec is version ",
                                   registered.environment().version())));
  }
  if (global.json()) {
    std::cout << ProtoToJson(registered) << std::endl;
  } else {
    std::cout << "environment " << name << ":" << registered.environment().version()
              << " registered; use it with environment: azureml:" << name << ":"
              << registered.environment().version() << std::endl;
  }
  return kExitOk;
}

}  // namespace

void AddEnvCreateCommand(CLI::App& env, CommandContext& ctx) {
  auto file = std::make_shared<std::string>();
  auto* create = env.add_subcommand(
      "create", "register an environment from an Azure ML environment YAML (name, conda_file)");
  create->add_option("-f,--file", *file, "the environment YAML")->required();
  create->callback(
      [&ctx, file] { ctx.action = [&ctx, file] { return RunEnvCreate(ctx.global, *file); }; });
}

}  // namespace amld::client::commands
