// Walking a YAML mapping key by key, the one way amld's YAML readers do it
// (amld.yaml in daemon/config.cc, sweep job files in client/commands/):
// each known key has a handler, and an unknown or repeated key is an error
// at that key, naming the keys that are known.
//
// Thread-safety: pure function.
#pragma once

#include <functional>
#include <map>
#include <string>

#include "absl/status/status.h"
#include <yaml-cpp/yaml.h>

namespace amld::base {

using YamlKeyHandler = std::function<absl::Status(const YAML::Node& key, const YAML::Node& value)>;
// Makes the reader's error at a node (with its file:line:column).
using YamlErrorAt = std::function<absl::Status(const YAML::Node& at, const std::string& what)>;

// Calls the handler of each key of `map` in file order. `prefix` names the
// enclosing section in messages ("limits."). Stops at the first error.
absl::Status ForEachYamlKey(const YAML::Node& map, const std::string& prefix,
                            const std::map<std::string, YamlKeyHandler>& handlers,
                            const YamlErrorAt& error);

}  // namespace amld::base
