// `aml run download`: one stored file of a run (run.download_file), every
// file under a prefix or all of them (run.download_files), each verified
// against its digest before it is renamed into place (client/run_files.h).
#include <CLI/CLI.hpp>
#include <iostream>
#include <nlohmann/json.hpp>
#include <system_error>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "base/file_names.h"
#include "client/commands/command.h"
#include "client/commands/output.h"
#include "client/interrupt.h"
#include "client/run_files.h"

namespace amld::client::commands {
namespace {

struct DownloadOptions {
  RunRef run;
  std::string name;
  std::string prefix;
  bool all = false;
  bool force = false;
  std::string dest;
};

// -o for one file: a file path, or an existing folder (or one ending in /)
// to put it in.
std::filesystem::path SingleDestination(const DownloadOptions& o) {
  const std::string base = std::filesystem::path(o.name).filename().string();
  if (o.dest.empty()) return base.empty() ? "download" : base;
  std::error_code ec;
  if (o.dest.back() == '/' || std::filesystem::is_directory(o.dest, ec)) {
    return std::filesystem::path(o.dest) / base;
  }
  return o.dest;
}

int RunDownload(const GlobalOptions& global, const DownloadOptions& o) {
  const char* kCmd = "aml run download";
  const bool many = o.all || !o.prefix.empty();
  if (o.name.empty() == !many || (o.all && !o.prefix.empty())) {
    return ReportUsageError(global, "give one of: a file NAME, --prefix PREFIX, or --all", kCmd);
  }
  const bool to_stdout = o.dest == "-";
  if (to_stdout && many) {
    return ReportUsageError(global, "-o - writes one file to stdout; give a file NAME", kCmd);
  }
  if (to_stdout && global.json()) {
    return ReportUsageError(global, "-o - and --output json both write to stdout; drop one", kCmd);
  }
  auto conn = ConnectFromOptions(global);
  if (!conn.ok()) return ReportError(global, conn.status());
  auto run = ResolveRun(*conn, o.run);
  if (!run.ok()) return ReportError(global, run.status());
  const std::string& run_id = run->id();
  Interrupt interrupt;
  SigintInterrupt on_ctrl_c(&interrupt);
  nlohmann::json done = nlohmann::json::array();

  struct Item {
    std::string path;             // in the run
    DownloadDest dest;
    const amld::v1::Digest* digest = nullptr;  // from the listing, when listed
  };
  std::vector<Item> todo;
  std::vector<amld::v1::RunFile> listed;
  if (!many) {
    auto name = TypedRunFilePath(*conn, run_id, o.name);
    if (!name.ok()) return ReportError(global, name.status());
    DownloadOptions typed = o;
    typed.name = *name;
    Item item{*name, {SingleDestination(typed), to_stdout ? STDOUT_FILENO : -1, o.force}};
    if (to_stdout) item.dest.path = "stdout";
    todo.push_back(std::move(item));
  } else {
    auto files = ListRunFiles(*conn, run_id, o.prefix);
    if (!files.ok()) return ReportError(global, files.status());
    listed = *std::move(files);
    const std::filesystem::path dir = o.dest.empty() ? "." : o.dest;
    for (const auto& f : listed) {
      auto local = SafeJoin(dir, RunFilePath(f));
      if (!local.ok()) return ReportError(global, local.status());
      todo.push_back({RunFilePath(f), {*local, -1, o.force}, &f.digest()});
    }
    // Refuse before writing anything, rather than after half the files.
    for (const auto& item : todo) {
      if (auto st = CheckReplaceable(item.dest.path, o.force); !st.ok()) {
        return ReportError(global, st);
      }
    }
  }
  for (const auto& item : todo) {
    auto bytes = DownloadRunFile(*conn, run_id, item.path, item.dest, item.digest, &interrupt);
    if (!bytes.ok()) {
      if (interrupt.triggered()) return kExitInterrupted;
      return ReportError(global, bytes.status());
    }
    if (to_stdout) continue;
    // Names may hold any bytes: shown escaped, as `aml run files` lists them.
    const std::string dest_shown = amld::base::EscapeName(item.dest.path.string());
    done.push_back({{"path", amld::base::EscapeName(item.path)}, {"dest", dest_shown},
                    {"bytes", *bytes}});
    if (!global.json()) {
      std::cout << dest_shown << " (" << HumanBytes(*bytes) << ")\n";
    }
  }
  if (global.json()) {
    std::cout << nlohmann::json({{"run_id", run_id}, {"files", done}}).dump(2) << std::endl;
  } else if (todo.empty()) {
    std::cerr << "run " << run_id << " has no stored files"
              << (o.prefix.empty() ? std::string() : " under " + amld::base::EscapeName(o.prefix))
              << std::endl;
  }
  return kExitOk;
}

}  // namespace

void AddRunDownloadCommand(CLI::App& run, CommandContext& ctx) {
  auto o = std::make_shared<DownloadOptions>();
  auto* cmd = run.add_subcommand(
      "download",
      "download a run's file: aml run download RUN NAME [-o DEST|-], every file under a\n"
      "  prefix: aml run download RUN --prefix outputs/ [-o DIR] (kept under DIR/outputs/...),\n"
      "  or all of them: aml run download RUN --all -o DIR. Each file is checked against its\n"
      "  digest, written beside its destination and renamed into place; only regular files\n"
      "  are replaced (a symlink or device only with --force)");
  AddRunArgument(*cmd, o->run);
  cmd->add_option("name", o->name,
                  "the file, as `aml run files` lists it (a name shown with \\xHH escapes may "
                  "be typed that way)");
  cmd->add_option("--prefix", o->prefix, "download every file whose path starts with this");
  cmd->add_flag("--all", o->all, "download every stored file of the run");
  cmd->add_option("-o,--output-path", o->dest,
                  "where to write: a file or folder for NAME (default: ./<file name>; - for "
                  "stdout), a folder for --prefix and --all (default: .)");
  cmd->add_flag("--force", o->force,
                "replace a symlink, device, FIFO or socket at the destination (the entry "
                "itself, never what a link points to)");
  cmd->callback([&ctx, o] { ctx.action = [&ctx, o] { return RunDownload(ctx.global, *o); }; });
}

}  // namespace amld::client::commands
