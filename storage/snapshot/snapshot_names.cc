#include "storage/snapshot/snapshot_names.h"

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace amld::storage::snapshot_names {

// Keeps the code, puts context in front of the message.
absl::Status Annotate(const absl::Status& s, std::string_view context) {
  if (s.ok()) return s;
  return absl::Status(s.code(), absl::StrCat(std::string(context), ": ", std::string(s.message())));
}

// Names come from the file system and may hold any byte; messages show them
// escaped so that a control character cannot garble a terminal.
std::string Quote(std::string_view s) {
  return absl::StrCat("\"", absl::CHexEscape(absl::string_view(s.data(), s.size())), "\"");
}

absl::Status CheckName(std::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError("empty name");
  if (name == "." || name == "..") {
    return absl::InvalidArgumentError(absl::StrCat("name ", Quote(name), " is not allowed"));
  }
  if (name.find('/') != std::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("name ", Quote(name), " contains '/'"));
  }
  if (name.find('\0') != std::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("name ", Quote(name), " contains NUL"));
  }
  if (name.size() > kMaxNameBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("name ", Quote(name.substr(0, 40)), "... is longer than 255 bytes"));
  }
  return absl::OkStatus();
}

// A target is safe when following it from a link `depth` folders below the
// root ends inside the root. `..` may only lead the target: after a name, the
// name could itself be a link (e.g. to "."), and `..` would then climb from
// wherever that points, which a lexical check cannot see.
absl::Status CheckLinkTarget(std::string_view target, int depth) {
  if (target.empty()) return absl::InvalidArgumentError("symlink target is empty");
  if (target.size() > kMaxLinkTargetBytes) {
    return absl::InvalidArgumentError("symlink target is longer than 4095 bytes");
  }
  if (target.find('\0') != std::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("symlink target ", Quote(target), " contains NUL"));
  }
  if (target.front() == '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("symlink target ", Quote(target),
                     " is absolute; only relative links that stay inside the folder can be kept"));
  }
  int ups = 0;
  bool seen_name = false;
  size_t start = 0;
  while (start <= target.size()) {
    size_t end = target.find('/', start);
    if (end == std::string_view::npos) end = target.size();
    std::string_view part = target.substr(start, end - start);
    start = end + 1;
    if (part.empty() || part == ".") continue;
    if (part != "..") {
      seen_name = true;
      continue;
    }
    if (seen_name) {
      return absl::InvalidArgumentError(absl::StrCat(
          "symlink target ", Quote(target),
          " has '..' after a name, which could climb out of the folder through another link; "
          "write the target without it"));
    }
    if (++ups > depth) {
      return absl::InvalidArgumentError(
          absl::StrCat("symlink target ", Quote(target), " climbs above the root of the folder"));
    }
  }
  return absl::OkStatus();
}

// The components of a '/'-separated path, each a valid name.
absl::StatusOr<std::vector<std::string>> SplitRelPath(std::string_view rel_path) {
  if (rel_path.empty()) return absl::InvalidArgumentError("the path is empty");
  if (rel_path.front() == '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("path ", Quote(rel_path), " must be relative to the snapshot root"));
  }
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= rel_path.size()) {
    size_t end = std::min(rel_path.find('/', start), rel_path.size());
    std::string_view part = rel_path.substr(start, end - start);
    absl::Status ok = CheckName(part);
    if (!ok.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("path ", Quote(rel_path),
                       " must be plain names joined by '/' (no empty, '.' or '..' parts): ",
                       std::string(ok.message())));
    }
    parts.emplace_back(part);
    start = end + 1;
  }
  return parts;
}

}  // namespace amld::storage::snapshot_names
