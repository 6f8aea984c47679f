// The `aml` command tree and the conventions shared by every command.
#include <CLI/CLI.hpp>
#include <iostream>
#include <nlohmann/json.hpp>

#include "client/commands/command.h"
#include "client/grpc_status.h"
#include "base/workspace_paths.h"

namespace amld::client::commands {

std::filesystem::path GlobalOptions::SocketPath() const {
  if (!socket.empty()) return socket;
  return amld::base::DefaultSocketPath();
}

namespace {

// Errors stay one line even when a daemon message spans several.
std::string OneLine(absl::string_view message) {
  std::string s(message);
  for (size_t pos; (pos = s.find('\n')) != std::string::npos;) s.replace(pos, 1, "; ");
  return s;
}

}  // namespace

int ReportError(const GlobalOptions& global, const absl::Status& status) {
  std::cerr << "aml: " << OneLine(status.message()) << std::endl;
  if (global.json()) {
    nlohmann::json j = {{"error",
                         {{"code", std::string(StatusCodeName(status.code()))},
                          {"message", std::string(status.message())}}}};
    std::cout << j.dump(2) << std::endl;
  }
  return kExitFailure;
}

int ReportUsageError(const GlobalOptions& global, const std::string& message,
                     const std::string& command_path) {
  std::cerr << "aml: " << OneLine(message) << "; see `" << command_path << " --help`" << std::endl;
  if (global.json()) {
    nlohmann::json j = {{"error", {{"code", "USAGE"}, {"message", message}}}};
    std::cout << j.dump(2) << std::endl;
  }
  return kExitUsage;
}

absl::StatusOr<Connection> ConnectFromOptions(const GlobalOptions& global) {
  return Connect(global.SocketPath());
}

namespace {

// "aml run submit" for the subcommand that failed to parse.
std::string CommandPath(const CLI::App& app) {
  const CLI::App* deepest = &app;
  while (true) {
    auto selected = deepest->get_subcommands();
    if (selected.empty()) break;
    deepest = selected.front();
  }
  std::vector<std::string> names;
  for (const CLI::App* a = deepest; a != nullptr; a = a->get_parent()) {
    names.insert(names.begin(), a == &app ? "aml" : a->get_name());
  }
  std::string path;
  for (const auto& n : names) path += (path.empty() ? "" : " ") + n;
  return path;
}

}  // namespace

int RunCli(int argc, char** argv) {
  CommandContext ctx;
  CLI::App app{"aml: submit training runs to amld and follow, cancel and download them"};
  app.name("aml");
  // Global options may also follow the subcommand: `aml run list --output json`.
  app.fallthrough();
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("aml ") + AMLD_VERSION);
  app.add_option("--socket", ctx.global.socket,
                 "amld's socket (default: $XDG_RUNTIME_DIR/amld/amld.sock, else "
                 "/tmp/amld-$UID/amld.sock)")
      ->envname("AMLD_SOCKET");
  app.add_option("--output", ctx.global.output, "table (for people) or json (for scripts)")
      ->check(CLI::IsMember({"table", "json"}));

  auto* run = app.add_subcommand("run", "submit, follow, cancel and read runs");
  run->require_subcommand(1);
  AddRunSubmitCommand(*run, ctx);
  AddRunWaitCommand(*run, ctx);
  AddRunLogsCommand(*run, ctx);
  AddRunCancelCommand(*run, ctx);
  AddRunListCommand(*run, ctx);
  AddRunShowCommand(*run, ctx);
  AddRunFilesCommand(*run, ctx);
  AddRunDownloadCommand(*run, ctx);
  AddRunMetricsCommand(*run, ctx);

  auto* experiment = app.add_subcommand("experiment", "list experiments");
  experiment->require_subcommand(1);
  AddExperimentListCommand(*experiment, ctx);

  auto* daemon = app.add_subcommand("daemon", "start, stop and inspect a user-mode amld");
  daemon->require_subcommand(1);
  AddDaemonStartCommand(*daemon, ctx);
  AddDaemonStopCommand(*daemon, ctx);
  AddDaemonStatusCommand(*daemon, ctx);

  auto* snapshot = app.add_subcommand("snapshot", "snapshot source folders into amld's store");
  snapshot->require_subcommand(1);
  AddSnapshotCreateCommand(*snapshot, ctx);
  AddSnapshotExplainCommand(*snapshot, ctx);
  AddSnapshotWatchCommand(*snapshot, ctx);
  AddSnapshotUnwatchCommand(*snapshot, ctx);
  AddSnapshotListCommand(*snapshot, ctx);

  auto* compute = app.add_subcommand("compute", "define and list compute targets (SSH hosts, Slurm)");
  compute->require_subcommand(1);
  AddComputeCreateCommand(*compute, ctx);
  AddComputeListCommand(*compute, ctx);
  AddComputeShowCommand(*compute, ctx);
  AddComputeDeleteCommand(*compute, ctx);

  AddEnvCommands(app, ctx);

  // Split off "-- ARGS..." before parsing (see CommandContext).
  std::vector<std::string> args;
  for (int i = argc - 1; i >= 1; --i) args.emplace_back(argv[i]);  // CLI11 wants them reversed
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--") {
      ctx.has_passthrough = true;
      ctx.passthrough_args.assign(argv + i + 1, argv + argc);
      args.erase(args.begin(), args.begin() + (argc - i));
      break;
    }
  }
  try {
    app.parse(args);
  } catch (const CLI::Success& e) {  // --help, --version
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return ReportUsageError(ctx.global, e.what(), CommandPath(app));
  }
  if (!ctx.action) return ReportUsageError(ctx.global, "no command given", CommandPath(app));
  if (ctx.has_passthrough && CommandPath(app) != "aml run submit") {
    return ReportUsageError(ctx.global, "unexpected arguments after --", CommandPath(app));
  }
  return ctx.action();
}

}  // namespace amld::client::commands
