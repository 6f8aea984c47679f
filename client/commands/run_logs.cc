// `aml run logs`: print a run's log (stdout+stderr of the script), its last
// lines (--tail N), or follow it as it grows (-f). Safe to stop and rerun:
// nothing is lost or repeated; -f started while the daemon is down waits for
// it (up to the reconnect timeout of client/follow.h). A follow ends with the
// run's final status line and exits 1 unless the run COMPLETED, as `aml run
// wait` does.
#include <CLI/CLI.hpp>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "client/commands/command.h"
#include "client/commands/options.h"
#include "client/commands/output.h"
#include "client/follow.h"
#include "client/interrupt.h"

namespace amld::client::commands {
namespace {

// One line of JSON; a log's bytes that are not UTF-8 become U+FFFD.
std::string DumpJson(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

struct LogsOptions {
  RunRef run;
  bool follow = false;
  std::string path;
  int rank = -1;  // -1: not asked
  int64_t offset = 0;
  std::optional<int> tail;
};

int RunLogs(const GlobalOptions& global, const LogsOptions& o) {
  Interrupt interrupt;
  SigintInterrupt on_ctrl_c(&interrupt);
  FollowOptions follow;
  follow.interrupt = &interrupt;
  auto conn = o.follow ? ConnectForFollowing(global, follow) : ConnectFromOptions(global);
  if (!conn.ok()) {
    if (interrupt.triggered()) return kExitInterrupted;
    return ReportError(global, conn.status());
  }
  auto run = ResolveRun(*conn, o.run);
  if (!run.ok()) return ReportError(global, run.status());
  // A distributed run's process: its own log (daemon/executors/launch/).
  const std::string path =
      o.rank >= 0 ? "user_logs/std_log_process_" + std::to_string(o.rank) + ".txt" : o.path;
  // --output json: one object with the text read; with -f, a JSON line per
  // piece as it comes, then one with the run's final state.
  int64_t offset = o.offset;
  std::string collected;
  const std::string log_path = path.empty() ? "user_logs/std_log.txt" : path;
  auto write = [&](std::string_view data) {
    if (!global.json()) {
      std::cout.write(data.data(), data.size()).flush();
    } else if (o.follow) {
      std::cout << DumpJson({{"run_id", run->id()}, {"path", log_path}, {"offset", offset},
                             {"text", std::string(data)}})
                << std::endl;
    } else {
      collected.append(data);
    }
    offset += static_cast<int64_t>(data.size());
  };
  if (o.tail) {
    auto tail = ReadLogTail(*conn, run->id(), path, *o.tail, follow);
    if (!tail.ok()) {
      if (interrupt.triggered()) return kExitInterrupted;
      return ReportError(global, tail.status());
    }
    offset = tail->end_offset - static_cast<int64_t>(tail->text.size());
    write(tail->text);
  }
  if (!o.tail || o.follow) {
    auto end = FollowLogs(*conn, run->id(), path, offset, o.follow, write, follow);
    if (!end.ok()) {
      if (interrupt.triggered()) return kExitInterrupted;
      return ReportError(global, end.status());
    }
  }
  if (!o.follow) {
    if (global.json()) {
      std::cout << DumpJson({{"run_id", run->id()},
                             {"path", log_path},
                             {"start_offset", offset - static_cast<int64_t>(collected.size())},
                             {"end_offset", offset},
                             {"text", collected}})
                << std::endl;
    }
    return kExitOk;
  }
  // The log is complete once the run is terminal: say how it ended.
  auto final_state = ResolveRun(*conn, {run->id(), ""});
  if (!final_state.ok()) return ReportError(global, final_state.status());
  std::cerr << FinalNote(*final_state) << std::endl;
  if (global.json()) {
    std::cout << DumpJson({{"run", nlohmann::json::parse(ProtoToJson(*final_state))}})
              << std::endl;
  }
  return ExitCodeFor(*final_state);
}

}  // namespace

void AddRunLogsCommand(CLI::App& run, CommandContext& ctx) {
  auto o = std::make_shared<LogsOptions>();
  auto* cmd = run.add_subcommand(
      "logs",
      "print a run's output (user_logs/std_log.txt); with -f follow it and exit 1 unless the "
      "run COMPLETED");
  AddRunArgument(*cmd, o->run);
  cmd->add_flag("-f,--follow", o->follow, "keep printing as the log grows, until the run ends");
  auto* path = cmd->add_option("--path", o->path, "another log of the run, e.g. logs/train.log");
  cmd->add_option("--rank", o->rank,
                  "the log of one process of a distributed run (0 is the run's own log)")
      ->check(AtLeast(0))
      ->excludes(path);
  auto* offset = cmd->add_option("--offset", o->offset, "start at this byte of the log")
                     ->check(AtLeast(0));
  cmd->add_option("-n,--tail", o->tail, "only the last N lines (then follow, with -f)")
      ->check(AtLeast(0))
      ->excludes(offset);
  cmd->callback([&ctx, o] { ctx.action = [&ctx, o] { return RunLogs(ctx.global, *o); }; });
}

}  // namespace amld::client::commands
