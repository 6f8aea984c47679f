#include "base/yaml_keys.h"

#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"

namespace amld::base {

absl::Status ForEachYamlKey(const YAML::Node& map, const std::string& prefix,
                            const std::map<std::string, YamlKeyHandler>& handlers,
                            const YamlErrorAt& error) {
  std::set<std::string> seen;
  for (const auto& entry : map) {
    const YAML::Node& key = entry.first;
    if (!key.IsScalar()) return error(key, "keys must be plain names");
    const std::string name = key.Scalar();
    auto handler = handlers.find(name);
    if (handler == handlers.end()) {
      std::vector<std::string> known;
      for (const auto& [k, _] : handlers) known.push_back(prefix + k);
      return error(key, absl::StrCat("unknown key \"", prefix, name,
                                     "\"; known keys: ", absl::StrJoin(known, ", ")));
    }
    if (!seen.insert(name).second) {
      return error(key, absl::StrCat("\"", prefix, name, "\" is set twice; keep one"));
    }
    AMLD_RETURN_IF_ERROR(handler->second(key, entry.second));
  }
  return absl::OkStatus();
}

}  // namespace amld::base
