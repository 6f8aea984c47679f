#include "daemon/executors/run_python.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace amld::daemon {

std::string RunPythonFolderName(const RunPython& python) {
  return absl::StrCat("python-", python.digest.substr(0, 16));
}

void PrependToPythonPath(const std::string& dir,
                         std::vector<std::pair<std::string, std::string>>* env) {
  for (auto& [name, value] : *env) {
    if (name != "PYTHONPATH") continue;
    value = value.empty() ? dir : absl::StrCat(dir, ":", value);
    return;
  }
  const bool sorted = std::is_sorted(env->begin(), env->end());
  env->emplace_back("PYTHONPATH", dir);
  if (sorted) std::sort(env->begin(), env->end());
}

}  // namespace amld::daemon
