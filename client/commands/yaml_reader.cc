#include "client/commands/yaml_reader.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "base/yaml_keys.h"

namespace amld::client::commands {

absl::StatusOr<YAML::Node> YamlReader::Load(const std::string& text) const {
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(file_.string(), ":", e.mark.line + 1, ":", e.mark.column + 1, ": ", e.msg));
  }
}

absl::Status YamlReader::Error(const YAML::Node& at, const std::string& what) const {
  const YAML::Mark mark = at.Mark();
  if (mark.is_null()) return absl::InvalidArgumentError(absl::StrCat(file_.string(), ": ", what));
  return absl::InvalidArgumentError(
      absl::StrCat(file_.string(), ":", mark.line + 1, ":", mark.column + 1, ": ", what));
}

absl::Status YamlReader::ForEachKey(const YAML::Node& at, const YAML::Node& map,
                                    const std::string& prefix,
                                    const std::map<std::string, YamlHandler>& handlers) const {
  if (!map.IsMap()) {
    return Error(map.IsNull() ? at : map,
                 absl::StrCat(prefix.empty() ? "the file" : prefix.substr(0, prefix.size() - 1),
                              " must be a mapping of keys to values"));
  }
  return base::ForEachYamlKey(
      map, prefix, handlers,
      [this](const YAML::Node& node, const std::string& what) { return Error(node, what); });
}

absl::StatusOr<std::string> YamlReader::Text(const YAML::Node& key, const YAML::Node& value,
                                             const std::string& name) const {
  if (!value.IsScalar()) return Error(value.IsNull() ? key : value, name + " must be a text");
  return value.Scalar();
}

absl::StatusOr<double> YamlReader::Number(const YAML::Node& key, const YAML::Node& value,
                                          const std::string& name) const {
  double d = 0;
  if (!value.IsScalar() || !absl::SimpleAtod(value.Scalar(), &d) || !std::isfinite(d)) {
    return Error(value.IsNull() ? key : value, name + " must be a number");
  }
  return d;
}

absl::StatusOr<int64_t> YamlReader::Integer(const YAML::Node& key, const YAML::Node& value,
                                            const std::string& name, int64_t min) const {
  int64_t n = 0;
  if (!value.IsScalar() || !absl::SimpleAtoi(value.Scalar(), &n)) {
    return Error(value.IsNull() ? key : value, name + " must be an integer");
  }
  if (n < min) return Error(value, absl::StrCat(name, " must be at least ", min, ", got ", n));
  return n;
}

absl::StatusOr<std::map<std::string, std::string>> YamlReader::TextMap(
    const YAML::Node& key, const YAML::Node& value, const std::string& name) const {
  if (!value.IsMap()) return Error(value.IsNull() ? key : value, name + " must be a mapping");
  std::map<std::string, std::string> out;
  for (const auto& e : value) {
    if (!e.first.IsScalar() || !e.second.IsScalar()) {
      return Error(e.first, absl::StrCat(name, " holds plain keys and values"));
    }
    out[e.first.Scalar()] = e.second.Scalar();
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> YamlReader::TextList(const YAML::Node& key,
                                                              const YAML::Node& value,
                                                              const std::string& name) const {
  if (!value.IsSequence()) return Error(value.IsNull() ? key : value, name + " must be a list");
  std::vector<std::string> out;
  for (const YAML::Node& item : value) {
    if (!item.IsScalar()) return Error(item, name + " holds plain values");
    out.push_back(item.Scalar());
  }
  return out;
}

YamlHandler YamlReader::TextInto(std::string* out, const std::string& name) const {
  return [this, out, name](const YAML::Node& k, const YAML::Node& v) -> absl::Status {
    AMLD_ASSIGN_OR_RETURN(*out, Text(k, v, name));
    return absl::OkStatus();
  };
}

YamlHandler YamlReader::Ignore() {
  return [](const YAML::Node&, const YAML::Node&) { return absl::OkStatus(); };
}

EnvironmentRef ParseEnvironmentRef(std::string text) {
  if (absl::StartsWith(text, "azureml:")) text = text.substr(8);
  EnvironmentRef ref;
  if (absl::EndsWith(text, "@latest")) {
    ref.name = text.substr(0, text.size() - 7);
    return ref;
  }
  const size_t colon = text.rfind(':');
  ref.name = text.substr(0, colon);
  if (colon != std::string::npos) ref.version = text.substr(colon + 1);
  return ref;
}

std::string ComputeTargetOf(std::string compute) {
  if (absl::StartsWith(compute, "azureml:")) compute = compute.substr(8);
  return compute == "local" ? "" : compute;
}

absl::Status ReadCondaFile(const std::filesystem::path& path, amld::v1::Environment& env) {
  std::ifstream in(path);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("cannot read the conda file ", path.string()));
  }
  std::stringstream text;
  text << in.rdbuf();
  YamlReader r(path);
  AMLD_ASSIGN_OR_RETURN(YAML::Node root, r.Load(text.str()));
  std::vector<std::string> pip_options, pip_packages;
  AMLD_RETURN_IF_ERROR(r.ForEachKey(
      root, root, "",
      {{"name", YamlReader::Ignore()},
       {"prefix", YamlReader::Ignore()},
       {"variables",
        [&](const YAML::Node& k, const YAML::Node&) {
          return r.Error(k, "variables are not supported in a conda file: put them in the "
                            "job's environment_variables");
        }},
       {"channels",
        [&](const YAML::Node& k, const YAML::Node& v) -> absl::Status {
          AMLD_ASSIGN_OR_RETURN(auto channels, r.TextList(k, v, "channels"));
          for (auto& c : channels) env.add_conda_channels(c);
          return absl::OkStatus();
        }},
       {"dependencies", [&](const YAML::Node& k, const YAML::Node& v) -> absl::Status {
          if (!v.IsSequence()) return r.Error(v.IsNull() ? k : v, "dependencies must be a list");
          for (const YAML::Node& item : v) {
            if (item.IsScalar()) {
              env.add_conda_packages(std::string(absl::StripAsciiWhitespace(item.Scalar())));
              continue;
            }
            if (!item.IsMap() || item.size() != 1 || !item["pip"]) {
              return r.Error(item, "a mapping among dependencies must be the pip: list");
            }
            AMLD_ASSIGN_OR_RETURN(auto lines, r.TextList(item, item["pip"], "dependencies.pip"));
            for (auto& line : lines) {
              std::string l(absl::StripAsciiWhitespace(line));
              if (l.empty()) continue;
              (absl::StartsWith(l, "-") ? pip_options : pip_packages).push_back(l);
            }
          }
          return absl::OkStatus();
        }}}));
  // Options first, as amld.core's CondaDependencies orders them: the same
  // file gives the same spec (and digest) from the SDK and from aml.
  for (auto& l : pip_options) env.add_pip_requirements(l);
  for (auto& l : pip_packages) env.add_pip_requirements(l);
  return absl::OkStatus();
}

YamlHandler RefuseImageKey(const YamlReader& r, const std::string& key) {
  return [&r, key](const YAML::Node& k, const YAML::Node&) {
    return r.Error(k, key == "build"
                          ? "amld builds no images: give a conda_file instead of build"
                          : "amld runs no containers yet: leave image out and give a conda_file; "
                            "the environment is built as a venv from its python and pip parts");
  };
}

namespace {

// An inline environment: {conda_file, name, version, description}.
absl::Status ReadInlineEnvironment(const YamlReader& r, const std::string& prefix,
                                   const YAML::Node& key, const YAML::Node& value,
                                   amld::v1::Environment& env) {
  std::string conda_file;
  AMLD_RETURN_IF_ERROR(r.ForEachKey(
      key, value, prefix + "environment.",
      {{"name", r.TextInto(env.mutable_name(), prefix + "environment.name")},
       {"version", YamlReader::Ignore()},
       {"description", YamlReader::Ignore()},
       {"conda_file", r.TextInto(&conda_file, prefix + "environment.conda_file")},
       {"image", RefuseImageKey(r, "image")},
       {"build", RefuseImageKey(r, "build")}}));
  if (conda_file.empty()) {
    return r.Error(value, prefix + "environment needs a conda_file (or name a registered "
                                   "environment: azureml:NAME:VERSION)");
  }
  if (env.name().empty()) env.set_name("job-environment");
  return ReadCondaFile(r.Resolve(conda_file), env);
}

}  // namespace

void AddJobHeaderKeys(const YamlReader& r, amld::v1::RunConfig& c, JobHeader& header,
                      std::map<std::string, YamlHandler>& handlers) {
  handlers["$schema"] = YamlReader::Ignore();
  handlers["name"] = YamlReader::Ignore();
  handlers["description"] = YamlReader::Ignore();
  handlers["type"] = r.TextInto(&header.type, "type");
  handlers["experiment_name"] = r.TextInto(c.mutable_experiment_name(), "experiment_name");
  handlers["display_name"] = r.TextInto(c.mutable_display_name(), "display_name");
  handlers["compute"] = [&r, &c](const YAML::Node& k, const YAML::Node& v) -> absl::Status {
    AMLD_ASSIGN_OR_RETURN(std::string compute, r.Text(k, v, "compute"));
    c.set_compute_target(ComputeTargetOf(compute));
    return absl::OkStatus();
  };
  handlers["tags"] = [&r, &c](const YAML::Node& k, const YAML::Node& v) -> absl::Status {
    AMLD_ASSIGN_OR_RETURN(auto tags, r.TextMap(k, v, "tags"));
    for (auto& [key, value] : tags) (*c.mutable_tags())[key] = value;
    return absl::OkStatus();
  };
  for (const char* key : {"inputs", "outputs"}) {
    handlers[key] = [&r, key](const YAML::Node& k, const YAML::Node&) {
      return r.Error(k, absl::StrCat(key, " are not supported by amld: put the data in the code "
                                          "folder or read it from a path the script knows; "
                                          "write results under ./outputs"));
    };
  }
}

void AddCommandKeys(const YamlReader& r, const std::string& prefix, amld::v1::RunConfig& c,
                    CommandSection& section, std::map<std::string, YamlHandler>& handlers) {
  handlers["code"] = r.TextInto(&section.code, prefix + "code");
  handlers["command"] = [&r, &c, prefix](const YAML::Node& k,
                                         const YAML::Node& v) -> absl::Status {
    AMLD_ASSIGN_OR_RETURN(std::string command, r.Text(k, v, prefix + "command"));
    c.set_command(std::string(absl::StripAsciiWhitespace(command)));
    return absl::OkStatus();
  };
  handlers["environment_variables"] = [&r, &c, prefix](const YAML::Node& k,
                                                       const YAML::Node& v) -> absl::Status {
    AMLD_ASSIGN_OR_RETURN(auto env, r.TextMap(k, v, prefix + "environment_variables"));
    for (auto& [key, value] : env) {
      (*c.mutable_environment()->mutable_environment_variables())[key] = value;
    }
    return absl::OkStatus();
  };
  handlers["environment"] = [&r, &c, &section, prefix](const YAML::Node& k,
                                                      const YAML::Node& v) -> absl::Status {
    if (v.IsScalar()) {
      section.environment_ref = ParseEnvironmentRef(v.Scalar());
      if (section.environment_ref->name.empty()) {
        return r.Error(v, prefix + "environment names a registered environment: "
                                   "azureml:NAME:VERSION or azureml:NAME@latest");
      }
      return absl::OkStatus();
    }
    return ReadInlineEnvironment(r, prefix, k, v, *c.mutable_environment());
  };
}

}  // namespace amld::client::commands
