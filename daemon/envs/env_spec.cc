#include "daemon/envs/env_spec.h"

#include <algorithm>
#include <cstring>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/status_macros.h"
#include "storage/digest.h"

namespace amld::daemon {
namespace {

constexpr char kSetting[] = "environments.conda_path in amld.yaml";

// Options that take a value, by every spelling pip accepts, and the one
// spelling the canonical form uses.
struct ValueOption {
  const char* canonical;
  std::vector<const char*> spellings;
};
const std::vector<ValueOption>& ValueOptions() {
  static const auto* options = new std::vector<ValueOption>{
      {"--index-url", {"--index-url", "-i"}},
      {"--extra-index-url", {"--extra-index-url"}},
      {"--find-links", {"--find-links", "-f"}},
      {"--trusted-host", {"--trusted-host"}},
      {"-e", {"-e", "--editable"}},
  };
  return *options;
}

bool HasBadCharacters(absl::string_view s) {
  return std::any_of(s.begin(), s.end(),
                     [](char c) { return c == '\0' || c == '\n' || c == '\r'; });
}

std::string CollapseSpaces(absl::string_view line) {
  return absl::StrJoin(absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty()), " ");
}

// Drops a comment: "#" at the start or after whitespace (pip's rule; a "#"
// inside a URL fragment stays).
std::string WithoutComment(absl::string_view line) {
  for (size_t i = 0; i < line.size(); ++i) {
    if (line[i] == '#' && (i == 0 || line[i - 1] == ' ' || line[i - 1] == '\t')) {
      return std::string(absl::StripAsciiWhitespace(line.substr(0, i)));
    }
  }
  return std::string(absl::StripAsciiWhitespace(line));
}

absl::Status CheckEditable(const std::string& target) {
  if (absl::StartsWith(target, "/") || absl::StrContains(target, "://")) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat("pip requirement \"-e ", target,
                   "\": an editable install needs an absolute path on the daemon's machine or a "
                   "VCS URL (git+https://...); a relative path means nothing there"));
}

// One option line → its canonical form.
absl::StatusOr<std::string> CanonicalOption(const std::string& line) {
  if (line == "--no-index" || line == "--pre") return line;
  for (const ValueOption& option : ValueOptions()) {
    for (const char* spelling : option.spellings) {
      std::string value;
      if (line == spelling) {
        return absl::InvalidArgumentError(absl::StrCat(
            "pip requirement line \"", line, "\": ", option.canonical, " takes exactly one value"));
      }
      if (absl::StartsWith(line, absl::StrCat(spelling, "="))) {
        value = line.substr(std::strlen(spelling) + 1);
      } else if (absl::StartsWith(line, absl::StrCat(spelling, " "))) {
        value = line.substr(std::strlen(spelling) + 1);
      } else if (std::strlen(spelling) == 2 && absl::StartsWith(line, spelling) &&
                 line.size() > 2 && line[2] != '-') {
        value = line.substr(2);  // "-ihttps://..." as pip accepts it
      } else {
        continue;
      }
      value = std::string(absl::StripAsciiWhitespace(value));
      if (value.empty() || absl::StrContains(value, " ")) {
        return absl::InvalidArgumentError(absl::StrCat(
            "pip requirement line \"", line, "\": ", option.canonical, " takes exactly one value"));
      }
      if (absl::string_view(option.canonical) == "-e") AMLD_RETURN_IF_ERROR(CheckEditable(value));
      return absl::StrCat(option.canonical, " ", value);
    }
  }
  const std::string name(line.substr(0, line.find_first_of(" =")));
  if (name == "-r" || name == "--requirement" || name == "-c" || name == "--constraint") {
    return absl::InvalidArgumentError(absl::StrCat(
        "pip requirement line \"", line, "\": ", name,
        " names another file, whose content the environment's digest would not see; put its "
        "lines into the requirements instead"));
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "pip requirement line \"", line, "\": option ", name,
      " is not supported in a managed environment (supported: --index-url, --extra-index-url, "
      "--find-links, --no-index, --pre, --trusted-host, -e)"));
}

// "python=3.11", "python==3.11", "python 3.11", "python>=3.9" → name and the
// rest ("=3.11", ...).
std::pair<std::string, std::string> SplitCondaPackage(const std::string& package) {
  size_t end = package.find_first_of("=<>!~ ");
  if (end == std::string::npos) return {absl::AsciiStrToLower(package), ""};
  return {absl::AsciiStrToLower(package.substr(0, end)),
          std::string(absl::StripAsciiWhitespace(package.substr(end)))};
}

bool IsVersionNumber(absl::string_view v) {
  std::vector<absl::string_view> parts = absl::StrSplit(v, '.');
  if (parts.empty() || parts.size() > 3) return false;
  for (absl::string_view p : parts) {
    if (p.empty() || !std::all_of(p.begin(), p.end(), absl::ascii_isdigit)) return false;
  }
  return parts[0] == "3";
}

absl::Status SetPythonVersion(const std::string& version, const std::string& from,
                              EnvironmentSpec* spec) {
  if (!IsVersionNumber(version)) {
    return absl::InvalidArgumentError(absl::StrCat(
        from, ": the Python version must be like 3.11 or 3.11.7, got \"", version, "\""));
  }
  if (!spec->python_version.empty() && spec->python_version != version) {
    return absl::InvalidArgumentError(absl::StrCat(from, " asks for Python ", version,
                                                   " but the environment already says ",
                                                   spec->python_version, "; keep one"));
  }
  spec->python_version = version;
  return absl::OkStatus();
}

// "name==1.0", "name[extra]==1.0", "name==1.0; python_version>'3'": one
// exact version (no wildcard, no other clause, no URL).
bool PinsOneVersion(absl::string_view requirement) {
  absl::string_view spec = requirement.substr(0, requirement.find(';'));
  const size_t eq = spec.find("==");
  if (eq == absl::string_view::npos || eq == 0) return false;
  absl::string_view name = absl::StripAsciiWhitespace(spec.substr(0, eq));
  absl::string_view version = absl::StripAsciiWhitespace(spec.substr(eq + 2));
  if (name.empty() || version.empty() || version[0] == '=') return false;  // "===" is not pip's pin
  return !std::any_of(name.begin(), name.end(), [](char c) { return std::strchr("<>!~=@ ", c); }) &&
         !std::any_of(version.begin(), version.end(),
                      [](char c) { return std::strchr("*,<>!~=@ ", c); });
}

// "sha256:<hex>" (sha384, sha512: the algorithms pip accepts).
bool IsHashValue(absl::string_view value) {
  const size_t colon = value.find(':');
  if (colon == absl::string_view::npos) return false;
  const absl::string_view algorithm = value.substr(0, colon);
  const absl::string_view hex = value.substr(colon + 1);
  return (algorithm == "sha256" || algorithm == "sha384" || algorithm == "sha512") &&
         !hex.empty() && std::all_of(hex.begin(), hex.end(), absl::ascii_isxdigit);
}

void SortUnique(std::vector<std::string>* v) {
  std::sort(v->begin(), v->end());
  v->erase(std::unique(v->begin(), v->end()), v->end());
}

}  // namespace

bool IsManagedEnvironment(const amld::v1::Environment& env) {
  return !env.pip_requirements().empty() || !env.conda_packages().empty() ||
         !env.python_version().empty();
}

absl::StatusOr<EnvironmentSpec> SpecFromEnvironment(const amld::v1::Environment& env,
                                                    bool conda_configured) {
  if (env.user_managed_dependencies()) {
    return absl::InvalidArgumentError(
        "environment sets python.user_managed_dependencies and also lists packages or a Python "
        "version, which a user-managed environment would ignore; set "
        "user_managed_dependencies to False for amld to build them, or remove them");
  }
  EnvironmentSpec spec;
  if (!env.python_version().empty()) {
    AMLD_RETURN_IF_ERROR(SetPythonVersion(env.python_version(), "python_version", &spec));
  }
  for (const std::string& raw : env.pip_requirements()) {
    if (HasBadCharacters(raw)) {
      return absl::InvalidArgumentError(
          "pip requirement lines must not contain NUL or line breaks; give one line each");
    }
    std::string line = CollapseSpaces(WithoutComment(raw));
    if (line.empty()) continue;
    if (line[0] == '-') {
      AMLD_ASSIGN_OR_RETURN(std::string option, CanonicalOption(line));
      spec.pip_options.push_back(std::move(option));
    } else {
      spec.pip_requirements.push_back(std::move(line));
    }
  }
  std::vector<std::string> need_conda;
  for (const std::string& raw : env.conda_packages()) {
    if (HasBadCharacters(raw)) {
      return absl::InvalidArgumentError("conda packages must not contain NUL or line breaks");
    }
    std::string package = CollapseSpaces(raw);
    if (package.empty()) continue;
    auto [name, rest] = SplitCondaPackage(package);
    if (name == "python") {
      std::string version(
          absl::StripLeadingAsciiWhitespace(absl::StripPrefix(absl::StripPrefix(rest, "="), "=")));
      if (version.empty()) continue;  // "python": the default interpreter
      if (!IsVersionNumber(version)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "conda package \"", package,
            "\": amld builds Python environments from an installed interpreter, so the Python "
            "version must be exact, like python=3.11"));
      }
      AMLD_RETURN_IF_ERROR(
          SetPythonVersion(version, absl::StrCat("conda package ", package), &spec));
    } else if (name == "pip") {
      // The venv brings pip; a pinned one is installed by pip itself.
      std::string version(absl::StripPrefix(absl::StripPrefix(rest, "="), "="));
      if (!version.empty()) spec.pip_requirements.push_back(absl::StrCat("pip==", version));
    } else {
      need_conda.push_back(package);
    }
  }
  if (!need_conda.empty()) {
    if (!conda_configured) {
      return absl::FailedPreconditionError(
          absl::StrCat("conda packages ", absl::StrJoin(need_conda, ", "),
                       " need a conda tool, and this daemon has none configured: set ", kSetting,
                       " (a conda, mamba or micromamba binary), or install them with pip "
                       "(pip_packages) instead"));
    }
    spec.conda_packages = std::move(need_conda);
    for (const std::string& channel : env.conda_channels()) {
      std::string c(absl::StripAsciiWhitespace(channel));
      if (HasBadCharacters(c) || absl::StrContains(c, " ")) {
        return absl::InvalidArgumentError(
            absl::StrCat("conda channel \"", absl::CEscape(channel), "\" is not a channel name"));
      }
      if (!c.empty()) spec.conda_channels.push_back(c);
    }
    SortUnique(&spec.conda_packages);
  }
  // Options keep their order (the first --index-url wins in pip); lists
  // that are sets are sorted.
  SortUnique(&spec.pip_requirements);
  return spec;
}

std::string CanonicalText(const EnvironmentSpec& spec) {
  std::string text = "amld-environment 1\n";
  absl::StrAppend(&text, "python ", spec.python_version.empty() ? "-" : spec.python_version, "\n");
  for (const std::string& c : spec.conda_channels)
    absl::StrAppend(&text, "conda-channel ", c, "\n");
  for (const std::string& p : spec.conda_packages) absl::StrAppend(&text, "conda ", p, "\n");
  for (const std::string& o : spec.pip_options) absl::StrAppend(&text, "pip-option ", o, "\n");
  for (const std::string& r : spec.pip_requirements) absl::StrAppend(&text, "pip ", r, "\n");
  return text;
}

std::string SpecDigest(const EnvironmentSpec& spec) {
  return amld::storage::DigestOf(CanonicalText(spec)).hash;
}

std::string ShortDigest(const std::string& digest) { return digest.substr(0, 12); }

std::string BaseInterpreter(const EnvironmentSpec& spec) {
  if (spec.python_version.empty()) return "python3";
  std::vector<std::string> parts = absl::StrSplit(spec.python_version, '.');
  if (parts.size() < 2) return "python3";
  return absl::StrCat("python", parts[0], ".", parts[1]);
}

std::string RequirementsFile(const EnvironmentSpec& spec) {
  std::string text;
  for (const std::string& o : spec.pip_options) absl::StrAppend(&text, o, "\n");
  for (const std::string& r : spec.pip_requirements) absl::StrAppend(&text, r, "\n");
  return text;
}

bool DeterminesItsResult(const EnvironmentSpec& spec) {
  if (spec.needs_conda()) return false;
  for (const std::string& option : spec.pip_options) {
    if (absl::StartsWith(option, "-e ")) return false;
  }
  for (const std::string& line : spec.pip_requirements) {
    // The canonical line has single spaces: "name==1.0 --hash=sha256:ab".
    std::vector<absl::string_view> words = absl::StrSplit(line, ' ');
    std::string requirement;
    int hashes = 0;
    for (size_t i = 0; i < words.size(); ++i) {
      if (absl::StartsWith(words[i], "--hash=")) {
        if (!IsHashValue(words[i].substr(7))) return false;
        ++hashes;
      } else if (words[i] == "--hash" && i + 1 < words.size()) {
        if (!IsHashValue(words[++i])) return false;
        ++hashes;
      } else if (absl::StartsWith(words[i], "-")) {
        return false;  // another per-requirement option (--global-option, ...)
      } else {
        absl::StrAppend(&requirement, requirement.empty() ? "" : " ", words[i]);
      }
    }
    if (hashes == 0 || !PinsOneVersion(requirement)) return false;
  }
  return true;
}

std::string PythonVersionCheck(const EnvironmentSpec& spec) {
  return absl::StrCat(
      "import platform,sys; v=platform.python_version(); w='", spec.python_version,
      "'; sys.exit(0 if v==w or v.startswith(w+'.') else 'this machine has Python '+v+', not '+w)");
}

}  // namespace amld::daemon
