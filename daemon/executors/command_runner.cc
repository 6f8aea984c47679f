#include "daemon/executors/command_runner.h"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "daemon/executors/subprocess.h"

extern char** environ;

namespace amld::daemon {
namespace {

void SetEnd(int wait_status, CommandResult* result) {
  if (WIFSIGNALED(wait_status)) {
    result->signal = WTERMSIG(wait_status);
  } else {
    result->exit_code = WEXITSTATUS(wait_status);
  }
}

// The command's environment as its account's (command_runner.h: run_as).
std::vector<std::string> AccountEnvironment(const Command& command) {
  std::vector<std::pair<std::string, std::string>> pairs;
  auto add = [&](const std::string& entry) {
    const size_t eq = entry.find('=');
    if (eq != std::string::npos) pairs.emplace_back(entry.substr(0, eq), entry.substr(eq + 1));
  };
  if (command.env) {
    for (const std::string& entry : *command.env) add(entry);
  } else {
    for (char** e = environ; *e != nullptr; ++e) add(*e);
  }
  // The daemon's agent and tickets are never lent (nor reachable: root's).
  pairs.erase(std::remove_if(pairs.begin(), pairs.end(),
                             [](const auto& entry) {
                               return entry.first == "SSH_AUTH_SOCK" ||
                                      entry.first == "SSH_AGENT_PID" ||
                                      entry.first == "KRB5CCNAME";
                             }),
              pairs.end());
  SetAccountEnvironment(*command.run_as, &pairs);
  std::vector<std::string> env;
  for (const auto& [name, value] : pairs) env.push_back(absl::StrCat(name, "=", value));
  return env;
}

SubprocessOptions OptionsFor(const Command& command, bool capture_stderr_in_pipe) {
  SubprocessOptions o;
  o.argv = command.argv;
  o.env = command.env;
  if (command.run_as) {
    o.env = AccountEnvironment(command);
    o.run_as = command.run_as;
    o.cwd = "/";
  }
  o.out = command.stdout_fd >= 0 ? Stdio::Fd(command.stdout_fd) : Stdio::Pipe();
  // A pipe when the caller drains it anyway; a memfd for a long-lived
  // command, so nobody has to read its stderr while it runs.
  o.err = capture_stderr_in_pipe ? Stdio::Pipe() : Stdio::MemFile();
  o.die_with_parent = true;
  return o;
}

class SubprocessCommand final : public RunningCommand {
 public:
  explicit SubprocessCommand(Subprocess process) : process_(std::move(process)) {}
  ~SubprocessCommand() override {
    if (!done_) Stop();
  }
  int ended_fd() const override { return process_.exit_fd(); }
  CommandResult Wait() override {
    CommandResult result;
    SetEnd(process_.Wait(), &result);
    result.err = process_.ReadMemFile();
    done_ = true;
    return result;
  }
  CommandResult Stop() override {
    process_.Signal(SIGTERM);
    return Wait();
  }

 private:
  Subprocess process_;
  bool done_ = false;
};

class SystemRunner final : public CommandRunner {
 public:
  absl::StatusOr<CommandResult> Run(const Command& command) override {
    absl::StatusOr<Subprocess> process = Subprocess::Start(OptionsFor(command, true));
    if (!process.ok()) return process.status();
    CommandResult result;
    // With stdout going to the caller's file, only stderr is read; its end
    // is the command's end (or that of a child that kept it open).
    std::string ignored;
    bool finished =
        process->ReadPipesUntil(absl::Now() + command.timeout,
                                command.stdout_fd >= 0 ? &ignored : &result.out, &result.err);
    if (!finished) process->Signal(SIGKILL);
    SetEnd(process->Wait(), &result);
    if (!finished) {
      return absl::DeadlineExceededError(
          absl::StrCat(absl::StrJoin(command.argv, " "), " did not finish within ",
                       absl::FormatDuration(command.timeout), "; killed it"));
    }
    return result;
  }

  absl::StatusOr<std::unique_ptr<RunningCommand>> Start(const Command& command) override {
    SubprocessOptions options = OptionsFor(command, false);
    if (command.stdout_fd < 0) options.out = Stdio::Null();
    absl::StatusOr<Subprocess> process = Subprocess::Start(options);
    if (!process.ok()) return process.status();
    return std::make_unique<SubprocessCommand>(std::move(*process));
  }
};

}  // namespace

std::string CommandResult::Describe() const {
  std::string what = signal != 0 ? absl::StrCat("killed by signal ", signal)
                                 : absl::StrCat("exit code ", exit_code);
  absl::string_view text = absl::StripAsciiWhitespace(err.empty() ? out : err);
  if (!text.empty()) absl::StrAppend(&what, ": ", text);
  return what;
}

CommandRunner& SystemCommandRunner() {
  static SystemRunner* runner = new SystemRunner();
  return *runner;
}

}  // namespace amld::daemon
