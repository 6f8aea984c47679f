#include "daemon/clock.h"

namespace amld::daemon {
namespace {

class WallClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
};

}  // namespace

Clock* RealClock() {
  static WallClock* clock = new WallClock();
  return clock;
}

}  // namespace amld::daemon
