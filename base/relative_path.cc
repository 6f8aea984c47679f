#include "base/relative_path.h"

#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace amld::base {
namespace {

std::string Quoted(std::string_view s) {
  return absl::StrCat("\"", absl::CHexEscape(absl::string_view(s.data(), s.size())), "\"");
}

}  // namespace

absl::Status ValidateRelativePath(std::string_view path, std::string_view what) {
  const std::string what_s(what);
  if (path.empty()) return absl::InvalidArgumentError(absl::StrCat(what_s, " must not be empty"));
  if (path.find('\0') != std::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(what_s, " must not contain NUL"));
  }
  if (path.front() == '/') {
    return absl::InvalidArgumentError(absl::StrCat(
        what_s, " ", Quoted(path), " is absolute; give it relative to the run's folder"));
  }
  for (absl::string_view part : absl::StrSplit(absl::string_view(path.data(), path.size()), '/')) {
    if (part == "..") {
      return absl::InvalidArgumentError(
          absl::StrCat(what_s, " ", Quoted(path), " contains \"..\"; it may not leave its folder"));
    }
    if (part.empty() || part == ".") {
      return absl::InvalidArgumentError(absl::StrCat(
          what_s, " ", Quoted(path), " has an empty or \".\" component; write it as a/b/c"));
    }
  }
  return absl::OkStatus();
}

}  // namespace amld::base
