// `aml model list|show|download`: registered model versions (service Models).
#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "amld/v1/models.grpc.pb.h"
#include "client/commands/command.h"
#include "client/commands/output.h"
#include "client/grpc_status.h"
#include "client/run_files.h"

namespace amld::client::commands {
namespace {

namespace pb = amld::v1;

int64_t TotalBytes(const pb::Model& m) {
  int64_t total = 0;
  for (const auto& f : m.files()) total += f.digest().size_bytes();
  return total;
}

int RunModelList(const GlobalOptions& global, const std::string& name) {
  auto conn = ConnectFromOptions(global);
  if (!conn.ok()) return ReportError(global, conn.status());
  auto stub = pb::Models::NewStub(conn->channel);
  grpc::ClientContext ctx;
  pb::ListModelsRequest req;
  req.set_name(name);
  pb::ListModelsResponse resp;
  grpc::Status st = stub->ListModels(&ctx, req, &resp);
  if (!st.ok()) return ReportError(global, FromGrpcStatus(st, "list models", conn->socket_path));
  if (global.json()) {
    std::cout << ProtoToJson(resp) << std::endl;
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& m : resp.models()) {
    rows.push_back({m.name(), absl::StrCat(m.version()), FormatTimestamp(m.created_time()),
                    absl::StrCat(m.files_size()), HumanBytes(TotalBytes(m)),
                    m.run_id().empty() ? "-" : m.run_id()});
  }
  PrintTable(std::cout, {"NAME", "VERSION", "REGISTERED", "FILES", "SIZE", "RUN"}, rows);
  return kExitOk;
}

// NAME or NAME:VERSION → GetModel.
absl::StatusOr<pb::Model> GetModel(const Connection& conn, const std::string& spec) {
  pb::GetModelRequest req;
  const size_t colon = spec.rfind(':');
  req.set_name(colon == std::string::npos ? spec : spec.substr(0, colon));
  if (colon != std::string::npos) {
    int64_t version = 0;
    if (!absl::SimpleAtoi(spec.substr(colon + 1), &version) || version < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("\"", spec, "\": give NAME or NAME:VERSION with VERSION 1, 2, ..."));
    }
    req.set_version(version);
  }
  auto stub = pb::Models::NewStub(conn.channel);
  grpc::ClientContext ctx;
  pb::Model model;
  grpc::Status st = stub->GetModel(&ctx, req, &model);
  if (!st.ok()) return FromGrpcStatus(st, "look up model " + spec, conn.socket_path);
  return model;
}

int RunModelShow(const GlobalOptions& global, const std::string& spec) {
  auto conn = ConnectFromOptions(global);
  if (!conn.ok()) return ReportError(global, conn.status());
  absl::StatusOr<pb::Model> m = GetModel(*conn, spec);
  if (!m.ok()) return ReportError(global, m.status());
  if (global.json()) {
    std::cout << ProtoToJson(*m) << std::endl;
    return kExitOk;
  }
  std::cout << "name:        " << m->name() << "\nversion:     " << m->version()
            << "\nregistered:  " << FormatTimestamp(m->created_time())
            << "\nrun:         " << (m->run_id().empty() ? "-" : m->run_id())
            << "\nfrom:        " << m->source_path() << "\n";
  if (!m->description().empty()) std::cout << "description: " << m->description() << "\n";
  for (const auto& [k, v] : m->tags()) std::cout << "tag:         " << k << "=" << v << "\n";
  for (const auto& [k, v] : m->properties()) {
    std::cout << "property:    " << k << "=" << v << "\n";
  }
  for (const auto& f : m->files()) {
    std::cout << "file:        " << f.path() << " (" << HumanBytes(f.digest().size_bytes())
              << ")\n";
  }
  return kExitOk;
}

int RunModelDownload(const GlobalOptions& global, const std::string& spec,
                     const std::string& dir, bool force) {
  auto conn = ConnectFromOptions(global);
  if (!conn.ok()) return ReportError(global, conn.status());
  absl::StatusOr<pb::Model> m = GetModel(*conn, spec);
  if (!m.ok()) return ReportError(global, m.status());
  // As azureml's model.download: a one-file model lands in DIR, a folder
  // model in DIR/<the registered folder's name>.
  std::filesystem::path root = dir;
  if (!m->single_file()) {
    std::string base = std::filesystem::path(m->source_path()).filename().string();
    root /= base.empty() ? m->name() : base;
  }
  std::vector<std::string> written;
  for (const auto& f : m->files()) {
    absl::StatusOr<std::filesystem::path> dest = SafeJoin(root, f.path());
    if (!dest.ok()) return ReportError(global, dest.status());
    if (!force && std::filesystem::exists(*dest)) {
      return ReportError(global, absl::AlreadyExistsError(absl::StrCat(
                                     dest->string(), " exists; pass --force to replace it")));
    }
    absl::StatusOr<int64_t> got = DownloadModelFile(*conn, *m, f, DownloadDest{*dest, -1, force});
    if (!got.ok()) return ReportError(global, got.status());
    written.push_back(dest->string());
  }
  if (global.json()) {  // the model version written, as `aml model show` gives it
    std::cout << ProtoToJson(*m) << std::endl;
    return kExitOk;
  }
  for (const std::string& w : written) std::cout << w << "\n";
  return kExitOk;
}

}  // namespace

void AddModelCommands(CLI::App& app, CommandContext& ctx) {
  auto* model = app.add_subcommand("model", "registered models (versioned, from runs or files)");
  model->require_subcommand(1);
  auto name = std::make_shared<std::string>();
  auto* list = model->add_subcommand("list", "list model versions, newest first");
  list->add_option("name", *name, "only versions of this model");
  list->callback([&ctx, name] { ctx.action = [&ctx, name] { return RunModelList(ctx.global, *name); }; });
  auto spec = std::make_shared<std::string>();
  auto* show = model->add_subcommand("show", "show one model version (NAME or NAME:VERSION)");
  show->add_option("model", *spec, "NAME or NAME:VERSION (default: the latest)")->required();
  show->callback(
      [&ctx, spec] { ctx.action = [&ctx, spec] { return RunModelShow(ctx.global, *spec); }; });
  auto dl_spec = std::make_shared<std::string>();
  auto dir = std::make_shared<std::string>(".");
  auto force = std::make_shared<bool>(false);
  auto* download = model->add_subcommand("download", "write a model version's files");
  download->add_option("model", *dl_spec, "NAME or NAME:VERSION (default: the latest)")
      ->required();
  download->add_option("-d,--dir", *dir, "the folder to write into (default: .)");
  download->add_flag("--force", *force, "replace existing files");
  download->callback([&ctx, dl_spec, dir, force] {
    ctx.action = [&ctx, dl_spec, dir, force] {
      return RunModelDownload(ctx.global, *dl_spec, *dir, *force);
    };
  });
}

}  // namespace amld::client::commands
