// Option kinds the commands share, so each is parsed and reported one way:
// durations (base/parse_duration.h) and lower bounds whose message names
// the bound (CLI11's own range checks print a 300-digit upper end).
//
// Thread-safety: single-threaded (the CLI's main thread).
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>

namespace amld::client::commands {

// Turns "1h30m", "90s", "1:30:00" or "90" into its seconds before CLI11
// converts the value; a usage error naming the accepted forms otherwise.
CLI::Validator Duration();
// Accepts whole numbers >= `min`: "must be at least 1" otherwise.
CLI::Validator AtLeast(int64_t min);

}  // namespace amld::client::commands
