// The one way a person writes a duration: "90" (seconds), "90s", "15m",
// "1h30m", "2d", "1:30:00" (H:MM:SS) or "1:30" (M:SS), as Slurm's --time.
//
// Thread-safety: a pure function, thread-safe.
#pragma once

#include <cstdint>
#include <string_view>

#include "absl/status/statusor.h"

namespace amld::base {

// Whole seconds, >= 0. INVALID_ARGUMENT saying which forms are accepted for
// anything else (negative, fractional, unknown unit, overflow).
absl::StatusOr<int64_t> ParseDurationSeconds(std::string_view text);

}  // namespace amld::base
