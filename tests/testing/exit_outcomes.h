// ExitOutcomes: collects what an Executor (daemon/executors/executor.h)
// reports through its exit callback, and waits for the outcome of one run
// (on the outcome itself, never by sleeping).
//
// Thread-safety: thread-safe; the executor's threads call the callback.
#pragma once

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "daemon/executors/executor.h"

namespace amld::testing {

class ExitOutcomes {
 public:
  using Outcome = absl::StatusOr<daemon::ExitStatus>;

  explicit ExitOutcomes(absl::Duration wait) : wait_(wait) {}

  daemon::Executor::ExitCallback Callback() {
    return [this](const std::string& run_id, Outcome outcome) {
      absl::MutexLock lock(&mu_);
      got_.emplace_back(run_id, std::move(outcome));
    };
  }

  // The outcome of `run_id`, waiting up to the wait given at construction;
  // nullopt if none came in time.
  std::optional<Outcome> Wait(const std::string& run_id) {
    absl::MutexLock lock(&mu_);
    auto arrived = [&] { return Count(run_id) > 0; };
    mu_.AwaitWithTimeout(absl::Condition(&arrived), wait_);
    for (auto& [id, outcome] : got_) {
      if (id == run_id) return outcome;
    }
    return std::nullopt;
  }

  // How many outcomes `run_id` has had (an executor must report one).
  int CountFor(const std::string& run_id) {
    absl::MutexLock lock(&mu_);
    return Count(run_id);
  }

 private:
  int Count(const std::string& run_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return static_cast<int>(
        std::count_if(got_.begin(), got_.end(), [&](const auto& g) { return g.first == run_id; }));
  }

  const absl::Duration wait_;
  absl::Mutex mu_;
  std::vector<std::pair<std::string, Outcome>> got_ ABSL_GUARDED_BY(mu_);
};

}  // namespace amld::testing
