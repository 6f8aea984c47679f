// `aml run logs`: print a run's log (stdout+stderr of the script), or follow
// it as it grows (-f). Safe to stop and rerun: nothing is lost or repeated.
#include <CLI/CLI.hpp>
#include <iostream>

#include "client/commands/command.h"
#include "client/follow.h"
#include "client/interrupt.h"

namespace amld::client::commands {
namespace {

struct LogsOptions {
  std::string run_id;
  bool follow = false;
  std::string path;
  int rank = -1;  // -1: not asked
  int64_t offset = 0;
};

int RunLogs(const GlobalOptions& global, const LogsOptions& o) {
  auto conn = ConnectFromOptions(global);
  if (!conn.ok()) return ReportError(global, conn.status());
  Interrupt interrupt;
  SigintInterrupt on_ctrl_c(&interrupt);
  FollowOptions follow;
  follow.interrupt = &interrupt;
  // A distributed run's process: its own log (daemon/executors/launch/).
  const std::string path =
      o.rank >= 0 ? "user_logs/std_log_process_" + std::to_string(o.rank) + ".txt" : o.path;
  auto end = FollowLogs(
      *conn, o.run_id, path, o.offset, o.follow,
      [](std::string_view data) { std::cout.write(data.data(), data.size()).flush(); }, follow);
  if (!end.ok()) {
    if (interrupt.triggered()) return kExitInterrupted;
    return ReportError(global, end.status());
  }
  return kExitOk;
}

}  // namespace

void AddRunLogsCommand(CLI::App& run, CommandContext& ctx) {
  auto o = std::make_shared<LogsOptions>();
  auto* cmd = run.add_subcommand("logs", "print a run's output (user_logs/std_log.txt)");
  cmd->add_option("run", o->run_id, "the run id")->required();
  cmd->add_flag("-f,--follow", o->follow, "keep printing as the log grows, until the run ends");
  auto* path = cmd->add_option("--path", o->path, "another log of the run, e.g. logs/train.log");
  cmd->add_option("--rank", o->rank,
                  "the log of one process of a distributed run (0 is the run's own log)")
      ->check(CLI::NonNegativeNumber)
      ->excludes(path);
  cmd->add_option("--offset", o->offset, "start at this byte of the log")
      ->check(CLI::NonNegativeNumber);
  cmd->callback([&ctx, o] { ctx.action = [&ctx, o] { return RunLogs(ctx.global, *o); }; });
}

}  // namespace amld::client::commands
