// amld's Python for runs on other machines: the daemon's <data>/run-python
// (daemon/azureml_alias.h: the azureml alias and the SDK's own sources,
// stdlib-only on the path Run.get_context() takes) that the SSH and Slurm
// executors install on their target once per digest, as they do amld-shim,
// and put first on the PYTHONPATH of every run that asks for it
// (LaunchSpec.run_python), so `from azureml.core import Run` and
// `from amld.core import Run` work in a training script on a host that has
// neither the SDK nor gRPC.
//
// Thread-safety: value type and pure functions.
#pragma once

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace amld::daemon {

struct RunPython {
  std::filesystem::path dir;  // the local copy; empty: none (runs get nothing)
  std::string digest;         // SHA-256 (hex) of its names and contents
  bool empty() const { return dir.empty() || digest.empty(); }
};

// The copy's folder name on a target, under its .amld/: "python-<first 16
// hex digits of the digest>" (another daemon version installs beside it).
std::string RunPythonFolderName(const RunPython& python);

// `dir` first on PYTHONPATH in `env`: prepended to the value there, or a new
// PYTHONPATH=`dir` (kept in order by name when `env` was sorted).
void PrependToPythonPath(const std::string& dir,
                         std::vector<std::pair<std::string, std::string>>* env);

}  // namespace amld::daemon
