// `aml daemon start`: run a user-mode amld in the background and return
// once it answers.
#include <CLI/CLI.hpp>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "client/commands/command.h"
#include "client/commands/options.h"
#include "client/commands/output.h"
#include "client/daemon_control.h"
#include "base/workspace_paths.h"

namespace amld::client::commands {
namespace {

struct StartOptions {
  std::string data_dir;
  std::string config;
  int max_concurrent_runs = 0;
  int cpus = 0;
  std::optional<std::string> gpus;
  int kill_grace_seconds = -1;
  std::optional<int> keep_finished_run_folders;
  int timeout_seconds = 30;
};

int RunDaemonStart(const GlobalOptions& global, const StartOptions& o) {
  DaemonStartOptions start;
  start.socket = global.UserSocketPath();
  start.data_dir =
      o.data_dir.empty() ? amld::base::DefaultDataDir() : std::filesystem::path(o.data_dir);
  if (!o.config.empty()) {
    start.extra_args.insert(start.extra_args.end(),
                            {"--config", std::filesystem::absolute(o.config).string()});
  }
  if (o.max_concurrent_runs > 0) {
    start.extra_args.insert(start.extra_args.end(),
                            {"--max-concurrent-runs", std::to_string(o.max_concurrent_runs)});
  }
  if (o.cpus > 0) start.extra_args.insert(start.extra_args.end(), {"--cpus", std::to_string(o.cpus)});
  // amld checks the list ("--gpus: ..." names what is wrong).
  if (o.gpus) start.extra_args.insert(start.extra_args.end(), {"--gpus", *o.gpus});
  if (o.kill_grace_seconds >= 0) {
    start.extra_args.insert(start.extra_args.end(),
                            {"--kill-grace-seconds", std::to_string(o.kill_grace_seconds)});
  }
  if (o.keep_finished_run_folders) {
    start.extra_args.insert(start.extra_args.end(), {"--keep-finished-run-folders",
                                                     std::to_string(*o.keep_finished_run_folders)});
  }
  start.timeout = absl::Seconds(o.timeout_seconds);
  auto result = StartDaemon(start);
  if (!result.ok()) return ReportError(global, result.status());
  const auto& info = result->info;
  if (global.json()) {
    nlohmann::json j = nlohmann::json::parse(ProtoToJson(info));
    j["already_running"] = result->already_running;
    j["log"] = result->log_path.string();
    std::cout << j.dump(2) << std::endl;
  } else if (result->already_running) {
    std::cout << "amld is already running at " << info.socket_path() << " (pid " << info.pid()
              << ", data dir " << info.data_dir() << ")" << std::endl;
  } else {
    std::cout << "amld started (pid " << info.pid() << ", socket " << start.socket.string()
              << ", data dir " << info.data_dir() << ", log " << result->log_path.string() << ")"
              << std::endl;
  }
  return kExitOk;
}

}  // namespace

void AddDaemonStartCommand(CLI::App& daemon, CommandContext& ctx) {
  auto o = std::make_shared<StartOptions>();
  auto* cmd = daemon.add_subcommand(
      "start", "start amld (found next to aml) in the background; returns when it answers");
  cmd->add_option("--data-dir", o->data_dir,
                  "data folder (default: $XDG_DATA_HOME/amld, else ~/.local/share/amld)")
      ->envname("AMLD_DATA_DIR");
  cmd->add_option("--config", o->config,
                  "amld's YAML config (default: amld.yaml in the data folder, if there)");
  cmd->add_option("--max-concurrent-runs", o->max_concurrent_runs,
                  "runs that may run at once (default: the daemon's)")
      ->check(AtLeast(1));
  cmd->add_option("--cpus", o->cpus, "CPU slots runs draw on (default: the daemon's)")
      ->check(AtLeast(1));
  cmd->add_option("--gpus", o->gpus,
                  "GPU ids runs may be given, e.g. 0,1 (\"\" for none; default: the daemon's)");
  cmd->add_option("--kill-grace-seconds", o->kill_grace_seconds,
                  "time between SIGTERM and SIGKILL on cancel, e.g. 10 or 1m (default: the "
                  "daemon's)")
      ->transform(Duration());
  cmd->add_option("--keep-finished-run-folders", o->keep_finished_run_folders,
                  "folders of finished runs kept, newest first (default: the daemon's, 20; "
                  "0: none, -1: all); their files stay stored either way")
      ->check(CLI::Range(-1, 1000000));
  cmd->add_option("--timeout", o->timeout_seconds, "how long to wait for amld to answer (30s)")
      ->transform(Duration())
      ->check(AtLeast(1));
  cmd->callback([&ctx, o] { ctx.action = [&ctx, o] { return RunDaemonStart(ctx.global, *o); }; });
}

}  // namespace amld::client::commands
