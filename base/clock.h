// Clock: the daemon's source of "now", behind an interface so the run
// lifecycle can be stepped in tests with a fake clock (transition stamps, run
// ids) instead of sleeping.
//
// Thread-safety: implementations are thread-safe.
#pragma once

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace amld::base {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
};

// The wall clock (absl::Now()). Never null; lives forever.
Clock* RealClock();

}  // namespace amld::base
