// `aml snapshot create [DIR]`: snapshot a source folder into the daemon's
// CAS exactly as `aml run submit` does (same ignore rules, same upload of
// only the missing blobs, same git info) and print the root digest, the git
// state and the upload stats. The Python SDK's experiment.submit runs this
// and then submits the run itself with the full RunConfig, so snapshots have
// one implementation.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "client/commands/command.h"
#include "client/commands/output.h"
#include "client/commands/source_snapshot.h"

namespace amld::client::commands {
namespace {

struct SnapshotCreateOptions {
  std::filesystem::path source_dir = ".";
  SnapshotLimits limits;
};

std::string GitSummary(const amld::v1::GitInfo& g) {
  std::string s = g.repository_uri().empty() ? "(no origin)" : g.repository_uri();
  if (!g.branch().empty()) absl::StrAppend(&s, " branch ", g.branch());
  absl::StrAppend(&s, " commit ", g.commit());
  if (g.dirty()) absl::StrAppend(&s, " (dirty)");
  return s;
}

void PrintText(const SourceSnapshot& source, const UploadStats& stats) {
  std::cout << "snapshot  " << source.snapshot.root.ToString() << '\n'
            << "git       " << (source.git ? GitSummary(*source.git) : "-") << '\n'
            << "uploaded  " << stats.files_uploaded << " of " << stats.files_total << " files and "
            << stats.directories_uploaded << " of " << stats.directories_total << " directories ("
            << HumanBytes(stats.bytes_uploaded) << " of " << HumanBytes(stats.bytes_total) << ")"
            << std::endl;
}

// Field names follow amld.v1's JSON mapping, so a client can parse
// snapshot_root and git straight into Digest and GitInfo messages.
void PrintJson(const std::filesystem::path& source_dir, const SourceSnapshot& source,
               const UploadStats& stats) {
  std::error_code ec;
  std::filesystem::path abs = std::filesystem::absolute(source_dir, ec).lexically_normal();
  nlohmann::json j = {
      {"source_dir", ec ? source_dir.string() : abs.string()},
      {"snapshot_root",
       nlohmann::json::parse(ProtoToJson(amld::storage::ToProto(source.snapshot.root)))},
      {"git", source.git ? nlohmann::json::parse(ProtoToJson(*source.git)) : nlohmann::json()},
      {"upload", UploadStatsJson(stats)},
      {"snapshot_source", SnapshotSourceJson(source)}};
  std::cout << j.dump(2) << std::endl;
}

int RunSnapshotCreate(const GlobalOptions& global, const SnapshotCreateOptions& o) {
  auto source = HashSourceFolder(global, o.source_dir, o.limits);
  if (!source.ok()) return ReportError(global, source.status());
  auto stats = UploadSourceSnapshot(*source, ::isatty(STDERR_FILENO) != 0);
  if (!stats.ok()) return ReportError(global, stats.status());
  if (global.json()) {
    PrintJson(o.source_dir, *source, *stats);
  } else {
    PrintText(*source, *stats);
  }
  return kExitOk;
}

}  // namespace

void AddSnapshotCreateCommand(CLI::App& snapshot, CommandContext& ctx) {
  auto o = std::make_shared<SnapshotCreateOptions>();
  auto* cmd = snapshot.add_subcommand(
      "create",
      "snapshot a source folder into amld's store as `aml run submit` does (ignore rules, "
      "only missing files uploaded); prints the root digest, git info and upload stats");
  cmd->add_option("dir", o->source_dir, "the source folder (default: .)");
  AddSnapshotLimitOptions(*cmd, o->limits);
  cmd->callback(
      [&ctx, o] { ctx.action = [&ctx, o] { return RunSnapshotCreate(ctx.global, *o); }; });
}

}  // namespace amld::client::commands
