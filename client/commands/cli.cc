// The `aml` command tree and the conventions shared by every command.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>

#include "client/commands/command.h"
#include "client/commands/completion.h"
#include "client/grpc_status.h"
#include "base/workspace_paths.h"

namespace amld::client::commands {

std::filesystem::path GlobalOptions::SocketPath() const {
  if (!socket.empty()) return socket;
  if (found_socket_.empty()) found_socket_ = amld::base::ClientSocketPath();
  return found_socket_;
}

std::filesystem::path GlobalOptions::UserSocketPath() const {
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

size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// The candidate nearest to `typed`, when near enough to be a typo.
std::string Nearest(const std::string& typed, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_distance = std::max<size_t>(1, std::min<size_t>(2, typed.size() / 3)) + 1;
  for (const auto& c : candidates) {
    const size_t d = EditDistance(typed, c);
    const bool prefix = typed.size() >= 2 && c.rfind(typed, 0) == 0;  // "dow" → "download"
    if (d < best_distance || (prefix && best.empty())) {
      best = c;
      best_distance = prefix ? 0 : d;
    }
  }
  return best;
}

// A hint for a command line CLI11 refused: the nearest command to an
// unknown one, the nearest flag to an unknown flag, or `--` for a script's
// arguments given to `aml run submit`. Walks the tokens (as typed, before
// any "--") through the command tree; empty when it has nothing to add.
std::string Suggestion(const CLI::App& root, const std::vector<std::string>& tokens) {
  const CLI::App* app = &root;
  std::string path = "aml";
  bool positional_seen = false;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const std::string& t = tokens[i];
    if (t.size() > 1 && t[0] == '-') {
      const std::string name = t.substr(0, t.find('='));
      const CLI::Option* known = nullptr;
      std::vector<std::string> flags;
      for (const CLI::App* a = app; a != nullptr; a = a->get_parent()) {
        for (const CLI::Option* opt : a->get_options()) {
          for (const auto& l : opt->get_lnames()) {
            flags.push_back("--" + l);
            if (name == "--" + l) known = opt;
          }
          for (const auto& sn : opt->get_snames()) {
            if (name == "-" + sn) known = opt;
          }
        }
      }
      if (known != nullptr) {
        // Its value is the next token: not a command or a script.
        if (known->get_type_size() != 0 && t.find('=') == std::string::npos) ++i;
        continue;
      }
      if (path == "aml run submit" && positional_seen) {
        std::string rest;
        for (size_t j = i; j < tokens.size(); ++j) rest += " " + tokens[j];
        return "the script's own arguments go after --: aml run submit [options] SCRIPT --" + rest;
      }
      const std::string near = Nearest(name, flags);
      if (!near.empty()) return "did you mean " + near + "?";
      return "";
    }
    const CLI::App* sub = nullptr;
    std::vector<std::string> names;
    for (const CLI::App* s : const_cast<CLI::App*>(app)->get_subcommands({})) {
      names.push_back(s->get_name());
      if (s->get_name() == t) sub = s;
    }
    if (sub != nullptr) {
      app = sub;
      path += " " + t;
      continue;
    }
    if (!names.empty() && !positional_seen) {
      const std::string near = Nearest(t, names);
      if (!near.empty()) return "did you mean `" + path + " " + near + "`?";
      return "";
    }
    positional_seen = true;
  }
  return "";
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
  AddRunRestartCommand(*run, ctx);
  AddRunDeleteCommand(*run, ctx);
  AddRunCompareCommand(*run, ctx);

  auto* experiment = app.add_subcommand("experiment", "list experiments");
  experiment->require_subcommand(1);
  AddExperimentListCommand(*experiment, ctx);

  auto* daemon = app.add_subcommand("daemon", "start, stop and inspect a user-mode amld");
  daemon->require_subcommand(1);
  AddDaemonStartCommand(*daemon, ctx);
  AddDaemonStopCommand(*daemon, ctx);
  AddDaemonStatusCommand(*daemon, ctx);
  AddDaemonGcCommand(*daemon, ctx);

  auto* snapshot = app.add_subcommand("snapshot", "snapshot source folders into amld's store");
  snapshot->require_subcommand(1);
  AddSnapshotCreateCommand(*snapshot, ctx);
  AddSnapshotExplainCommand(*snapshot, ctx);
  AddSnapshotWatchCommand(*snapshot, ctx);
  AddSnapshotUnwatchCommand(*snapshot, ctx);
  AddSnapshotListCommand(*snapshot, ctx);

  auto* sweep = app.add_subcommand("sweep", "hyperparameter sweeps (HyperDrive runs)");
  sweep->require_subcommand(1);
  AddSweepSubmitCommand(*sweep, ctx);
  AddSweepShowCommand(*sweep, ctx);

  auto* compute = app.add_subcommand("compute", "define and list compute targets (SSH hosts, Slurm)");
  compute->require_subcommand(1);
  AddComputeCreateCommand(*compute, ctx);
  AddComputeListCommand(*compute, ctx);
  AddComputeShowCommand(*compute, ctx);
  AddComputeDeleteCommand(*compute, ctx);

  AddEnvCommands(app, ctx);
  AddModelCommands(app, ctx);
  AddUiCommand(app, ctx);
  AddTensorboardCommand(app, ctx);

  // Generated from the tree above (completion.h).
  std::string shell;
  auto* completion = app.add_subcommand(
      "completion", "print the shell completion script: eval \"$(aml completion bash)\"");
  completion->add_option("shell", shell, "bash or zsh")
      ->required()
      ->check(CLI::IsMember({"bash", "zsh"}));
  completion->callback([&] {
    ctx.action = [&] {
      std::cout << CompletionScript(shell);
      return kExitOk;
    };
  });
  app.add_subcommand("man", "print the aml(1) man page: aml man | man -l -")->callback([&] {
    ctx.action = [&] {
      std::cout << ManPage(app);
      return kExitOk;
    };
  });
  if (argc >= 2 && std::string_view(argv[1]) == "__complete") {
    if (const char* socket = std::getenv("AMLD_SOCKET")) ctx.global.socket = socket;
    return RunComplete(app, ctx.global, std::vector<std::string>(argv + 2, argv + argc),
                       std::cout);
  }

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
    std::vector<std::string> typed(argv + 1, argv + argc - ctx.passthrough_args.size() -
                                                 (ctx.has_passthrough ? 1 : 0));
    std::string message = e.what();
    if (const std::string hint = Suggestion(app, typed); !hint.empty()) {
      message += "; " + hint;
    }
    return ReportUsageError(ctx.global, message, CommandPath(app));
  }
  if (!ctx.action) return ReportUsageError(ctx.global, "no command given", CommandPath(app));
  if (ctx.has_passthrough && CommandPath(app) != "aml run submit") {
    return ReportUsageError(ctx.global, "unexpected arguments after --", CommandPath(app));
  }
  return ctx.action();
}

}  // namespace amld::client::commands
