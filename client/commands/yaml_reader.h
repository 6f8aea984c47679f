// Reading the Azure ML YAML files people already write (sweep jobs, command
// jobs, environments, conda files): one reader whose every error is
// "FILE:LINE:COLUMN: what is wrong", and the keys a command job and a sweep's
// trial share (code, command, environment_variables, environment).
//
// Thread-safety: a YamlReader is used by one thread; the functions are pure.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include <yaml-cpp/yaml.h>

#include "absl/status/statusor.h"
#include "amld/v1/runs.pb.h"

namespace amld::client::commands {

using YamlHandler = std::function<absl::Status(const YAML::Node& key, const YAML::Node& value)>;

class YamlReader {
 public:
  // `file` names the file in messages; relative paths in it are resolved
  // against its folder.
  explicit YamlReader(std::filesystem::path file) : file_(std::move(file)) {}

  const std::filesystem::path& file() const { return file_; }
  // `relative` resolved against the file's folder.
  std::filesystem::path Resolve(const std::string& relative) const {
    return file_.parent_path() / relative;
  }

  // Parses `text`; a syntax error is INVALID_ARGUMENT at its line.
  absl::StatusOr<YAML::Node> Load(const std::string& text) const;

  absl::Status Error(const YAML::Node& at, const std::string& what) const;

  // Calls the handler of each key of `map` (which must be a mapping) in
  // file order; unknown and repeated keys are errors naming the known ones.
  // `prefix` names the enclosing section ("limits.").
  absl::Status ForEachKey(const YAML::Node& at, const YAML::Node& map, const std::string& prefix,
                          const std::map<std::string, YamlHandler>& handlers) const;

  absl::StatusOr<std::string> Text(const YAML::Node& key, const YAML::Node& value,
                                   const std::string& name) const;
  absl::StatusOr<double> Number(const YAML::Node& key, const YAML::Node& value,
                                const std::string& name) const;
  absl::StatusOr<int64_t> Integer(const YAML::Node& key, const YAML::Node& value,
                                  const std::string& name, int64_t min) const;
  absl::StatusOr<std::map<std::string, std::string>> TextMap(const YAML::Node& key,
                                                             const YAML::Node& value,
                                                             const std::string& name) const;
  // A list of plain values.
  absl::StatusOr<std::vector<std::string>> TextList(const YAML::Node& key,
                                                    const YAML::Node& value,
                                                    const std::string& name) const;

  // Handlers that store a key's value.
  YamlHandler TextInto(std::string* out, const std::string& name) const;
  static YamlHandler Ignore();

 private:
  std::filesystem::path file_;
};

// A registered environment named by a job ("azureml:NAME:VERSION",
// "azureml:NAME@latest", "NAME:VERSION" or "NAME"); the submitting command
// resolves it with the daemon's Environments service.
struct EnvironmentRef {
  std::string name;
  std::string version;  // empty: the latest
};

// The top-level keys every job file has: $schema, name and description
// (read, not kept: run ids are the daemon's), type, experiment_name,
// display_name, compute and tags (into the RunConfig), inputs and outputs
// (refused: amld has no data assets).
struct JobHeader {
  std::string type;
};
void AddJobHeaderKeys(const YamlReader& r, amld::v1::RunConfig& config, JobHeader& header,
                      std::map<std::string, YamlHandler>& handlers);

// A job file read (command job or sweep): its RunConfig, ready to submit
// but for the snapshot of `code`, and the registered environment it names,
// which the submitting command resolves (job_submit.h).
struct JobFile {
  amld::v1::RunConfig config;
  std::filesystem::path code;  // resolved against the YAML file's folder
  std::optional<EnvironmentRef> environment_ref;
};

// What the shared command keys read besides the RunConfig itself.
struct CommandSection {
  std::string code = ".";  // relative to the YAML file
  std::optional<EnvironmentRef> environment_ref;
};

// Adds the handlers of code, command, environment_variables and environment
// (a registered name, or inline {conda_file, name, version, description};
// image and build are refused: amld runs no containers) to `handlers`,
// storing into `config` and `section`. `prefix` names the section in
// messages ("trial." or "").
void AddCommandKeys(const YamlReader& r, const std::string& prefix, amld::v1::RunConfig& config,
                    CommandSection& section, std::map<std::string, YamlHandler>& handlers);

// Reads a conda environment file (name, channels, dependencies with an
// optional {pip: [...]} entry) into the managed-environment fields of `env`,
// as amld.core's CondaDependencies fills them.
absl::Status ReadCondaFile(const std::filesystem::path& path, amld::v1::Environment& env);

// The refusal of an environment's `image` or `build` key (`key`): amld runs
// no containers yet (docs/environments.md says how it would).
YamlHandler RefuseImageKey(const YamlReader& r, const std::string& key);

// "azureml:NAME:VERSION", "azureml:NAME@latest", "NAME:VERSION", "NAME".
EnvironmentRef ParseEnvironmentRef(std::string text);

// The compute target of a job's `compute:` ("azureml:NAME" is NAME; "local"
// is the default, stored as empty).
std::string ComputeTargetOf(std::string compute);

}  // namespace amld::client::commands
