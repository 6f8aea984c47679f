#include "client/submitter_env.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace amld::client {
namespace {

bool IsShellOnly(std::string_view name) {
  static constexpr std::string_view kShellOnly[] = {"PWD", "OLDPWD", "SHLVL", "_", "COLUMNS",
                                                    "LINES"};
  return std::find(std::begin(kShellOnly), std::end(kShellOnly), name) != std::end(kShellOnly);
}

}  // namespace

const std::vector<std::string> kPathListVariables = {
    "PATH", "PYTHONPATH", "LD_LIBRARY_PATH", "LIBRARY_PATH", "CPATH", "PKG_CONFIG_PATH", "MANPATH"};

std::string AbsolutePathList(std::string_view list, const std::filesystem::path& cwd) {
  if (cwd.empty()) return std::string(list);
  std::vector<std::string> entries;
  for (absl::string_view entry : absl::StrSplit(absl::string_view(list.data(), list.size()), ':')) {
    if (entry.empty() || entry.front() == '/') {
      entries.emplace_back(entry);
      continue;
    }
    std::string absolute = (cwd / std::string(entry)).lexically_normal().string();
    if (absolute.size() > 1 && absolute.back() == '/') absolute.pop_back();
    entries.push_back(std::move(absolute));
  }
  return absl::StrJoin(entries, ":");
}

bool LooksLikeSecret(std::string_view name) {
  std::string upper(name);
  std::transform(upper.begin(), upper.end(), upper.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  for (std::string_view word : {"SECRET", "PASSWORD", "PASSWD", "TOKEN", "CREDENTIAL", "PRIVATE"}) {
    if (upper.find(word) != std::string::npos) return true;
  }
  return absl::EndsWith(upper, "_KEY") || absl::EndsWith(upper, "_PASS") || upper == "KEY";
}

std::string FindInPath(std::string_view program, std::string_view path) {
  for (absl::string_view dir : absl::StrSplit(absl::string_view(path.data(), path.size()), ':')) {
    if (dir.empty() || dir.front() != '/') continue;  // "" and relative folders mean the cwd
    std::string candidate = absl::StrCat(dir, dir.back() == '/' ? "" : "/",
                                         absl::string_view(program.data(), program.size()));
    struct stat st;
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        ::access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
  }
  return "";
}

amld::v1::SubmitterEnvironment CaptureSubmitterEnvironment(const char* const* envp,
                                                           const std::vector<std::string>& pass,
                                                           const std::filesystem::path& cwd) {
  amld::v1::SubmitterEnvironment out;
  std::vector<std::string> left_out;
  for (const char* const* e = envp; e != nullptr && *e != nullptr; ++e) {
    std::string_view entry(*e);
    const size_t eq = entry.find('=');
    if (eq == std::string_view::npos || eq == 0) continue;
    std::string name(entry.substr(0, eq));
    const bool asked = std::find(pass.begin(), pass.end(), name) != pass.end();
    if (absl::StartsWith(name, "AMLD_") || IsShellOnly(name) ||
        (LooksLikeSecret(name) && !asked)) {
      left_out.push_back(std::move(name));
      continue;
    }
    std::string value(entry.substr(eq + 1));
    if (std::find(kPathListVariables.begin(), kPathListVariables.end(), name) !=
        kPathListVariables.end()) {
      value = AbsolutePathList(value, cwd);
    }
    (*out.mutable_variables())[name] = std::move(value);
  }
  std::sort(left_out.begin(), left_out.end());
  left_out.erase(std::unique(left_out.begin(), left_out.end()), left_out.end());
  for (std::string& name : left_out) out.add_left_out(std::move(name));
  auto path = out.variables().find("PATH");
  if (path != out.variables().end()) out.set_python(FindInPath("python3", path->second));
  return out;
}

}  // namespace amld::client
