#include "daemon/config.h"

#include <yaml-cpp/yaml.h>

#include <functional>
#include <limits>
#include <map>
#include <set>
#include <system_error>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "base/file_util.h"
#include "base/status_macros.h"

namespace amld::daemon {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kMaxCount = 1'000'000;
constexpr int64_t kMaxGpuId = 65535;
constexpr int64_t kKeepAll = -1;  // keep_finished_run_folders: never remove
constexpr int64_t kMaxSeconds = int64_t{100} * 365 * 24 * 3600;  // a century

// Everything yaml-cpp may throw stays in this file: each function here
// returns a Status.
class ConfigParser {
 public:
  explicit ConfigParser(std::string source) : source_(std::move(source)) {}

  absl::StatusOr<DaemonConfig> ParseTop(const YAML::Node& root) {
    DaemonConfig config;
    if (!root.IsDefined() || root.IsNull()) return config;  // empty file
    if (!root.IsMap()) {
      return Error(root, "the file must be a mapping of settings (key: value), e.g. \"cpus: 4\"");
    }
    const std::map<std::string, Handler> handlers = {
        {"max_concurrent_runs",
         [&](const YAML::Node& k, const YAML::Node& v) {
           return Assign(k, v, 1, kMaxCount, &config.max_concurrent_runs);
         }},
        {"cpus", [&](const YAML::Node& k,
                     const YAML::Node& v) { return Assign(k, v, 1, kMaxCount, &config.cpus); }},
        {"gpus", [&](const YAML::Node& k, const YAML::Node& v) { return Gpus(k, v, &config); }},
        {"kill_grace_seconds",
         [&](const YAML::Node& k, const YAML::Node& v) {
           return Assign(k, v, 0, kMaxSeconds, &config.kill_grace_seconds);
         }},
        {"keep_finished_run_folders",
         [&](const YAML::Node& k, const YAML::Node& v) {
           return KeepFinishedRunFolders(k, v, &config);
         }},
        {"limits", [&](const YAML::Node& k, const YAML::Node& v) { return Limits(k, v, &config); }},
    };
    AMLD_RETURN_IF_ERROR(ForEachKey(root, "", handlers));
    return config;
  }

 private:
  using Handler = std::function<absl::Status(const YAML::Node& key, const YAML::Node& value)>;

  absl::Status Error(const YAML::Node& at, const std::string& what) const {
    return Error(at.Mark(), what);
  }
  absl::Status Error(const YAML::Mark& mark, const std::string& what) const {
    if (mark.is_null()) return absl::InvalidArgumentError(absl::StrCat(source_, ": ", what));
    return absl::InvalidArgumentError(
        absl::StrCat(source_, ":", mark.line + 1, ":", mark.column + 1, ": ", what));
  }

  // Calls the handler of each key of `map`; unknown and repeated keys are
  // errors. `prefix` names the enclosing section ("limits.").
  absl::Status ForEachKey(const YAML::Node& map, const std::string& prefix,
                          const std::map<std::string, Handler>& handlers) {
    std::set<std::string> seen;
    for (const auto& entry : map) {
      const YAML::Node& key = entry.first;
      if (!key.IsScalar()) return Error(key, "keys must be plain names");
      const std::string name = key.Scalar();
      auto handler = handlers.find(name);
      if (handler == handlers.end()) {
        std::vector<std::string> known;
        for (const auto& [k, _] : handlers) known.push_back(prefix + k);
        return Error(key, absl::StrCat("unknown key \"", prefix, name,
                                       "\"; known keys: ", absl::StrJoin(known, ", ")));
      }
      if (!seen.insert(name).second) {
        return Error(key, absl::StrCat("\"", prefix, name, "\" is set twice; keep one"));
      }
      AMLD_RETURN_IF_ERROR(handler->second(key, entry.second));
    }
    return absl::OkStatus();
  }

  // A plain integer scalar in [min, max].
  absl::StatusOr<int64_t> Integer(const YAML::Node& key, const YAML::Node& value,
                                  const std::string& name, int64_t min, int64_t max) {
    const YAML::Node& at = value.Mark().is_null() ? key : value;
    if (value.IsNull()) return Error(key, absl::StrCat(name, " has no value; give an integer"));
    if (!value.IsScalar()) {
      return Error(at, absl::StrCat(name, " must be an integer, got a ",
                                    value.IsSequence() ? "list" : "mapping"));
    }
    int64_t n = 0;
    // A quoted "4" is a string in YAML: refused like any other string.
    if (value.Tag() != "?" || !absl::SimpleAtoi(value.Scalar(), &n)) {
      return Error(at, absl::StrCat(name, " must be an integer, got \"", value.Scalar(), "\""));
    }
    if (n < min) {
      return Error(
          at, absl::StrCat(name, " must be ",
                           min == 0 ? "0 or more" : absl::StrCat("at least ", min), ", got ", n));
    }
    if (n > max) return Error(at, absl::StrCat(name, " must be at most ", max, ", got ", n));
    return n;
  }

  template <typename T>
  absl::Status Assign(const YAML::Node& key, const YAML::Node& value, int64_t min, int64_t max,
                      std::optional<T>* out, const std::string& prefix = "") {
    AMLD_ASSIGN_OR_RETURN(int64_t n, Integer(key, value, prefix + key.Scalar(), min, max));
    *out = static_cast<T>(n);
    return absl::OkStatus();
  }

  absl::Status Gpus(const YAML::Node& key, const YAML::Node& value, DaemonConfig* config) {
    if (value.IsNull()) {
      return Error(key, "gpus has no value; list GPU ids like [0, 1], or [] for none");
    }
    if (!value.IsSequence()) {
      return Error(value,
                   "gpus must be a list of GPU ids like [0, 1] (ids as nvidia-smi shows "
                   "them), not a count");
    }
    std::vector<int> ids;
    for (const YAML::Node& item : value) {
      AMLD_ASSIGN_OR_RETURN(int64_t id, Integer(key, item, "GPU id", 0, kMaxGpuId));
      if (std::find(ids.begin(), ids.end(), id) != ids.end()) {
        return Error(item, absl::StrCat("GPU id ", id, " is listed twice; each GPU once"));
      }
      ids.push_back(static_cast<int>(id));
    }
    config->gpus = std::move(ids);
    return absl::OkStatus();
  }

  // A count, or -1 for "keep all" (the one negative allowed).
  absl::Status KeepFinishedRunFolders(const YAML::Node& key, const YAML::Node& value,
                                      DaemonConfig* config) {
    const std::string name = key.Scalar();
    AMLD_ASSIGN_OR_RETURN(
        int64_t n, Integer(key, value, name, std::numeric_limits<int64_t>::min(), kMaxCount));
    if (n < kKeepAll) {
      return Error(value.Mark().is_null() ? key : value,
                   absl::StrCat(name, " must be 0 or more, or -1 to keep all, got ", n));
    }
    config->keep_finished_run_folders = n;
    return absl::OkStatus();
  }

  absl::Status Limits(const YAML::Node& key, const YAML::Node& value, DaemonConfig* config) {
    if (value.IsNull()) return absl::OkStatus();  // "limits:" with nothing under it
    if (!value.IsMap()) return Error(value, "limits must be a mapping of limit: value");
    YAML::Mark default_at;
    const std::map<std::string, Handler> handlers = {
        {"default_run_duration_seconds",
         [&](const YAML::Node& k, const YAML::Node& v) {
           default_at = v.Mark().is_null() ? k.Mark() : v.Mark();
           return Assign(k, v, 0, kMaxSeconds, &config->default_run_duration_seconds, "limits.");
         }},
        {"max_run_duration_seconds",
         [&](const YAML::Node& k, const YAML::Node& v) {
           return Assign(k, v, 0, kMaxSeconds, &config->max_run_duration_seconds, "limits.");
         }},
    };
    AMLD_RETURN_IF_ERROR(ForEachKey(value, "limits.", handlers));
    const int64_t def = config->default_run_duration_seconds.value_or(0);
    const int64_t cap = config->max_run_duration_seconds.value_or(0);
    if (cap > 0 && def > cap) {
      return Error(default_at,
                   absl::StrCat("limits.default_run_duration_seconds (", def,
                                ") is above limits.max_run_duration_seconds (", cap, ")"));
    }
    return absl::OkStatus();
  }

  std::string source_;
};

}  // namespace

absl::StatusOr<DaemonConfig> ParseDaemonConfig(const std::string& text, const std::string& source) {
  try {
    YAML::Node root = YAML::Load(text);
    return ConfigParser(source).ParseTop(root);
  } catch (const YAML::Exception& e) {
    if (e.mark.is_null()) {
      return absl::InvalidArgumentError(absl::StrCat(source, ": not valid YAML: ", e.msg));
    }
    return absl::InvalidArgumentError(absl::StrCat(source, ":", e.mark.line + 1, ":",
                                                   e.mark.column + 1, ": not valid YAML: ", e.msg));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": cannot be read: ", e.what()));
  }
}

absl::StatusOr<DaemonConfig> LoadDaemonConfigFile(const fs::path& path) {
  absl::StatusOr<std::string> text = amld::base::ReadFileToString(path);
  if (absl::IsNotFound(text.status())) {
    return absl::NotFoundError(absl::StrCat("config file ", path.string(), " does not exist"));
  }
  if (!text.ok()) return text.status();
  return ParseDaemonConfig(*text, path.string());
}

std::optional<fs::path> ConfigFileToRead(const fs::path& explicit_path, const fs::path& data_dir) {
  if (!explicit_path.empty()) return explicit_path;
  fs::path in_data = data_dir / "amld.yaml";
  std::error_code ec;
  if (fs::exists(in_data, ec)) return in_data;
  return std::nullopt;
}

DaemonConfig Overlay(DaemonConfig base, const DaemonConfig& over) {
  if (over.max_concurrent_runs) base.max_concurrent_runs = over.max_concurrent_runs;
  if (over.cpus) base.cpus = over.cpus;
  if (over.gpus) base.gpus = over.gpus;
  if (over.kill_grace_seconds) base.kill_grace_seconds = over.kill_grace_seconds;
  if (over.keep_finished_run_folders) {
    base.keep_finished_run_folders = over.keep_finished_run_folders;
  }
  if (over.default_run_duration_seconds) {
    base.default_run_duration_seconds = over.default_run_duration_seconds;
  }
  if (over.max_run_duration_seconds) base.max_run_duration_seconds = over.max_run_duration_seconds;
  return base;
}

absl::Status ApplyDaemonConfig(const DaemonConfig& config, DaemonOptions* options) {
  auto check = [](const char* name, std::optional<int64_t> v, int64_t min, int64_t max) {
    if (!v || (*v >= min && *v <= max)) return absl::OkStatus();
    return absl::InvalidArgumentError(
        absl::StrCat(name, " must be between ", min, " and ", max, ", got ", *v));
  };
  auto widen = [](std::optional<int> v) {
    return v ? std::optional<int64_t>(*v) : std::optional<int64_t>();
  };
  // 0 (from a flag; the file refuses it) means the number of cores.
  AMLD_RETURN_IF_ERROR(
      check("max_concurrent_runs", widen(config.max_concurrent_runs), 0, kMaxCount));
  AMLD_RETURN_IF_ERROR(check("cpus", widen(config.cpus), 0, kMaxCount));
  AMLD_RETURN_IF_ERROR(check("kill_grace_seconds", config.kill_grace_seconds, 0, kMaxSeconds));
  AMLD_RETURN_IF_ERROR(
      check("keep_finished_run_folders", config.keep_finished_run_folders, kKeepAll, kMaxCount));
  AMLD_RETURN_IF_ERROR(
      check("default_run_duration_seconds", config.default_run_duration_seconds, 0, kMaxSeconds));
  AMLD_RETURN_IF_ERROR(
      check("max_run_duration_seconds", config.max_run_duration_seconds, 0, kMaxSeconds));
  if (config.gpus) {
    AMLD_RETURN_IF_ERROR(ParseGpuList(absl::StrJoin(*config.gpus, ",")).status());
  }
  const int64_t def = config.default_run_duration_seconds.value_or(0);
  const int64_t cap = config.max_run_duration_seconds.value_or(0);
  if (cap > 0 && def > cap) {
    return absl::InvalidArgumentError(absl::StrCat("the default run duration (", def,
                                                   " s) is above the maximum (", cap,
                                                   " s); lower the default or raise the maximum"));
  }
  if (config.max_concurrent_runs) options->max_concurrent_runs = *config.max_concurrent_runs;
  if (config.cpus) options->cpus = *config.cpus;
  if (config.gpus) options->gpus = *config.gpus;
  if (config.kill_grace_seconds) options->kill_grace = absl::Seconds(*config.kill_grace_seconds);
  if (config.keep_finished_run_folders) {
    options->keep_finished_run_folders = static_cast<int>(*config.keep_finished_run_folders);
  }
  if (config.default_run_duration_seconds) {
    options->default_run_duration_seconds = *config.default_run_duration_seconds;
  }
  if (config.max_run_duration_seconds) {
    options->max_run_duration_seconds = *config.max_run_duration_seconds;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int>> ParseGpuList(const std::string& text) {
  std::vector<int> ids;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    part = absl::StripAsciiWhitespace(part);
    int64_t id = -1;
    if (!absl::SimpleAtoi(part, &id) || id < 0 || id > kMaxGpuId) {
      return absl::InvalidArgumentError(absl::StrCat("GPU ids are integers from 0 to ", kMaxGpuId,
                                                     " separated by commas, e.g. 0,1; got \"",
                                                     std::string(part), "\""));
    }
    if (std::find(ids.begin(), ids.end(), id) != ids.end()) {
      return absl::InvalidArgumentError(absl::StrCat("GPU id ", id, " is listed twice"));
    }
    ids.push_back(static_cast<int>(id));
  }
  return ids;
}

}  // namespace amld::daemon
