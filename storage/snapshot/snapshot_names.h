// The rules for names and paths inside a snapshot tree, shared by the walk
// (what may be recorded), the directory codec (what a stored Directory may
// hold) and the tree queries (what a caller may ask for):
//   - a name is not empty, ".", "..", and holds no '/' or NUL, at most 255
//     bytes (NAME_MAX); names and link targets are UTF-8 (proto3 strings);
//   - a link target is relative, at most 4095 bytes, and stays inside the
//     root: `..` may only lead it ("../../lib/x"), since after a name
//     ("a/../b") `a` could itself be a link and `..` would climb from
//     wherever that points, which a lexical check cannot see;
//   - trees nest at most 256 levels, on build and decode alike, so whatever
//     is built can be materialized, and recursion and open folder fds stay
//     bounded.
// Messages show names escaped (Quote), so a control character in a file
// name cannot garble a terminal.
//
// Internal to storage/snapshot/. Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/file_names.h"

namespace amld::storage::snapshot_names {

inline constexpr int kMaxTreeDepth = 256;
inline constexpr size_t kMaxNameBytes = 255;         // NAME_MAX
inline constexpr size_t kMaxLinkTargetBytes = 4095;  // PATH_MAX - 1

// `s` with `context` in front of its message, same code; OK stays OK.
absl::Status Annotate(const absl::Status& s, std::string_view context);
// `s` in double quotes, non-printable bytes C-escaped.
std::string Quote(std::string_view s);
// Proto3 string fields must hold valid UTF-8, so names and link targets that
// are not are refused up front.
using amld::base::IsValidUtf8;
// INVALID_ARGUMENT saying why `name` cannot be a name in a tree.
absl::Status CheckName(std::string_view name);
// INVALID_ARGUMENT unless following `target` from a link `depth` folders
// below the root ends inside the root (see above).
absl::Status CheckLinkTarget(std::string_view target, int depth);
// The components of a '/'-separated relative path, each a valid name;
// INVALID_ARGUMENT for an empty or absolute path or a bad component.
absl::StatusOr<std::vector<std::string>> SplitRelPath(std::string_view rel_path);

}  // namespace amld::storage::snapshot_names
