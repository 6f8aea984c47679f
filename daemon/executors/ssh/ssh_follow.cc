// The SSH executor: one run's thread, from start (or re-adoption) to its
// end (ssh_executor_impl.h).
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/file_util.h"
#include "base/status_macros.h"
#include "daemon/executors/shim/shim_protocol.h"
#include "daemon/executors/ssh/ssh_executor_impl.h"

namespace amld::daemon::ssh {

namespace fs = std::filesystem;
using base::ErrnoStatus;
using base::ScopedFd;

// Hosts allow 10 sessions per connection by default (sshd MaxSessions):
// beyond this many live log followers, a follower opens its own connection.
constexpr int kMaxMultiplexedFollowers = 4;
// A follower (remote tail) that keeps failing while the host answers (no
// GNU tail there?) gives way to copying the log every sync_interval.
constexpr int kFollowerFailuresBeforePolling = 3;

void SshExecutor::FollowThread(std::shared_ptr<Follow> f, bool reattached, uint64_t thread_id) {
  std::optional<Outcome> outcome = FollowToEnd(*f, reattached);
  if (outcome.has_value() && options_.run_as) {
    // What the daemon wrote at the end (exit.json, its log) is root's so far.
    const RunAs& as = *options_.run_as;
    if (absl::Status given = GiveTreeTo(f->local_dir, as.uid, as.gid); !given.ok()) {
      Note(*f, absl::StrCat("cannot give the run folder to ", as.user, ": ", given.message()));
    }
  }
  ExitCallback callback;
  {
    absl::MutexLock lock(&mu_);
    auto it = follows_.find(f->run_id);
    if (it != follows_.end() && it->second == f) follows_.erase(it);
    if (outcome.has_value() && !stopping_) callback = exit_callback_;
  }
  if (callback) callback(f->run_id, std::move(*outcome));
  absl::MutexLock lock(&mu_);
  finished_.push_back(thread_id);  // the last touch of `this`: joined by the next launch
}

std::optional<SshExecutor::Outcome> SshExecutor::FollowToEnd(Follow& f, bool reattached) {
  if (reattached) {
    absl::StatusOr<Probe> probe = AskHost(f);
    if (!probe.ok()) return Lost(f, probe.status());
    if (!probe->alive) return Finish(f, *probe);
    Note(f, absl::StrCat("re-adopted: amld-shim (pid ", f.remote.shim_pid, ") still runs on ",
                         remote_.Describe()));
  }
  bool polling = false;
  bool cancel_sent = false;
  int follower_failures = 0;
  absl::Time next_tick = absl::Now() + options_.sync_interval;
  for (;;) {
    std::unique_ptr<RunningCommand> follower;
    bool multiplexed = false;
    if (!polling) {
      absl::StatusOr<std::unique_ptr<RunningCommand>> started = StartFollower(f, &multiplexed);
      if (started.ok()) {
        follower = std::move(*started);
      } else {
        Note(f, absl::StrCat("cannot follow the log: ", started.status().message()));
        polling = true;
      }
    }
    for (;;) {
      if (f.cancel && !cancel_sent) cancel_sent = SendCancel(f);
      Woke woke = Wait(f, follower.get(), next_tick);
      if (woke == Woke::kStop) {
        if (follower) {
          follower->Stop();
          ReleaseFollowerSlot(multiplexed);
        }
        return std::nullopt;
      }
      if (woke == Woke::kFollowerEnded) break;
      if (woke == Woke::kTick) {
        next_tick = absl::Now() + options_.sync_interval;
        if (polling) {
          if (absl::Status s = CatchUpLog(f); !s.ok()) Note(f, std::string(s.message()));
          absl::StatusOr<Probe> probe = AskHost(f);
          if (!probe.ok()) return Lost(f, probe.status());
          if (!probe->alive) return Finish(f, *probe);
        }
        if (absl::Status s = Pull(f, /*final=*/false); !s.ok()) {
          Note(f, absl::StrCat("copying outputs back: ", s.message()));
        }
      }
    }
    // The follower ended: normally because the shim is gone (tail --pid);
    // otherwise the connection dropped or tail failed. The host decides.
    const CommandResult ended = follower->Wait();
    follower.reset();
    ReleaseFollowerSlot(multiplexed);
    absl::StatusOr<Probe> probe = AskHost(f);
    if (!probe.ok()) {
      return Lost(f, SshRemote::IsSshConnectionFailure(ended)
                         ? absl::UnavailableError(absl::StrCat(
                               probe.status().message(), " (log follower: ", ended.Describe(), ")"))
                         : probe.status());
    }
    if (!probe->alive) return Finish(f, *probe);
    Note(f, absl::StrCat("log follower ended (", ended.Describe(),
                         "); the run goes on; following again"));
    if (!ended.ok() && ++follower_failures >= kFollowerFailuresBeforePolling) {
      Note(f, absl::StrCat("copying the log every ", absl::FormatDuration(options_.sync_interval),
                           " instead"));
      polling = true;
    }
    // A pause before following again, woken early by cancel or stop.
    const absl::Time resume = absl::Now() + options_.backoff;
    while (absl::Now() < resume) {
      if (Wait(f, nullptr, resume) == Woke::kStop) return std::nullopt;
      if (f.cancel && !cancel_sent) cancel_sent = SendCancel(f);
    }
  }
}

absl::StatusOr<std::unique_ptr<RunningCommand>> SshExecutor::StartFollower(Follow& f,
                                                                           bool* multiplexed) {
  const fs::path log = f.local_dir / shim::kStdLogPath;
  ScopedFd fd(::open(log.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644));
  if (!fd.valid()) return ErrnoStatus(errno, "open", log);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return ErrnoStatus(errno, "stat", log);
  {
    absl::MutexLock lock(&mu_);
    *multiplexed = multiplexed_followers_ < kMaxMultiplexedFollowers;
    if (*multiplexed) ++multiplexed_followers_;
  }
  // Everything after the bytes the daemon has, as it is written, until the
  // shim is gone.
  absl::StatusOr<std::unique_ptr<RunningCommand>> child =
      remote_.Start(TailCommand(f.remote, st.st_size, /*follow=*/true), fd.get(), *multiplexed);
  if (!child.ok()) ReleaseFollowerSlot(*multiplexed);
  return child;
}

void SshExecutor::ReleaseFollowerSlot(bool multiplexed) {
  if (!multiplexed) return;
  absl::MutexLock lock(&mu_);
  --multiplexed_followers_;
}

SshExecutor::Woke SshExecutor::Wait(Follow& f, RunningCommand* follower, absl::Time until) {
  for (;;) {
    if (f.stop) return Woke::kStop;
    pollfd fds[2] = {{f.wake.get(), POLLIN, 0}, {-1, POLLIN, 0}};
    if (follower != nullptr) fds[1].fd = follower->ended_fd();
    const absl::Duration left = until - absl::Now();
    if (left <= absl::ZeroDuration()) return Woke::kTick;
    int n = ::poll(fds, 2, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
    if (n < 0 && errno != EINTR) return Woke::kTick;
    if (n <= 0) continue;
    if (fds[0].revents != 0) {
      uint64_t count;
      (void)!::read(f.wake.get(), &count, sizeof count);
      return f.stop ? Woke::kStop : Woke::kWake;
    }
    if (fds[1].revents != 0) return Woke::kFollowerEnded;
  }
}

bool SshExecutor::SendCancel(Follow& f) {
  absl::StatusOr<CommandResult> r = remote_.Run(CancelScript(f.remote), options_.command_timeout);
  if (!r.ok()) {
    Note(f, absl::StrCat("cannot deliver the cancel yet: ", r.status().message()));
    return false;
  }
  Note(f, absl::StrCat("cancel: sent SIGTERM to amld-shim (pid ", f.remote.shim_pid, ") on ",
                       remote_.Describe()));
  return true;
}

absl::StatusOr<Probe> SshExecutor::AskHost(Follow& f) {
  AMLD_ASSIGN_OR_RETURN(CommandResult r,
                        remote_.Run(ProbeScript(f.remote), options_.command_timeout));
  return ParseProbe(r);
}

}  // namespace amld::daemon::ssh
