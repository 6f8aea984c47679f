// The `aml` commands, one per file (as pueue's client/commands/): each file
// registers its subcommand and does its work. This header is included by
// every command file, so it keeps CLI11 and nlohmann/json out (a forward
// declaration of CLI::App is enough).
//
// Conventions every command follows:
//   - Results go to stdout: a table or lines for people, or one JSON value
//     with --output json. Progress and status notes go to stderr.
//   - Errors are one line on stderr, "aml: <what went wrong and what to
//     do>" (and with --output json, also {"error": {...}} on stdout); exit
//     code 1. Usage errors exit with 2.
//
// Thread-safety: single-threaded (the CLI's main thread).
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "amld/v1/runs.pb.h"
#include "client/connection.h"

namespace CLI {
class App;
}
namespace amld::client {
struct FollowOptions;  // client/follow.h
}

namespace amld::client::commands {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;
// Ctrl-C while following a run (the run goes on), as shells report SIGINT.
inline constexpr int kExitInterrupted = 130;

struct GlobalOptions {
  std::string socket;            // --socket / AMLD_SOCKET; empty: the default path
  std::string output = "table";  // --output: "table" or "json"

  bool json() const { return output == "json"; }
  // The daemon to talk to: --socket/AMLD_SOCKET, else the user daemon when
  // one answers, else the system daemon when there is one
  // (base/workspace_paths.h ClientSocketPath); looked up once.
  std::filesystem::path SocketPath() const;
  // The user daemon's socket (`aml daemon start|stop` never act on the
  // system daemon): --socket/AMLD_SOCKET, else the user-mode default.
  std::filesystem::path UserSocketPath() const;

 private:
  mutable std::filesystem::path found_socket_;
};

// What the parsed command line asks for; set by the chosen subcommand's
// callback, run by RunCli once parsing succeeded. Returns the exit code.
struct CommandContext {
  GlobalOptions global;
  std::function<int()> action;
  // Everything after the first "--" on the command line, kept away from the
  // parser (it would hand "--" to the parent command): the script's
  // arguments for `aml run submit`; a usage error for every other command.
  std::vector<std::string> passthrough_args;
  bool has_passthrough = false;
};

// Prints `status` as the command's error; returns kExitFailure.
int ReportError(const GlobalOptions& global, const absl::Status& status);
// Prints a usage error ("aml: ...; see `aml <command> --help`"); returns kExitUsage.
int ReportUsageError(const GlobalOptions& global, const std::string& message,
                     const std::string& command_path);

// Connect() to the socket of `global`.
absl::StatusOr<Connection> ConnectFromOptions(const GlobalOptions& global);

// The run a command names, as a person typed it: the full id, a unique
// prefix or suffix of it, or `last` (the caller's newest run; of EXP with
// -e EXP). The daemon resolves it (daemon/services/run_ids.h), so the SDK
// accepts the same.
struct RunRef {
  std::string typed;
  std::string experiment;
};
// Registers the positional "run" (required) and -e/--experiment on `cmd`.
void AddRunArgument(CLI::App& cmd, RunRef& ref);
// Runs.GetRun of `ref`: the run with its full id, which the command then
// uses for every later call (so `last` cannot change under it).
absl::StatusOr<amld::v1::Run> ResolveRun(const Connection& conn, const RunRef& ref);

// Several runs, as typed (each like RunRef.typed), for commands that take
// one or more.
struct RunRefs {
  std::vector<std::string> typed;
  std::string experiment;
};
// Registers the positional "runs" (required) and -e/--experiment on `cmd`.
void AddRunsArgument(CLI::App& cmd, RunRefs& refs);
// Every run of `refs`, resolved before the command acts on any, so that a
// typo among them changes nothing.
absl::StatusOr<std::vector<amld::v1::Run>> ResolveRuns(const Connection& conn,
                                                       const RunRefs& refs);

// Moves `value` somewhere it is never destroyed, and returns it. aml ends
// with _exit right after a command (aml_main.cc); a command holding a large
// structure (a snapshot of 10,000 files) hands it here instead of paying to
// free it on the way out.
template <typename T>
T& KeepUntilExit(T&& value) {
  return *new std::decay_t<T>(std::forward<T>(value));  // NOLINT: freed by the exit
}

// Follows a run until it ends, as `aml run wait` does: with `show_output`
// the log streams to stdout (stderr with --output json); status notes go to
// stderr. Ctrl-C leaves the run going and prints how to reattach. Prints no
// JSON and no error itself: the caller reports `run` or `error` its way.
struct WaitOutcome {
  // 0 only for COMPLETED; 1 otherwise; kExitInterrupted after Ctrl-C.
  int exit_code = kExitFailure;
  // The final state, when the run ended.
  std::optional<amld::v1::Run> run;
  // Why following failed (not printed yet); OK when the run ended or
  // following was interrupted.
  absl::Status error;
};
WaitOutcome FollowUntilDone(const GlobalOptions& global, const Connection& conn,
                            const std::string& run_id, bool show_output);

// The daemon's connection for a command that follows a run (`logs -f`,
// `wait`): started while the daemon is down (restarting, not started yet),
// it says so once on stderr and waits for it, as a follow under way does
// (client/follow.h ConnectWhenUp; `follow` has the timeout and interrupt).
absl::StatusOr<Connection> ConnectForFollowing(const GlobalOptions& global,
                                               const FollowOptions& follow);

// Subcommand registration, one per file in client/commands/.
void AddRunSubmitCommand(CLI::App& run, CommandContext& ctx);
void AddRunWaitCommand(CLI::App& run, CommandContext& ctx);
void AddRunLogsCommand(CLI::App& run, CommandContext& ctx);
void AddRunCancelCommand(CLI::App& run, CommandContext& ctx);
void AddRunListCommand(CLI::App& run, CommandContext& ctx);
void AddRunShowCommand(CLI::App& run, CommandContext& ctx);
void AddRunFilesCommand(CLI::App& run, CommandContext& ctx);
void AddRunDownloadCommand(CLI::App& run, CommandContext& ctx);
void AddRunMetricsCommand(CLI::App& run, CommandContext& ctx);
void AddRunRestartCommand(CLI::App& run, CommandContext& ctx);
void AddRunDeleteCommand(CLI::App& run, CommandContext& ctx);
void AddRunCompareCommand(CLI::App& run, CommandContext& ctx);
void AddExperimentListCommand(CLI::App& experiment, CommandContext& ctx);
void AddComputeCreateCommand(CLI::App& compute, CommandContext& ctx);
void AddComputeListCommand(CLI::App& compute, CommandContext& ctx);
void AddComputeShowCommand(CLI::App& compute, CommandContext& ctx);
void AddComputeDeleteCommand(CLI::App& compute, CommandContext& ctx);
// `aml env list|show` (env_list.cc).
void AddEnvCommands(CLI::App& app, CommandContext& ctx);
void AddEnvCreateCommand(CLI::App& env, CommandContext& ctx);
// `aml env build|prune` (env_build.cc).
void AddEnvCacheCommands(CLI::App& env, CommandContext& ctx);
// `aml model list|show|download` (model.cc).
void AddModelCommands(CLI::App& app, CommandContext& ctx);
void AddDaemonStartCommand(CLI::App& daemon, CommandContext& ctx);
void AddDaemonStopCommand(CLI::App& daemon, CommandContext& ctx);
void AddDaemonStatusCommand(CLI::App& daemon, CommandContext& ctx);
void AddDaemonGcCommand(CLI::App& daemon, CommandContext& ctx);
// One line about a CAS garbage collection (aml daemon gc, aml daemon status).
std::string GcSummary(const amld::v1::GcReport& report);
void AddSnapshotCreateCommand(CLI::App& snapshot, CommandContext& ctx);
void AddSnapshotExplainCommand(CLI::App& snapshot, CommandContext& ctx);
void AddSnapshotWatchCommand(CLI::App& snapshot, CommandContext& ctx);
void AddSnapshotUnwatchCommand(CLI::App& snapshot, CommandContext& ctx);
void AddSnapshotListCommand(CLI::App& snapshot, CommandContext& ctx);
void AddSweepSubmitCommand(CLI::App& sweep, CommandContext& ctx);
void AddSweepShowCommand(CLI::App& sweep, CommandContext& ctx);
// `aml ui` (ui.cc).
void AddUiCommand(CLI::App& app, CommandContext& ctx);
// Helper programs (helper_programs.cc).
// The first executable `name` in $PATH; empty when there is none.
std::string FindOnPath(const std::string& name);
// Starts xdg-open on `url` without waiting for it; false when there is no
// desktop session (DISPLAY, WAYLAND_DISPLAY) or no xdg-open.
bool OpenInBrowser(const std::string& url);
// Where a helper's stdout and stderr go: nowhere, or (stdout too) to our
// stderr, which keeps our stdout for results.
enum class HelperOutput { kDiscard, kToOurStderr };
// Starts the program at the path args[0] with stdin from /dev/null, without
// waiting for it; its pid.
absl::StatusOr<pid_t> StartHelper(const std::vector<std::string>& args, HelperOutput output);
// `aml tensorboard` (tensorboard.cc).
void AddTensorboardCommand(CLI::App& app, CommandContext& ctx);

// Parses argv and runs the chosen command; returns the exit code.
int RunCli(int argc, char** argv);

}  // namespace amld::client::commands
