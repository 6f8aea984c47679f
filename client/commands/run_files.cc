// `aml run files`: the files a run stored (outputs/, logs/, user_logs/; with
// --all also system_logs/).
#include "client/run_files.h"

#include <CLI/CLI.hpp>
#include <iostream>

#include "amld/v1/runs.pb.h"
#include "base/file_names.h"
#include "client/commands/command.h"
#include "client/commands/output.h"

namespace amld::client::commands {
namespace {

struct FilesOptions {
  RunRef run;
  std::string prefix;
  bool all = false;
};

// The supervisor's and daemon's notes, shown with --all.
constexpr std::string_view kSystemLogs = "system_logs/";

int RunFiles(const GlobalOptions& global, const FilesOptions& o) {
  auto conn = ConnectFromOptions(global);
  if (!conn.ok()) return ReportError(global, conn.status());
  auto run = ResolveRun(*conn, o.run);
  if (!run.ok()) return ReportError(global, run.status());
  auto files = ListRunFiles(*conn, run->id(), o.prefix);
  if (!files.ok()) return ReportError(global, files.status());
  if (!o.all && !o.prefix.starts_with(kSystemLogs)) {
    std::erase_if(*files, [](const amld::v1::RunFile& f) {
      return std::string_view(f.path()).starts_with(kSystemLogs);
    });
  }
  if (global.json()) {
    amld::v1::ListFilesResponse resp;
    for (auto& f : *files) *resp.add_files() = std::move(f);
    std::cout << ProtoToJson(resp) << std::endl;
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& f : *files) {
    rows.push_back(
        {amld::base::EscapeName(RunFilePath(f)), HumanBytes(f.digest().size_bytes()), f.digest().hash().substr(0, 12)});
  }
  PrintTable(std::cout, {"PATH", "SIZE", "SHA256"}, rows);
  return kExitOk;
}

}  // namespace

void AddRunFilesCommand(CLI::App& run, CommandContext& ctx) {
  auto o = std::make_shared<FilesOptions>();
  auto* cmd = run.add_subcommand("files", "list the files a run stored");
  AddRunArgument(*cmd, o->run);
  cmd->add_option("--prefix", o->prefix, "only paths starting with this, e.g. outputs/");
  cmd->add_flag("--all", o->all,
                "also system_logs/ (the supervisor's log, malformed metric lines), stored when "
                "the run ends");
  cmd->callback([&ctx, o] { ctx.action = [&ctx, o] { return RunFiles(ctx.global, *o); }; });
}

}  // namespace amld::client::commands
