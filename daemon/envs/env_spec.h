// EnvironmentSpec: a managed environment as the daemon builds it, in one
// canonical form with a digest that names its cached build (env_builder.h).
// Pure functions: no I/O, tested directly.
//
// From the submitted amld.v1.Environment:
//   - pip_requirements: blank lines and comments ("# ...", " # ...") are
//     dropped; options are written one way ("-i URL", "--index-url=URL" →
//     "--index-url URL"); the accepted options are --index-url,
//     --extra-index-url, --find-links/-f, --no-index, --pre, --trusted-host
//     and -e/--editable (an absolute path or a VCS URL: a relative path means
//     nothing on the daemon's machine). -r/-c (other files, whose content
//     the digest would not see) and any other option are refused, naming it.
//   - conda_packages: "python=3.11" sets the Python version (it must agree
//     with python_version when both are given); "pip" is the venv's own pip
//     ("pip=23.2" becomes the pip requirement "pip==23.2"); every other
//     package needs a conda tool (EnvironmentOptions.conda_path): without
//     one the submit is refused with FAILED_PRECONDITION naming the packages
//     and the setting. Nothing is ever dropped silently.
//   - conda_channels count only with conda packages beyond python and pip.
// Lists are sorted and deduplicated, so the order a spec was written in
// does not change its digest (pip and conda resolve a set).
//
// Thread-safety: free functions, thread-safe.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "amld/v1/runs.pb.h"

namespace amld::daemon {

struct EnvironmentSpec {
  // "3.11" (interpreter python3.11) or "3.11.7" (python3.11, whose version
  // must then match); empty: python3.
  std::string python_version;
  // Options first ("--index-url URL", "-e /path"), then requirements.
  std::vector<std::string> pip_options;
  std::vector<std::string> pip_requirements;
  // Packages for the conda tool (never python or pip), and channels.
  std::vector<std::string> conda_packages;
  std::vector<std::string> conda_channels;

  bool needs_conda() const { return !conda_packages.empty(); }
};

// True when `env` asks for a managed environment: not user-managed and
// naming a Python version, pip requirements or conda packages.
bool IsManagedEnvironment(const amld::v1::Environment& env);

// The spec of a managed environment, or INVALID_ARGUMENT (a malformed or
// refused line, named) / FAILED_PRECONDITION (conda packages without a conda
// tool: `conda_configured` false). user_managed_dependencies with packages
// is INVALID_ARGUMENT: the packages would be ignored.
absl::StatusOr<EnvironmentSpec> SpecFromEnvironment(const amld::v1::Environment& env,
                                                    bool conda_configured);

// The canonical text ("amld-environment 1\npython 3.11\npip-option ...\n
// pip ...\n"), what the digest is of and what a built environment keeps.
std::string CanonicalText(const EnvironmentSpec& spec);

// Hex SHA-256 of CanonicalText.
std::string SpecDigest(const EnvironmentSpec& spec);

// The first 12 hex digits, for people ("building environment 3f2a…").
std::string ShortDigest(const std::string& digest);

// The interpreter to make the venv with: "python3.11" for "3.11"/"3.11.7",
// "python3" for none.
std::string BaseInterpreter(const EnvironmentSpec& spec);

// Python code for `<venv>/bin/python -c`: exits 0 when the interpreter is
// the spec's python_version (3.11 matches 3.11.x), else with a message
// naming both. python3.11 may be 3.11.4 when 3.11.7 was asked for: a run
// never runs with another version than its spec names.
std::string PythonVersionCheck(const EnvironmentSpec& spec);

// The requirements file handed to pip: options, then requirements, one a
// line.
std::string RequirementsFile(const EnvironmentSpec& spec);

// True when the spec alone decides what gets installed, so one build may
// serve every user of a shared machine (system mode's shared cache,
// env_builder.h): no conda packages (conda resolves against the channels'
// state of the day), no -e, and every pip requirement pinned to one version
// with "==" and carrying --hash=ALG:HEX (pip's hash-checking mode, in which
// pip also refuses any dependency that is not pinned and hashed). A spec
// with only a Python version qualifies too: nothing from an index runs.
bool DeterminesItsResult(const EnvironmentSpec& spec);

}  // namespace amld::daemon
