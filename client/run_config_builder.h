// Turns what a person typed for `aml run submit` into an amld.v1.RunConfig
// (without the snapshot digest and git info, which the caller adds after
// hashing the source folder). Pure: no I/O besides resolving the source
// folder's name, so every rule is unit-tested.
//
// Thread-safety: free functions, thread-safe.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "amld/v1/runs.pb.h"

namespace amld::client {

struct SubmitSpec {
  std::string experiment;  // empty: DefaultExperimentName(source_dir)
  std::filesystem::path source_dir = ".";
  std::string compute_target;        // empty: the daemon's "local"
  std::string interpreter;           // empty: python3 on the executor's PATH
  int64_t max_duration_seconds = 0;  // 0: no limit
  int priority = 0;                  // -100..100; higher starts first
  int cpus = 0;                      // CPU slots; 0: the daemon's default (1)
  int gpus = -1;  // GPUs the run gets to itself; -1 (not asked): the daemon's default_gpus
  std::vector<std::string> tags;     // "KEY=VALUE" each
  std::vector<std::string> env;      // "NAME=VALUE" each
  std::string script;                // relative to source_dir ...
  std::string command;               // ... or a shell command line
  std::vector<std::string> arguments;
};

// The experiment name for a source folder: its base name (after resolving
// "." and symlinks), with characters other than letters, digits, '-', '_'
// and '.' replaced by '_', cut to 128 characters; "default" if that leaves
// nothing.
std::string DefaultExperimentName(const std::filesystem::path& source_dir);

// Splits "KEY=VALUE" at the first '='. INVALID_ARGUMENT naming `flag` when
// there is no '=' or the key is empty.
absl::StatusOr<std::pair<std::string, std::string>> ParseKeyValue(std::string_view flag,
                                                                  std::string_view text);

// The script as a path relative to the snapshot root, '/'-separated and
// normalized ("./a//b.py" → "a/b.py"). INVALID_ARGUMENT when it is
// absolute or leaves the source folder.
absl::StatusOr<std::string> NormalizeScriptPath(std::string_view script);

// The RunConfig for `spec`. INVALID_ARGUMENT (a usage error) when both or
// neither of script and command are given, a tag or variable is malformed,
// the duration, cpus or gpus is negative, or the priority is outside
// -100..100.
absl::StatusOr<amld::v1::RunConfig> BuildRunConfig(const SubmitSpec& spec);

}  // namespace amld::client
