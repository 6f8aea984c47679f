// The one place a run id a person typed becomes a run's full id; every Runs
// RPC that names a run goes through it, so the CLI and the SDK accept the
// same forms:
//   - the full id;
//   - `last`: the caller's newest run (of `experiment` when given);
//   - a unique prefix or suffix of an id, at least kMinRunIdFragment bytes
//     (`credit_17962`, `c97f17c6`).
// NOT_FOUND when nothing matches (saying how to list runs, or that a part of
// an id is too short); INVALID_ARGUMENT when a fragment matches several runs
// (listing them, newest first).
//
// Thread-safety: thread-safe (the StateStore is).
#pragma once

#include <sys/types.h>

#include <string>

#include "absl/status/statusor.h"
#include "storage/state/state_store.h"

namespace amld::daemon {

inline constexpr size_t kMinRunIdFragment = 3;

absl::StatusOr<std::string> ResolveRunId(amld::storage::StateStore& store, const std::string& typed,
                                         uid_t caller, const std::string& experiment = "");

}  // namespace amld::daemon
