// Relative paths a client names inside a folder it does not own (a script
// in a snapshot, a file of a run): the one rule for what such a path may be.
//
// Thread-safety: free functions, thread-safe.
#pragma once

#include <string_view>

#include "absl/status/status.h"

namespace amld::base {

// OK when `path` is relative, non-empty and has no "", "." or ".."
// component and no NUL; INVALID_ARGUMENT naming `what` otherwise.
absl::Status ValidateRelativePath(std::string_view path, std::string_view what);

}  // namespace amld::base
