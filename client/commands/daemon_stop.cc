// `aml daemon stop`: SIGTERM to the daemon, then wait until it is gone.
// Runs already started keep running under their supervisors.
#include <CLI/CLI.hpp>
#include <iostream>
#include <nlohmann/json.hpp>

#include "client/commands/command.h"
#include "client/commands/options.h"
#include "client/daemon_control.h"

namespace amld::client::commands {
namespace {

int RunDaemonStop(const GlobalOptions& global, int timeout_seconds) {
  auto info = StopDaemon(global.UserSocketPath(), absl::Seconds(timeout_seconds));
  if (!info.ok()) {
    if (absl::IsNotFound(info.status())) {
      // Stopping what is not running is not a failure: the wanted state holds.
      if (global.json()) {
        std::cout << nlohmann::json({{"stopped", false}, {"running", false}}).dump(2) << std::endl;
      } else {
        std::cerr << "aml: " << info.status().message() << "; nothing to stop" << std::endl;
      }
      return kExitOk;
    }
    return ReportError(global, info.status());
  }
  if (global.json()) {
    std::cout
        << nlohmann::json({{"stopped", true}, {"running", false}, {"pid", info->pid()}}).dump(2)
        << std::endl;
  } else {
    std::cout << "amld stopped (pid " << info->pid() << ")" << std::endl;
  }
  return kExitOk;
}

}  // namespace

void AddDaemonStopCommand(CLI::App& daemon, CommandContext& ctx) {
  auto timeout = std::make_shared<int>(30);
  auto* cmd = daemon.add_subcommand("stop", "stop amld and wait until it has exited");
  cmd->add_option("--timeout", *timeout, "how long to wait for it to exit (30s)")
      ->transform(Duration())
      ->check(AtLeast(1));
  cmd->callback([&ctx, timeout] {
    ctx.action = [&ctx, timeout] { return RunDaemonStop(ctx.global, *timeout); };
  });
}

}  // namespace amld::client::commands
