// `aml run download`: one stored file of a run (run.download_file), or every
// file under a prefix (run.download_files), verified against its digest.
#include <CLI/CLI.hpp>
#include <iostream>
#include <nlohmann/json.hpp>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "client/commands/command.h"
#include "client/commands/output.h"
#include "client/interrupt.h"
#include "client/run_files.h"
#include "storage/digest.h"

namespace amld::client::commands {
namespace {

struct DownloadOptions {
  std::string run_id;
  std::string name;
  std::string prefix;
  std::string dest;
};

// -o for one file: a file path, or an existing folder to put it in.
std::filesystem::path SingleDestination(const DownloadOptions& o) {
  const std::string base = std::filesystem::path(o.name).filename().string();
  if (o.dest.empty()) return base.empty() ? "download" : base;
  std::error_code ec;
  if (std::filesystem::is_directory(o.dest, ec) || o.dest.back() == '/') {
    return std::filesystem::path(o.dest) / base;
  }
  return o.dest;
}

absl::Status VerifyDigest(const std::filesystem::path& file, const amld::v1::Digest& expected) {
  auto got = amld::storage::DigestOfFile(file);
  if (!got.ok()) return got.status();
  if (got->hash != expected.hash() || got->size != expected.size_bytes()) {
    return absl::DataLossError(absl::StrCat("downloaded ", file.string(),
                                            " does not match its digest: download it again"));
  }
  return absl::OkStatus();
}

int RunDownload(const GlobalOptions& global, const DownloadOptions& o) {
  if (o.name.empty() == o.prefix.empty()) {
    return ReportUsageError(global, "give either a file NAME or --prefix PREFIX",
                            "aml run download");
  }
  auto conn = ConnectFromOptions(global);
  if (!conn.ok()) return ReportError(global, conn.status());
  Interrupt interrupt;
  SigintInterrupt on_ctrl_c(&interrupt);
  nlohmann::json done = nlohmann::json::array();

  std::vector<std::pair<std::string, std::filesystem::path>> todo;  // run path, local path
  std::vector<amld::v1::RunFile> listed;
  if (!o.name.empty()) {
    todo.emplace_back(o.name, SingleDestination(o));
  } else {
    auto files = ListRunFiles(*conn, o.run_id, o.prefix);
    if (!files.ok()) return ReportError(global, files.status());
    listed = *std::move(files);
    const std::filesystem::path dir = o.dest.empty() ? "." : o.dest;
    for (const auto& f : listed) {
      auto local = SafeJoin(dir, f.path());
      if (!local.ok()) return ReportError(global, local.status());
      todo.emplace_back(f.path(), *local);
    }
  }
  for (size_t i = 0; i < todo.size(); ++i) {
    const auto& [path, local] = todo[i];
    auto bytes = DownloadRunFile(*conn, o.run_id, path, local, &interrupt);
    if (!bytes.ok()) {
      if (interrupt.triggered()) return kExitInterrupted;
      return ReportError(global, bytes.status());
    }
    if (!listed.empty()) {
      if (auto st = VerifyDigest(local, listed[i].digest()); !st.ok()) {
        return ReportError(global, st);
      }
    }
    done.push_back({{"path", path}, {"dest", local.string()}, {"bytes", *bytes}});
    if (!global.json()) std::cout << local.string() << " (" << HumanBytes(*bytes) << ")\n";
  }
  if (global.json()) {
    std::cout << nlohmann::json({{"run_id", o.run_id}, {"files", done}}).dump(2) << std::endl;
  } else if (todo.empty()) {
    std::cerr << "run " << o.run_id << " has no files under " << o.prefix << std::endl;
  }
  return kExitOk;
}

}  // namespace

void AddRunDownloadCommand(CLI::App& run, CommandContext& ctx) {
  auto o = std::make_shared<DownloadOptions>();
  auto* cmd = run.add_subcommand(
      "download",
      "download a run's file: aml run download RUN NAME [-o DEST], or every file under a\n"
      "  prefix: aml run download RUN --prefix outputs/ [-o DIR] (kept under DIR/outputs/...)");
  cmd->add_option("run", o->run_id, "the run id")->required();
  cmd->add_option("name", o->name, "the file, as `aml run files` lists it");
  cmd->add_option("--prefix", o->prefix, "download every file whose path starts with this");
  cmd->add_option("-o,--output-path", o->dest,
                  "where to write: a file or folder for NAME (default: ./<file name>), a "
                  "folder for --prefix (default: .)");
  cmd->callback([&ctx, o] { ctx.action = [&ctx, o] { return RunDownload(ctx.global, *o); }; });
}

}  // namespace amld::client::commands
