// `aml run wait`: follow a run to its end (run.wait_for_completion), with
// its output when asked; reattachable at any time.
#include <CLI/CLI.hpp>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "client/commands/command.h"
#include "client/commands/output.h"
#include "client/follow.h"
#include "client/interrupt.h"

namespace amld::client::commands {

WaitOutcome FollowUntilDone(const GlobalOptions& global, const Connection& conn,
                            const std::string& run_id, bool show_output) {
  Interrupt interrupt;
  SigintInterrupt on_ctrl_c(&interrupt);
  FollowOptions follow;
  follow.interrupt = &interrupt;
  WaitOutcome outcome;
  auto interrupted = [&] {
    std::cerr << "\nrun " << run_id << " is still running; reattach with: aml run wait " << run_id
              << " --show-output" << std::endl;
    outcome.exit_code = kExitInterrupted;
    return outcome;
  };

  if (show_output) {
    std::ostream& out = global.json() ? std::cerr : std::cout;
    auto end = FollowLogs(
        conn, run_id, "", 0, /*follow=*/true,
        [&out](std::string_view data) { out.write(data.data(), data.size()).flush(); }, follow);
    if (!end.ok()) {
      if (interrupt.triggered()) return interrupted();
      outcome.error = end.status();
      return outcome;
    }
  }
  auto on_change = [&](const amld::v1::Run& run) {
    if (!show_output && !IsTerminal(run.status())) {
      std::cerr << "run " << run_id << ": " << StatusName(run.status()) << std::endl;
    }
  };
  auto run = FollowRun(conn, run_id, on_change, follow);
  if (!run.ok()) {
    if (interrupt.triggered()) return interrupted();
    outcome.error = run.status();
    return outcome;
  }
  std::cerr << FinalNote(*run) << std::endl;
  outcome.exit_code = ExitCodeFor(*run);
  outcome.run = *std::move(run);
  return outcome;
}

absl::StatusOr<Connection> ConnectForFollowing(const GlobalOptions& global,
                                               const FollowOptions& follow) {
  return ConnectWhenUp(global.SocketPath(), follow, [&follow](const absl::Status& down) {
    std::cerr << "aml: " << down.message() << "\nwaiting for amld for up to "
              << HumanDuration(follow.reconnect_timeout) << " (Ctrl-C stops)" << std::endl;
  });
}

namespace {

struct WaitOptions {
  RunRef run;
  bool show_output = false;
};

int RunWait(const GlobalOptions& global, const WaitOptions& o) {
  absl::StatusOr<Connection> conn;
  {
    Interrupt interrupt;
    SigintInterrupt on_ctrl_c(&interrupt);
    FollowOptions follow;
    follow.interrupt = &interrupt;
    conn = ConnectForFollowing(global, follow);
    if (!conn.ok() && interrupt.triggered()) return kExitInterrupted;
  }
  if (!conn.ok()) return ReportError(global, conn.status());
  auto run = ResolveRun(*conn, o.run);
  if (!run.ok()) return ReportError(global, run.status());
  WaitOutcome outcome = FollowUntilDone(global, *conn, run->id(), o.show_output);
  if (!outcome.error.ok()) return ReportError(global, outcome.error);
  if (global.json() && outcome.run) std::cout << ProtoToJson(*outcome.run) << std::endl;
  return outcome.exit_code;
}

}  // namespace

void AddRunWaitCommand(CLI::App& run, CommandContext& ctx) {
  auto o = std::make_shared<WaitOptions>();
  auto* cmd = run.add_subcommand(
      "wait", "wait until a run ends; exit 0 only if it COMPLETED (Ctrl-C leaves it running)");
  AddRunArgument(*cmd, o->run);
  cmd->add_flag("--show-output", o->show_output, "stream the run's output while waiting");
  cmd->callback([&ctx, o] { ctx.action = [&ctx, o] { return RunWait(ctx.global, *o); }; });
}

}  // namespace amld::client::commands
