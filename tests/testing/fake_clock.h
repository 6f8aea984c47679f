// FakeClock: a base::Clock (base/clock.h) that stands still until the test
// steps it, so settle delays, time limits and transition stamps are reached
// by Advance instead of by sleeping.
//
// Thread-safety: thread-safe; code under test may read it from its threads
// while the test advances it.
#pragma once

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "base/clock.h"

namespace amld::testing {

class FakeClock final : public base::Clock {
 public:
  // A fixed, recognizable start (2025-06-15) rather than the real time, so
  // tests do not depend on when they run.
  static constexpr int64_t kStartUnixSeconds = 1750000000;

  absl::Time Now() const override {
    absl::MutexLock lock(&mu_);
    return now_;
  }
  void Advance(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    now_ += d;
  }

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_) = absl::FromUnixSeconds(kStartUnixSeconds);
};

}  // namespace amld::testing
