// CommandRunner: how executors run external commands — ssh, rsync, sbatch,
// squeue, scontrol, scancel, sacct (ninja's build.h CommandRunner is the
// model). Each executor is given one (its options' `runner`), so tests
// replace it with a fake scripted by argv
// (tests/testing/fake_command_runner.h) and step an executor without
// sshd or Slurm. SystemCommandRunner() is the real one, over Subprocess.
//
// Every command gets stdin /dev/null, no other inherited descriptor, the
// daemon's environment (or exactly Command::env), and SIGTERM when the
// thread that started it ends (so one that writes into a run's files never
// outlives the daemon).
//
// Thread-safety: implementations are thread-safe; a RunningCommand is used
// by one thread at a time.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/executors/run_as.h"

namespace amld::daemon {

struct Command {
  Command() = default;
  explicit Command(std::vector<std::string> argv_, absl::Duration timeout_ = absl::Seconds(60))
      : argv(std::move(argv_)), timeout(timeout_) {}

  // argv[0] is looked up in PATH when it has no '/'.
  std::vector<std::string> argv;
  // Run: the command is killed (SIGKILL) when it runs past this.
  absl::Duration timeout = absl::Seconds(60);
  // "NAME=value" entries: exactly its environment. nullopt: the daemon's.
  std::optional<std::vector<std::string>> env;
  // -1: stdout is captured (CommandResult::out; Start: dropped). Else the
  // daemon's descriptor it writes to (a log file being appended to).
  int stdout_fd = -1;
  // Run it as this account (system mode: a run's submitter, so the Slurm
  // job is theirs and their own ssh keys are used): their uid, gid and
  // groups (Subprocess::run_as), their HOME, USER, LOGNAME and SHELL in the
  // environment above (SetAccountEnvironment) less the daemon's ssh agent
  // and Kerberos tickets, and "/" as its working folder (the daemon's may
  // be closed to them). nullopt: the daemon's.
  std::optional<RunAs> run_as;
};

struct CommandResult {
  int exit_code = 0;  // meaningful when signal == 0
  int signal = 0;     // the signal that ended it, or 0
  std::string out;    // stdout, when captured
  std::string err;    // stderr
  bool ok() const { return exit_code == 0 && signal == 0; }
  // "exit code 1: <stderr, trimmed>" for messages.
  std::string Describe() const;
};

// A long-lived command (a log follower) that the caller waits for among
// other things.
class RunningCommand {
 public:
  // Stops it (SIGTERM) and reaps it when it still runs.
  virtual ~RunningCommand() = default;
  // Becomes readable (poll) once the command has ended; then Wait() does
  // not block.
  virtual int ended_fd() const = 0;
  // Waits for the end; how it ended and its stderr (stdout went to
  // Command::stdout_fd).
  virtual CommandResult Wait() = 0;
  // SIGTERM, then Wait().
  virtual CommandResult Stop() = 0;
};

class CommandRunner {
 public:
  virtual ~CommandRunner() = default;

  // Runs `command` to its end. NOT_FOUND when argv[0] cannot be executed
  // (naming it), DEADLINE_EXCEEDED when it ran past its timeout (it is
  // killed), INTERNAL for pipe/start failures. A command that ran and
  // failed is OK here: look at CommandResult.
  virtual absl::StatusOr<CommandResult> Run(const Command& command) = 0;

  // Starts `command` and returns while it runs (its timeout is not
  // applied). Errors as Run.
  virtual absl::StatusOr<std::unique_ptr<RunningCommand>> Start(const Command& command) = 0;
};

// The real runner (a process-wide, stateless instance).
CommandRunner& SystemCommandRunner();

}  // namespace amld::daemon
