// FakeCommandRunner: a CommandRunner (daemon/executors/command_runner.h)
// scripted by argv, so executor tests step ssh, rsync and Slurm's clients
// without a host or a cluster.
//
//   auto fake = std::make_shared<FakeCommandRunner>();
//   fake->On("squeue", {.out = "12|RUNNING|None|node1|run\n"});
//   fake->On("sbatch", {.exit_code = 1, .err = "sbatch: error: bad"});
//   options.runner = fake;
//
// A rule matches when every one of its words occurs in the command's argv
// joined by spaces; the newest matching rule answers (so a test changes an
// answer by adding a rule). A rule may instead compute the answer
// (OnCall). Unmatched commands answer exit 0 with no output. Every call is
// recorded (Calls, CallsMatching).
//
// Commands with Command::stdout_fd get the rule's `out` written to that fd.
// Started commands (RunningCommand, e.g. the SSH log follower) stay running
// until the test ends them: Started(words) returns the latest one started,
// whose Write appends to its stdout fd and End(result) finishes it.
//
// Thread-safety: thread-safe.
#pragma once

#include <sys/eventfd.h>
#include <unistd.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "daemon/executors/command_runner.h"

namespace amld::testing {

class FakeCommandRunner : public daemon::CommandRunner {
 public:
  using Command = daemon::Command;
  using CommandResult = daemon::CommandResult;
  using Answer = std::function<absl::StatusOr<CommandResult>(const Command&)>;

  // A command started with Start that runs until the test ends it.
  class Running : public daemon::RunningCommand {
   public:
    explicit Running(Command command)
        : command_(std::move(command)), ended_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}
    ~Running() override { ::close(ended_); }

    const Command& command() const { return command_; }
    // Appends to the command's stdout fd, as the remote tail would.
    void Write(const std::string& data) {
      if (command_.stdout_fd >= 0) (void)!::write(command_.stdout_fd, data.data(), data.size());
    }
    // The command ends with `result` (ended_fd becomes readable).
    void End(CommandResult result = {}) {
      absl::MutexLock lock(&mu_);
      if (ended_flag_) return;
      result_ = std::move(result);
      ended_flag_ = true;
      uint64_t one = 1;
      (void)!::write(ended_, &one, sizeof one);
    }
    bool stopped() const {
      absl::MutexLock lock(&mu_);
      return stopped_;
    }
    bool ended() const {
      absl::MutexLock lock(&mu_);
      return ended_flag_;
    }

    int ended_fd() const override { return ended_; }
    CommandResult Wait() override {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(&ended_flag_));
      return result_;
    }
    CommandResult Stop() override {
      {
        absl::MutexLock lock(&mu_);
        stopped_ = true;
      }
      End(CommandResult{0, 15, "", ""});
      return Wait();
    }

   private:
    const Command command_;
    const int ended_;
    mutable absl::Mutex mu_;
    bool ended_flag_ ABSL_GUARDED_BY(mu_) = false;
    bool stopped_ ABSL_GUARDED_BY(mu_) = false;
    CommandResult result_ ABSL_GUARDED_BY(mu_);
  };

  // Answers commands whose argv holds every word of `words` (split on
  // spaces) with `result`.
  void On(const std::string& words, CommandResult result) {
    OnCall(words, [result](const Command&) -> absl::StatusOr<CommandResult> { return result; });
  }
  // The same with a computed answer (or an error: the command could not
  // run).
  void OnCall(const std::string& words, Answer answer) {
    absl::MutexLock lock(&mu_);
    rules_.push_back({absl::StrSplit(words, ' ', absl::SkipEmpty()), std::move(answer)});
  }

  absl::StatusOr<CommandResult> Run(const Command& command) override {
    Answer answer;
    {
      absl::MutexLock lock(&mu_);
      calls_.push_back(absl::StrJoin(command.argv, " "));
      accounts_.push_back(command.run_as ? static_cast<int64_t>(command.run_as->uid) : -1);
      answer = FindLocked(command);
    }
    absl::StatusOr<CommandResult> result = answer ? answer(command) : CommandResult{};
    if (result.ok() && command.stdout_fd >= 0 && !result->out.empty()) {
      (void)!::write(command.stdout_fd, result->out.data(), result->out.size());
      result->out.clear();
    }
    return result;
  }

  absl::StatusOr<std::unique_ptr<daemon::RunningCommand>> Start(const Command& command) override {
    // A duplicate of the fd: the caller closes its own after Start.
    Command kept = command;
    if (kept.stdout_fd >= 0) kept.stdout_fd = ::dup(kept.stdout_fd);
    auto running = std::make_shared<Running>(kept);
    absl::MutexLock lock(&mu_);
    calls_.push_back(absl::StrJoin(command.argv, " "));
    accounts_.push_back(command.run_as ? static_cast<int64_t>(command.run_as->uid) : -1);
    started_.push_back(running);
    return std::unique_ptr<daemon::RunningCommand>(new Handle(running));
  }

  // Every command so far, argv joined by spaces.
  std::vector<std::string> Calls() const {
    absl::MutexLock lock(&mu_);
    return calls_;
  }
  // The uid each command matching `words` ran as (Command::run_as), -1 for
  // the daemon's own, in call order.
  std::vector<int64_t> AccountsOf(const std::string& words) const {
    absl::MutexLock lock(&mu_);
    std::vector<int64_t> uids;
    for (size_t i = 0; i < calls_.size(); ++i) {
      if (Matches(absl::StrSplit(words, ' ', absl::SkipEmpty()), calls_[i])) {
        uids.push_back(accounts_[i]);
      }
    }
    return uids;
  }
  int CallsMatching(const std::string& words) const {
    absl::MutexLock lock(&mu_);
    int n = 0;
    for (const std::string& call : calls_)
      n += Matches(absl::StrSplit(words, ' ', absl::SkipEmpty()), call);
    return n;
  }
  // The latest started command whose argv holds `words`, waiting up to
  // `timeout` for one; null when none came.
  std::shared_ptr<Running> Started(const std::string& words,
                                   absl::Duration timeout = absl::Seconds(30)) {
    absl::MutexLock lock(&mu_);
    std::shared_ptr<Running> found;
    auto find = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      for (auto it = started_.rbegin(); it != started_.rend(); ++it) {
        if (!(*it)->ended() && Matches(absl::StrSplit(words, ' ', absl::SkipEmpty()),
                                       absl::StrJoin((*it)->command().argv, " "))) {
          found = *it;
          return true;
        }
      }
      return false;
    };
    mu_.AwaitWithTimeout(absl::Condition(&find), timeout);
    return found;
  }

 private:
  struct Rule {
    std::vector<std::string> words;
    Answer answer;
  };
  // The handle the executor owns; the test keeps the Running.
  class Handle : public daemon::RunningCommand {
   public:
    explicit Handle(std::shared_ptr<Running> r) : r_(std::move(r)) {}
    ~Handle() override {
      r_->Stop();
      if (r_->command().stdout_fd >= 0) ::close(r_->command().stdout_fd);
    }
    int ended_fd() const override { return r_->ended_fd(); }
    CommandResult Wait() override { return r_->Wait(); }
    CommandResult Stop() override { return r_->Stop(); }

   private:
    std::shared_ptr<Running> r_;
  };

  static bool Matches(const std::vector<std::string>& words, const std::string& joined) {
    for (const std::string& w : words) {
      if (!absl::StrContains(joined, w)) return false;
    }
    return true;
  }
  Answer FindLocked(const Command& command) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const std::string joined = absl::StrJoin(command.argv, " ");
    for (auto it = rules_.rbegin(); it != rules_.rend(); ++it) {
      if (Matches(it->words, joined)) return it->answer;
    }
    return nullptr;
  }

  mutable absl::Mutex mu_;
  std::vector<Rule> rules_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> calls_ ABSL_GUARDED_BY(mu_);
  std::vector<int64_t> accounts_ ABSL_GUARDED_BY(mu_);  // one per call
  std::vector<std::shared_ptr<Running>> started_ ABSL_GUARDED_BY(mu_);
};

}  // namespace amld::testing
