#include "daemon/config.h"

#include <yaml-cpp/yaml.h>

#include "base/yaml_keys.h"

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
constexpr int64_t kKeepAll = kKeepAllRunFolders;
constexpr int64_t kMaxSeconds = int64_t{100} * 365 * 24 * 3600;  // a century

// Everything yaml-cpp may throw stays in this file: each function here
// returns a Status.
class ConfigParser {
 public:
  explicit ConfigParser(std::string source) : source_(std::move(source)) {}

  absl::Status ParseTop(const YAML::Node& root, DaemonOptions* options) {
    if (!root.IsDefined() || root.IsNull()) return absl::OkStatus();  // empty file
    if (!root.IsMap()) {
      return Error(root, "the file must be a mapping of settings (key: value), e.g. \"cpus: 4\"");
    }
    RunManagerOptions& runs = options->runs;
    const std::map<std::string, Handler> handlers = {
        {"max_concurrent_runs",
         [&](const YAML::Node& k, const YAML::Node& v) {
           return Assign(k, v, 1, kMaxCount, &runs.max_concurrent_runs);
         }},
        {"cpus", [&](const YAML::Node& k,
                     const YAML::Node& v) { return Assign(k, v, 1, kMaxCount, &runs.cpus); }},
        {"gpus", [&](const YAML::Node& k, const YAML::Node& v) { return Gpus(k, v, &runs.gpus); }},
        {"default_gpus",
         [&](const YAML::Node& k, const YAML::Node& v) {
           return Assign(k, v, 0, kMaxCount, &runs.default_gpus);
         }},
        {"kill_grace_seconds",
         [&](const YAML::Node& k, const YAML::Node& v) -> absl::Status {
           AMLD_ASSIGN_OR_RETURN(int64_t n, Integer(k, v, k.Scalar(), 0, kMaxSeconds));
           runs.kill_grace = absl::Seconds(n);
           return absl::OkStatus();
         }},
        {"gc_interval_seconds",
         [&](const YAML::Node& k, const YAML::Node& v) -> absl::Status {
           AMLD_ASSIGN_OR_RETURN(int64_t n, Integer(k, v, k.Scalar(), 0, kMaxSeconds));
           options->gc.interval = absl::Seconds(n);
           return absl::OkStatus();
         }},
        {"gc_grace_seconds",
         [&](const YAML::Node& k, const YAML::Node& v) -> absl::Status {
           AMLD_ASSIGN_OR_RETURN(int64_t n, Integer(k, v, k.Scalar(), 0, kMaxSeconds));
           options->gc.grace = absl::Seconds(n);
           return absl::OkStatus();
         }},
        {"keep_finished_run_folders",
         [&](const YAML::Node& k, const YAML::Node& v) {
           return KeepFinishedRunFolders(k, v, &runs.folders.keep_finished_run_folders);
         }},
        {"limits", [&](const YAML::Node& k, const YAML::Node& v) { return Limits(k, v, &runs); }},
        {"environments",
         [&](const YAML::Node& k, const YAML::Node& v) {
           return Environments(k, v, &runs.environments);
         }},
        {"web", [&](const YAML::Node& k, const YAML::Node& v) { return Web(k, v, &options->web); }},
        {"per_user",
         [&](const YAML::Node& k, const YAML::Node& v) { return PerUser(k, v, &runs.user_limits); }},
        {"admin_group",
         [&](const YAML::Node& k, const YAML::Node& v) -> absl::Status {
           AMLD_ASSIGN_OR_RETURN(options->access.admin_group, String(k, v, k.Scalar()));
           return absl::OkStatus();
         }},
        {"users_manage_targets",
         [&](const YAML::Node& k, const YAML::Node& v) {
           return Boolean(k, v, &options->access.users_manage_targets);
         }},
        {"local_ingest",
         [&](const YAML::Node& k, const YAML::Node& v) {
           return Boolean(k, v, &options->watched_roots.local_ingest);
         }},
        {"auto_watch_roots",
         [&](const YAML::Node& k, const YAML::Node& v) {
           return Assign(k, v, 0, kMaxCount, &options->watched_roots.max_auto_roots);
         }},
        {"submitter_environment",
         [&](const YAML::Node& k, const YAML::Node& v) {
           return SubmitterEnvironment(k, v, &runs.submitter_env);
         }},
    };
    return ForEachKey(root, "", handlers);
  }

  absl::Status PerUser(const YAML::Node& key, const YAML::Node& value, UserLimits* limits) {
    if (value.IsNull()) return absl::OkStatus();
    if (!value.IsMap()) return Error(value, "per_user must be a mapping of limit: value");
    const std::map<std::string, Handler> handlers = {
        {"max_running_runs",
         [&](const YAML::Node& k, const YAML::Node& v) {
           return Assign(k, v, 0, kMaxCount, &limits->max_running_runs, "per_user.");
         }},
        {"max_gpus",
         [&](const YAML::Node& k, const YAML::Node& v) {
           return Assign(k, v, 0, kMaxCount, &limits->max_gpus, "per_user.");
         }},
    };
    return ForEachKey(value, "per_user.", handlers);
  }

 private:
  using Handler = std::function<absl::Status(const YAML::Node& key, const YAML::Node& value)>;

  // `key: true` or `key: false`, nothing else.
  absl::Status Boolean(const YAML::Node& key, const YAML::Node& value, bool* out) const {
    if (!value.IsScalar() || (value.Scalar() != "true" && value.Scalar() != "false")) {
      return Error(value.Mark().is_null() ? key : value, key.Scalar() + " must be true or false");
    }
    *out = value.Scalar() == "true";
    return absl::OkStatus();
  }

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
    return base::ForEachYamlKey(map, prefix, handlers,
                                [this](const YAML::Node& at, const std::string& what) {
                                  return Error(at, what);
                                });
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

  // A size: bytes ("1048576") or a number with KiB, MiB, GiB or TiB
  // ("20GiB", "1.5 GiB").
  absl::StatusOr<int64_t> Bytes(const YAML::Node& key, const YAML::Node& value,
                                const std::string& name) {
    const YAML::Node& at = value.Mark().is_null() ? key : value;
    const std::string what = absl::StrCat(
        name, " must be a size: bytes, or a number with KiB, MiB, GiB or TiB (e.g. 20GiB)");
    if (!value.IsScalar()) return Error(at, what);
    absl::string_view text = absl::StripAsciiWhitespace(value.Scalar());
    int64_t bytes = 0;
    if (absl::SimpleAtoi(text, &bytes) && bytes >= 0) return bytes;
    static const std::pair<const char*, int> kUnits[] = {
        {"KiB", 10}, {"MiB", 20}, {"GiB", 30}, {"TiB", 40}};
    for (const auto& [unit, shift] : kUnits) {
      if (!absl::ConsumeSuffix(&text, unit)) continue;
      double n = 0;
      if (!absl::SimpleAtod(absl::StripAsciiWhitespace(text), &n) || n < 0 || n > (1 << 20)) break;
      return static_cast<int64_t>(n * static_cast<double>(int64_t{1} << shift));
    }
    return Error(at, absl::StrCat(what, ", got \"", value.Scalar(), "\""));
  }

  template <typename T>
  absl::Status Assign(const YAML::Node& key, const YAML::Node& value, int64_t min, int64_t max,
                      T* out, const std::string& prefix = "") {
    AMLD_ASSIGN_OR_RETURN(int64_t n, Integer(key, value, prefix + key.Scalar(), min, max));
    *out = static_cast<T>(n);
    return absl::OkStatus();
  }

  absl::Status Gpus(const YAML::Node& key, const YAML::Node& value, std::vector<int>* gpus) {
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
    *gpus = std::move(ids);
    return absl::OkStatus();
  }

  // A count, or -1 for "keep all" (the one negative allowed).
  absl::Status KeepFinishedRunFolders(const YAML::Node& key, const YAML::Node& value, int* keep) {
    const std::string name = key.Scalar();
    AMLD_ASSIGN_OR_RETURN(
        int64_t n, Integer(key, value, name, std::numeric_limits<int64_t>::min(), kMaxCount));
    if (n < kKeepAll) {
      return Error(value.Mark().is_null() ? key : value,
                   absl::StrCat(name, " must be 0 or more, or -1 to keep all, got ", n));
    }
    *keep = static_cast<int>(n);
    return absl::OkStatus();
  }

  // submitter_environment: {allow: [PATTERN...], deny: [PATTERN...]}.
  absl::Status SubmitterEnvironment(const YAML::Node& key, const YAML::Node& value,
                                    SubmitterEnvPolicy* policy) {
    if (value.IsNull()) return absl::OkStatus();
    if (!value.IsMap()) {
      return Error(value, "submitter_environment must be a mapping with allow: and deny: lists");
    }
    const std::map<std::string, Handler> handlers = {
        {"allow",
         [&](const YAML::Node& k, const YAML::Node& v) {
           return Strings(k, v, "submitter_environment.allow", &policy->allow);
         }},
        {"deny",
         [&](const YAML::Node& k, const YAML::Node& v) {
           return Strings(k, v, "submitter_environment.deny", &policy->deny);
         }},
    };
    return ForEachKey(value, "submitter_environment.", handlers);
  }

  absl::Status Limits(const YAML::Node& key, const YAML::Node& value, RunManagerOptions* runs) {
    if (value.IsNull()) return absl::OkStatus();  // "limits:" with nothing under it
    if (!value.IsMap()) return Error(value, "limits must be a mapping of limit: value");
    YAML::Mark default_at;
    // Compared with each other as the file says them, then applied.
    std::optional<int64_t> def, cap;
    const std::map<std::string, Handler> handlers = {
        {"default_run_duration_seconds",
         [&](const YAML::Node& k, const YAML::Node& v) {
           default_at = v.Mark().is_null() ? k.Mark() : v.Mark();
           return Assign(k, v, 0, kMaxSeconds, &def, "limits.");
         }},
        {"max_run_duration_seconds",
         [&](const YAML::Node& k, const YAML::Node& v) {
           return Assign(k, v, 0, kMaxSeconds, &cap, "limits.");
         }},
    };
    AMLD_RETURN_IF_ERROR(ForEachKey(value, "limits.", handlers));
    if (cap.value_or(0) > 0 && def.value_or(0) > *cap) {
      return Error(default_at,
                   absl::StrCat("limits.default_run_duration_seconds (", *def,
                                ") is above limits.max_run_duration_seconds (", *cap, ")"));
    }
    if (def) runs->default_run_duration_seconds = *def;
    if (cap) runs->max_run_duration_seconds = *cap;
    return absl::OkStatus();
  }

  // A plain string scalar.
  absl::StatusOr<std::string> String(const YAML::Node& key, const YAML::Node& value,
                                     const std::string& name) {
    if (value.IsNull() || !value.IsScalar() || value.Scalar().empty()) {
      return Error(value.Mark().is_null() ? key : value,
                   absl::StrCat(name, " must be a non-empty string"));
    }
    return value.Scalar();
  }

  absl::Status Strings(const YAML::Node& key, const YAML::Node& value, const std::string& name,
                       std::vector<std::string>* out) {
    if (!value.IsSequence()) {
      return Error(value.Mark().is_null() ? key : value,
                   absl::StrCat(name, " must be a list of strings, like [\"https://...\"]"));
    }
    out->clear();
    for (const YAML::Node& item : value) {
      AMLD_ASSIGN_OR_RETURN(std::string s, String(key, item, name));
      out->push_back(std::move(s));
    }
    return absl::OkStatus();
  }

  // environments: {index_url, extra_index_urls, find_links, no_index,
  // conda_path, build_timeout_seconds, cache_budget, build_user}
  // (daemon/envs/env_builder.h).
  absl::Status Environments(const YAML::Node& key, const YAML::Node& value,
                            EnvironmentOptions* envs) {
    if (value.IsNull()) return absl::OkStatus();
    if (!value.IsMap()) return Error(value, "environments must be a mapping of setting: value");
    const std::string p = "environments.";
    const std::map<std::string, Handler> handlers = {
        {"index_url",
         [&](const YAML::Node& k, const YAML::Node& v) -> absl::Status {
           AMLD_ASSIGN_OR_RETURN(envs->index_url, String(k, v, p + k.Scalar()));
           return absl::OkStatus();
         }},
        {"extra_index_urls",
         [&](const YAML::Node& k, const YAML::Node& v) {
           return Strings(k, v, p + k.Scalar(), &envs->extra_index_urls);
         }},
        {"find_links",
         [&](const YAML::Node& k, const YAML::Node& v) {
           return Strings(k, v, p + k.Scalar(), &envs->find_links);
         }},
        {"no_index",
         [&](const YAML::Node& k, const YAML::Node& v) -> absl::Status {
           if (!v.IsScalar() || (v.Scalar() != "true" && v.Scalar() != "false")) {
             return Error(v.Mark().is_null() ? k : v, p + "no_index must be true or false");
           }
           envs->no_index = v.Scalar() == "true";
           return absl::OkStatus();
         }},
        {"conda_path",
         [&](const YAML::Node& k, const YAML::Node& v) -> absl::Status {
           AMLD_ASSIGN_OR_RETURN(envs->conda_path, String(k, v, p + k.Scalar()));
           return absl::OkStatus();
         }},
        {"build_timeout_seconds",
         [&](const YAML::Node& k, const YAML::Node& v) -> absl::Status {
           AMLD_ASSIGN_OR_RETURN(int64_t n, Integer(k, v, p + k.Scalar(), 1, kMaxSeconds));
           envs->build_timeout = absl::Seconds(n);
           return absl::OkStatus();
         }},
        {"cache_budget",
         [&](const YAML::Node& k, const YAML::Node& v) -> absl::Status {
           AMLD_ASSIGN_OR_RETURN(envs->cache_budget, Bytes(k, v, p + k.Scalar()));
           return absl::OkStatus();
         }},
        {"build_user",
         [&](const YAML::Node& k, const YAML::Node& v) -> absl::Status {
           // "": no build account (every spec in its user's cache).
           if (v.IsScalar() && v.Scalar().empty()) {
             envs->build_user.clear();
             return absl::OkStatus();
           }
           AMLD_ASSIGN_OR_RETURN(envs->build_user, String(k, v, p + k.Scalar()));
           if (envs->build_user == "root") {
             return Error(v, p + "build_user must not be root: the shared environments are "
                                 "built by an unprivileged account (\"\" for none)");
           }
           return absl::OkStatus();
         }},
    };
    return ForEachKey(value, p, handlers);
  }

  // web: {enabled, address, port} (daemon/web/web_server.h).
  absl::Status Web(const YAML::Node& key, const YAML::Node& value, WebOptions* web) {
    if (value.IsNull()) return absl::OkStatus();
    if (!value.IsMap()) return Error(value, "web must be a mapping of setting: value");
    const std::string p = "web.";
    const std::map<std::string, Handler> handlers = {
        {"enabled",
         [&](const YAML::Node& k, const YAML::Node& v) -> absl::Status {
           if (!v.IsScalar() || (v.Scalar() != "true" && v.Scalar() != "false")) {
             return Error(v.Mark().is_null() ? k : v, p + "enabled must be true or false");
           }
           web->enabled = v.Scalar() == "true";
           return absl::OkStatus();
         }},
        {"address",
         [&](const YAML::Node& k, const YAML::Node& v) -> absl::Status {
           AMLD_ASSIGN_OR_RETURN(web->address, String(k, v, p + k.Scalar()));
           return absl::OkStatus();
         }},
        {"port", [&](const YAML::Node& k,
                     const YAML::Node& v) { return Assign(k, v, 0, 65535, &web->port, p); }},
    };
    return ForEachKey(value, p, handlers);
  }

  std::string source_;
};

}  // namespace

absl::Status ParseDaemonConfig(const std::string& text, const std::string& source,
                               DaemonOptions* options) {
  try {
    YAML::Node root = YAML::Load(text);
    return ConfigParser(source).ParseTop(root, options);
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

absl::Status LoadDaemonConfigFile(const fs::path& path, DaemonOptions* options) {
  absl::StatusOr<std::string> text = amld::base::ReadFileToString(path);
  if (absl::IsNotFound(text.status())) {
    return absl::NotFoundError(absl::StrCat("config file ", path.string(), " does not exist"));
  }
  if (!text.ok()) return text.status();
  return ParseDaemonConfig(*text, path.string(), options);
}

std::optional<fs::path> ConfigFileToRead(const fs::path& explicit_path, const fs::path& data_dir) {
  if (!explicit_path.empty()) return explicit_path;
  fs::path in_data = data_dir / "amld.yaml";
  std::error_code ec;
  if (fs::exists(in_data, ec)) return in_data;
  return std::nullopt;
}

absl::Status CheckDaemonOptions(const DaemonOptions& options) {
  auto check = [](const char* name, int64_t v, int64_t min, int64_t max) {
    if (v >= min && v <= max) return absl::OkStatus();
    return absl::InvalidArgumentError(
        absl::StrCat(name, " must be between ", min, " and ", max, ", got ", v));
  };
  const RunManagerOptions& runs = options.runs;
  // 0 (from a flag; the file refuses it) means the number of cores.
  AMLD_RETURN_IF_ERROR(check("max_concurrent_runs", runs.max_concurrent_runs, 0, kMaxCount));
  AMLD_RETURN_IF_ERROR(check("cpus", runs.cpus, 0, kMaxCount));
  AMLD_RETURN_IF_ERROR(
      check("kill_grace_seconds", absl::ToInt64Seconds(runs.kill_grace), 0, kMaxSeconds));
  AMLD_RETURN_IF_ERROR(check("keep_finished_run_folders",
                             runs.folders.keep_finished_run_folders, kKeepAll, kMaxCount));
  AMLD_RETURN_IF_ERROR(
      check("default_run_duration_seconds", runs.default_run_duration_seconds, 0, kMaxSeconds));
  AMLD_RETURN_IF_ERROR(
      check("max_run_duration_seconds", runs.max_run_duration_seconds, 0, kMaxSeconds));
  AMLD_RETURN_IF_ERROR(ParseGpuList(absl::StrJoin(runs.gpus, ",")).status());
  if (runs.default_gpus > static_cast<int>(runs.gpus.size())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "default_gpus (", runs.default_gpus, ") is more than the ", runs.gpus.size(),
        " GPUs listed in gpus; list the GPUs or lower default_gpus"));
  }
  const int64_t def = runs.default_run_duration_seconds;
  const int64_t cap = runs.max_run_duration_seconds;
  if (cap > 0 && def > cap) {
    return absl::InvalidArgumentError(absl::StrCat("the default run duration (", def,
                                                   " s) is above the maximum (", cap,
                                                   " s); lower the default or raise the maximum"));
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
